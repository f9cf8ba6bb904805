"""Bounded work on any strategy: deep LET chains, shared LETs evaluated once per bar, deep nesting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qkt.dsl import parse_strategy
from qkt.engine.events import Bar
from qkt.engine.intents import LogIntent, OrderIntent
from qkt.engine.runtime import Runtime

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HEAD = "STRATEGY t VERSION 1\nSYMBOLS\ne = X:EURUSD EVERY 1m\n"


class Counting:
    """A portfolio that counts how often rules read the account."""

    def __init__(self) -> None:
        self.reads = 0

    def position(self, alias: str, field: str | None) -> float | None:
        return 0.0

    def account(self, field: str) -> float | None:
        self.reads += 1
        return 1.0


def bar(close: float, minute: int = 0) -> Bar:
    return Bar("EURUSD", T0 + timedelta(minutes=minute), 60, close, close, close, close, 1.0)


def compiled(text: str, portfolio: Counting | None = None) -> Runtime:
    parsed = parse_strategy(text, "t.qkt")
    assert parsed.ok and parsed.strategy is not None, [d.format() for d in parsed.diagnostics]
    return Runtime(parsed.strategy, portfolio or Counting())


def test_a_let_chain_5000_deep_checks_compiles_and_runs() -> None:
    lets = ["LET a0 = e.close"] + [f"LET a{i} = a{i - 1} + 1" for i in range(1, 5000)]
    text = HEAD + "\n".join(lets) + '\nRULES\nWHEN a4999 > 5000 THEN LOG "deep"\n'
    rt = compiled(text)
    assert rt.on_bar("e", bar(0.5)) == []
    fired = rt.on_bar("e", bar(2.0, 1))
    assert [i.message for i in fired if isinstance(i, LogIntent)] == ["deep"]


def test_a_let_chain_declared_backwards_compiles_too() -> None:
    lets = [f"LET a{i} = a{i - 1} + 1" for i in range(4999, 0, -1)] + ["LET a0 = e.close"]
    text = HEAD + "\n".join(lets) + '\nRULES\nWHEN a4999 > 5000 THEN LOG "deep"\n'
    rt = compiled(text)
    assert [len(rt.on_bar("e", bar(c, n))) for n, c in enumerate((0.5, 2.0))] == [0, 1]


def test_a_let_used_twice_is_evaluated_once_per_bar() -> None:
    # b1 = a + a, b2 = b1 + b1, ...: inlined at every use this reads the account 2**20 times.
    lets = ["LET b0 = ACCOUNT.equity"] + [f"LET b{i} = b{i - 1} + b{i - 1}" for i in range(1, 21)]
    rules = (
        'RULES\nWHEN e.close > 0 AND b20 > 0 THEN LOG "x"\nWHEN b20 > 1 AND e > 0 THEN LOG "y"\n'
    )
    portfolio = Counting()
    rt = compiled(HEAD + "\n".join(lets) + "\n" + rules, portfolio)
    fired = rt.on_bar("e", bar(1.0))
    assert [i.message for i in fired if isinstance(i, LogIntent)] == ["x", "y"]
    assert portfolio.reads == 1
    rt.on_bar("e", bar(1.0, 1))
    assert portfolio.reads == 2  # a new bar reads it again, once


def test_a_doubling_let_chain_30_deep_runs_in_linear_time() -> None:
    lets = ["LET c0 = e.close"] + [f"LET c{i} = c{i - 1} + c{i - 1}" for i in range(1, 31)]
    rt = compiled(HEAD + "\n".join(lets) + '\nRULES\nWHEN c30 > 0 THEN LOG "big"\n')
    for minute in range(50):
        rt.on_bar("e", bar(1.0 + minute, minute))  # 2**30 evaluations a bar if re-inlined


def test_a_shared_crosses_let_fires_every_rule_that_uses_it() -> None:
    # The cross is judged once per bar: the second rule sees the same cross as the first.
    text = (
        HEAD
        + "LET up = e CROSSES ABOVE 5\nRULES\n"
        + 'WHEN up THEN LOG "first"\nWHEN up AND e > 0 THEN BUY e SIZING 1\n'
    )
    rt = compiled(text)
    out = [rt.on_bar("e", bar(c, n)) for n, c in enumerate((4.0, 6.0))]
    assert out[0] == []
    assert [type(i) for i in out[1]] == [LogIntent, OrderIntent]


def test_a_let_in_a_cycle_is_an_error_not_a_hang() -> None:
    parsed = parse_strategy(
        HEAD + "LET a = b + 1\nLET b = a + 1\nRULES\nWHEN a > e THEN CLOSE e\n", "t.qkt"
    )
    assert [(d.code, d.line) for d in parsed.diagnostics] == [("let-cycle", 4)]


def test_warmup_counts_indicators_through_a_deep_let_chain() -> None:
    lets = ["LET a0 = ema(e, 20)"] + [f"LET a{i} = a{i - 1} + a{i - 1}" for i in range(1, 40)]
    rt = compiled(HEAD + "\n".join(lets) + "\nRULES\nWHEN sma(a39, 5) > 0 THEN CLOSE e\n")
    assert rt.warmup_bars("e") == 25


@pytest.mark.parametrize(
    ("opening", "closing"),
    [("(", ")"), ("ema(", ", 3)"), ("x IN [", "]"), ("-(", ")")],
    ids=["parentheses", "calls", "in-lists", "negations"],
)
def test_nesting_10000_deep_is_one_positioned_too_deep_error(opening: str, closing: str) -> None:
    inner = opening.replace("x", "e") * 10_000 + "e" + closing * 10_000
    parsed = parse_strategy(HEAD + f"LET v = {inner}\nRULES\nWHEN v > 1 THEN CLOSE e\n", "t.qkt")
    found = [(d.code, d.path, d.line) for d in parsed.diagnostics]
    assert found[0] == ("too-deep", "t.qkt", 4)
    assert all(d.column is not None for d in parsed.diagnostics)


def test_long_constant_lets_used_as_a_size_are_not_too_deep() -> None:
    # 16 LETs of 190 operators each: folding the size must not run out of stack.
    lets = ["LET p0 = 1"] + [f"LET p{i} = p{i - 1}" + " + 0" * 190 for i in range(1, 17)]
    text = HEAD + "\n".join(lets) + "\nRULES\nWHEN e > 0 THEN BUY e SIZING p16\n"
    parsed = parse_strategy(text, "t.qkt")
    assert [d.format() for d in parsed.diagnostics] == []
    rt = compiled(text)
    (order,) = rt.on_bar("e", bar(1.0))
    assert isinstance(order, OrderIntent) and order.sizing_value == 1
