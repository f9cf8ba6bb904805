"""Order sizes and bracket legs known before the run are judged by `qkt validate`: a constant that
is an error (a division by zero, an overflow) or out of bounds is a positioned diagnostic."""

from __future__ import annotations

import pytest

from qkt.dsl import parse_strategy

HUGE = "9" * 400


def diagnostics(action: str) -> list[tuple[str, int, int, str]]:
    text = (
        "STRATEGY t VERSION 1\nSYMBOLS\neur = EXNESS:EURUSD EVERY 1m\nRULES\n"
        f"WHEN eur.close > 1 THEN {action}\n"
    )
    parsed = parse_strategy(text, "t.qkt")
    return [(d.code, d.line or 0, d.column or 0, d.message) for d in parsed.diagnostics]


@pytest.mark.parametrize(
    ("action", "code", "at", "message"),
    [
        (
            "BUY eur SIZING 1 BRACKET STOP_LOSS BY (1/0) PCT",
            "undefined-value",
            "1/0) PCT",
            "STOP_LOSS has no value: `1 / 0` divides by zero",
        ),
        (
            "BUY eur SIZING 1 BRACKET TAKE_PROFIT BY eur.close / (2 - 2)",
            "undefined-value",
            "eur.close / (2",
            "TAKE_PROFIT has no value: `eur.close / (2 - 2)` divides by zero",
        ),
        (
            "BUY eur SIZING 5 % 0",
            "undefined-value",
            "5 % 0",
            "SIZING has no value: `5 % 0` divides by zero",
        ),
        (
            "BUY eur SIZING 2000000000",
            "bad-size",
            "2000000000",
            "SIZING 2000000000 is above the largest order size, 1,000,000,000",
        ),
        (
            f"BUY eur SIZING {HUGE}",
            "bad-size",
            HUGE,
            "SIZING 1.00000e+400 is above the largest order size, 1,000,000,000",
        ),
        (
            "BUY eur SIZING 0.000000001",
            "bad-size",
            "0.000000001",
            "SIZING 0.000000001 is below the smallest order size, 0.00000001",
        ),
        (
            "BUY eur SIZING 20000 PCT OF EQUITY",
            "bad-size",
            "20000",
            "SIZING 20000 PCT OF EQUITY is above 10,000 percent",
        ),
        (
            "BUY eur SIZING 2000000000000 USD",
            "bad-size",
            "2000000000000",
            "SIZING 2000000000000 USD is above the largest notional, 1,000,000,000,000 USD",
        ),
        (
            "BUY eur SIZING 1 BRACKET TAKE_PROFIT BY 1000000 PCT",
            "bad-percent",
            "1000000",
            "TAKE_PROFIT BY 1000000 PCT: a take-profit percent must be above 0 and at most 10,000",
        ),
        (
            "BUY eur SIZING 1 BRACKET STOP_LOSS AT 10000000000000",
            "bad-price",
            "10000000000000",
            "STOP_LOSS price 10000000000000 is above the largest price, 1,000,000,000,000",
        ),
        (
            "BUY eur SIZING 1 BRACKET STOP_LOSS BY 10000000000000",
            "bad-price",
            "10000000000000",
            "STOP_LOSS distance 10000000000000 is above the largest price, 1,000,000,000,000",
        ),
    ],
)
def test_constant_orders_that_cannot_be_sent_are_errors(
    action: str, code: str, at: str, message: str
) -> None:
    column = len("WHEN eur.close > 1 THEN ") + action.index(at) + 1  # where the value starts
    assert diagnostics(action) == [(code, 5, column, message)]


def test_sane_constant_orders_pass() -> None:
    action = (
        "BUY eur SIZING 0.00000001; "
        "BUY eur SIZING 1000000000 BRACKET { STOP_LOSS BY 99.9 PCT, TAKE_PROFIT BY 10000 PCT }; "
        "SELL eur SIZING 10000 PCT OF BALANCE BRACKET STOP_LOSS AT 1000000000000; "
        "BUY eur SIZING 1000000000000 USD"
    )
    assert diagnostics(action) == []


def test_a_constant_division_by_zero_is_no_quantity_for_routing() -> None:
    from qkt.dsl import order_actions, static_quantity

    text = (
        "STRATEGY t VERSION 1\nSYMBOLS\neur = EXNESS:EURUSD EVERY 1m\nPARAM lots = 1\nRULES\n"
        "WHEN eur.close > 1 THEN BUY eur SIZING lots / (lots - lots)\n"
    )
    parsed = parse_strategy(text, "t.qkt")
    assert [d.code for d in parsed.diagnostics] == ["undefined-value"]
    assert parsed.strategy is not None
    (action,) = order_actions(parsed.strategy)
    assert static_quantity(parsed.strategy, action) is None
