"""An order goes out whole or not at all: a declared bracket leg or a size that has no usable value
when the order fires refuses the order with a visible ``rejected`` event naming what is missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qkt.brokers.registry import BrokerRegistry
from qkt.dsl import parse_strategy
from qkt.engine.events import Bar, OrderFilled, OrderRejected, OrderRequest
from qkt.feeds.replay import Row
from qkt.session import LiveSession

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HUGE = "9" * 400  # a literal far beyond what a float holds


def run(action: str, closes: tuple[float, ...] = (1, 2, 3, 6), flat: bool = False) -> list[Any]:
    """Events of a paper session whose rule fires ``action`` once, on the last close."""
    text = (
        "STRATEGY t VERSION 1\nSYMBOLS\ne = PAPER:EURUSD EVERY 1m WARMUP 0 BARS\nRULES\n"
        f"WHEN e.close > 5 THEN {action}\n"
    )
    parsed = parse_strategy(text, "t.qkt")
    assert parsed.ok and parsed.strategy is not None, [d.format() for d in parsed.diagnostics]
    events: list[Any] = []
    session = LiveSession(parsed.strategy, BrokerRegistry(), on_event=events.append)
    for i, close in enumerate(closes):
        spread = 0.0 if flat else 0.5
        bar = Bar(
            "EURUSD", T0 + timedelta(minutes=i), 60, close, close + spread, close - spread, close
        )
        session.on_row(Row(None, bar, None, T0 + timedelta(minutes=i + 1)))
    return events


def refused(events: list[Any]) -> str:
    """The one rejection's reason; nothing was sent or filled."""
    assert not [e for e in events if isinstance(e, OrderRequest | OrderFilled)], events
    (rejected,) = [e for e in events if isinstance(e, OrderRejected)]
    return rejected.reason


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (
            "BUY e SIZING 1 BRACKET STOP_LOSS BY atr(e, 14)",
            "STOP_LOSS has no value (atr(e, 14) is not ready): order not sent",
        ),
        (
            "BUY e SIZING 1 BRACKET { STOP_LOSS BY 1 PCT, TAKE_PROFIT AT sma(e, 10) * 1.5 }",
            "TAKE_PROFIT has no value (sma(e, 10) is not ready): order not sent",
        ),
        (
            "SELL e SIZING 1 BRACKET STOP_LOSS AT POSITION.e.entry_price + 1",
            "STOP_LOSS has no value (POSITION.e.entry_price is unknown while e is flat): "
            "order not sent",
        ),
        (
            f"BUY e SIZING 1 BRACKET TAKE_PROFIT BY e.close * {HUGE}",
            "TAKE_PROFIT has no value (99999999999999999999... is too large): order not sent",
        ),
        (
            "BUY e SIZING atr(e, 5) * 10",
            "SIZING has no value (atr(e, 5) is not ready): order not sent",
        ),
    ],
)
def test_a_declared_leg_or_size_without_a_value_refuses_the_order(action: str, reason: str) -> None:
    assert refused(run(action)) == reason


def test_a_division_by_zero_in_a_leg_refuses_the_order() -> None:
    events = run("BUY e SIZING 1 BRACKET STOP_LOSS BY e.close / (e.high - e.low)", flat=True)
    assert refused(events) == (
        "STOP_LOSS has no value (e.close / (e.high - e.low) divides by zero): order not sent"
    )


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (
            "BUY e SIZING 1 BRACKET STOP_LOSS AT e.close * 2",
            "STOP_LOSS at 12 is not below the entry price 6 of a buy: order not sent",
        ),
        (
            "SELL e SIZING 1 BRACKET TAKE_PROFIT AT e.close + 1",
            "TAKE_PROFIT at 7 is not below the entry price 6 of a sell: order not sent",
        ),
        (
            "BUY e SIZING 1 BRACKET STOP_LOSS BY e.close * 2",
            "STOP_LOSS BY 12 would be at -6, not a positive price: order not sent",
        ),
        (
            "SELL e SIZING 1 BRACKET TAKE_PROFIT BY 7",
            "TAKE_PROFIT BY 7 would be at -1, not a positive price: order not sent",
        ),
        (
            "BUY e SIZING 1 BRACKET STOP_LOSS BY e.close - 7",
            "STOP_LOSS BY -1 is not a positive distance: order not sent",
        ),
        (
            "BUY e SIZING e.close * 1000000000",
            "order size 6000000000 is above the largest order size, 1,000,000,000: order not sent",
        ),
    ],
)
def test_a_leg_or_size_out_of_bounds_refuses_the_order(action: str, reason: str) -> None:
    assert refused(run(action)) == reason


def test_the_order_goes_out_with_its_legs_once_they_have_values() -> None:
    # The first rise happens before atr(e, 2) is ready and is refused; the second goes out whole.
    events = run(
        "BUY e SIZING 1 BRACKET STOP_LOSS BY atr(e, 2)", closes=(6, 1, 1, 1, 1, 6), flat=False
    )
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    orders = [e for e in events if isinstance(e, OrderRequest)]
    assert [r.reason for r in rejected] == [
        "STOP_LOSS has no value (atr(e, 2) is not ready): order not sent"
    ]
    assert len(orders) == 1 and orders[0].stop_loss is not None
