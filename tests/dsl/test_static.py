"""What routing learns before anything runs: the order actions and their static quantities."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qkt.dsl import ast, order_actions, parse_strategy, static_quantity
from tests.conftest import SEED

SIZES = """STRATEGY q VERSION 1
SYMBOLS
e = X:Y EVERY 1m
f = X:Z EVERY 1h
PARAM lots = 0.2
PARAM flag = TRUE
LET double = lots * 2
LET live = e.close / 1000
RULES
WHEN e > 1 THEN BUY e SIZING lots * 2; SELL e SIZING 0.3; BUY e SIZING 1 PCT OF EQUITY; LOG "x"
WHEN f > 1 THEN SELL f SIZING e.close; BUY f; CLOSE e; BUY f SIZING (lots + 0.1) / 2
WHEN e < 1 THEN BUY e SIZING double; SELL e SIZING live; BUY e SIZING 500 USD
WHEN e < 2 THEN BUY e SIZING lots / (e.close - e.close); SELL f SIZING 2 PCT OF BALANCE
"""


def strategy(text: str) -> ast.Strategy:
    parsed = parse_strategy(text, "q.qkt")
    assert parsed.ok and parsed.strategy is not None, [d.format() for d in parsed.diagnostics]
    return parsed.strategy


def test_order_actions_are_every_buy_and_sell_in_file_order() -> None:
    s = strategy(SIZES)
    actions = order_actions(s)
    assert [(a.side, a.alias, a.line) for a in actions] == [
        ("buy", "e", 10),
        ("sell", "e", 10),
        ("buy", "e", 10),
        ("sell", "f", 11),
        ("buy", "f", 11),
        ("buy", "f", 11),
        ("buy", "e", 12),
        ("sell", "e", 12),
        ("buy", "e", 12),
        ("buy", "e", 13),
        ("sell", "f", 13),
    ]


def test_static_quantities() -> None:
    s = strategy(SIZES)
    assert [static_quantity(s, a) for a in order_actions(s)] == [
        Decimal("0.4"),  # PARAM arithmetic
        Decimal("0.3"),  # a literal
        None,  # PCT OF EQUITY
        None,  # depends on a stream
        None,  # no SIZING
        Decimal("0.15"),  # parentheses
        Decimal("0.4"),  # a constant LET
        None,  # a LET that depends on a stream
        None,  # USD
        None,  # a division by a stream value is not a quantity
        None,  # PCT OF BALANCE
    ]


def test_the_seed_quantity() -> None:
    s = strategy(SEED)
    (action,) = order_actions(s)
    assert static_quantity(s, action) == Decimal("0.1")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (Decimal("0.05"), Decimal("0.10")),
        (Decimal("1"), Decimal("2")),
        (3, Decimal("6")),  # YAML integers
        (0.25, Decimal("0.50")),  # YAML floats, read exactly as written
        (True, None),  # not a number: no static size
        ("big", None),
    ],
)
def test_params_override_the_defaults(override: object, expected: Decimal | None) -> None:
    s = strategy(SIZES)
    first = order_actions(s)[0]
    params = {"lots": override}
    assert static_quantity(s, first, params) == expected  # type: ignore[arg-type]
    # the constant LET follows the override too
    assert static_quantity(s, order_actions(s)[6], params) == expected  # type: ignore[arg-type]


def test_an_override_of_an_unknown_name_changes_nothing() -> None:
    s = strategy(SIZES)
    assert static_quantity(s, order_actions(s)[1], {"other": Decimal(9)}) == Decimal("0.3")
