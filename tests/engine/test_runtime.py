"""Rule evaluation: edge-triggered, crosses by the reference's definition, null-safe, shared indicators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from qkt.dsl import parse_strategy
from qkt.engine.events import Bar
from qkt.engine.intents import CloseIntent, LogIntent, OrderIntent
from qkt.engine.runtime import Runtime

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Flat:
    def position(self, alias: str, field: str | None) -> float | None:
        return 0.0

    def account(self, field: str) -> float | None:
        return 10000.0


def runtime(body: str, streams: str = "e = X:EURUSD EVERY 1m") -> Runtime:
    parsed = parse_strategy(f"STRATEGY t VERSION 1\nSYMBOLS\n{streams}\nRULES\n{body}\n", "t.qkt")
    assert parsed.ok and parsed.strategy is not None, [d.format() for d in parsed.diagnostics]
    return Runtime(parsed.strategy, Flat())


def feed(rt: Runtime, closes: list[float], alias: str = "e") -> list[list[object]]:
    out = []
    for i, c in enumerate(closes):
        bar = Bar("EURUSD", T0 + timedelta(minutes=i), 60, c, c + 0.5, c - 0.5, c, 1.0)
        out.append(rt.on_bar(alias, bar))
    return out


def test_rules_fire_on_the_edge_not_while_true() -> None:
    rt = runtime('WHEN e > 5 THEN LOG "up"')
    fired = feed(rt, [1, 6, 7, 8, 2, 9])
    assert [len(f) for f in fired] == [0, 1, 0, 0, 0, 1]
    assert fired[1] == [LogIntent("info", "up", 5)]


def test_crosses_above_and_below_follow_the_reference() -> None:
    rt = runtime('WHEN e CROSSES ABOVE 5 THEN LOG "a"\nWHEN e CROSSES BELOW 5 THEN LOG "b"')
    fired = feed(rt, [5, 6, 5, 5, 4, 6])
    # 5->6: above; 6->5: below (prev > 5, now <= 5); 5->5 nothing; 5->4 nothing (prev not > 5)
    assert [[i.message for i in f] for f in fired] == [[], ["a"], ["b"], [], [], ["a"]]  # type: ignore[attr-defined]


def test_null_indicators_make_comparisons_false() -> None:
    rt = runtime('WHEN sma(e, 3) > 0 THEN LOG "warm"\nWHEN NOT ema(e, 3) < 100 THEN LOG "not"')
    fired = feed(rt, [1, 2, 3, 4])
    # sma is null for two bars, so `> 0` is false until the third; a comparison with null is
    # false, so NOT of it is true from the first bar (the reference's reading, kept on purpose).
    assert [[i.message for i in f] for f in fired] == [["not"], [], ["warm"], []]  # type: ignore[attr-defined]


def test_identical_indicator_calls_share_one_instance() -> None:
    rt = runtime("WHEN ema(e, 9) > ema(e.close, 9) AND sma(e, 5) > 0 THEN CLOSE e")
    assert len(rt._indicators) == 2
    assert len(rt.streams["e"].updaters) == 2


def test_seed_crossover_orders_with_its_bracket() -> None:
    rt = runtime(
        "WHEN ema(e, 2) crosses ABOVE ema(e, 4)\n"
        "THEN BUY e SIZING 0.1 BRACKET STOP_LOSS BY 50 PCT TAKE_PROFIT BY 100 PCT; CLOSE_ALL"
    )
    fired = [f for f in feed(rt, [10, 9, 8, 7, 6, 9, 12]) if f]
    assert len(fired) == 1
    order, close = fired[0]
    assert order == OrderIntent(
        "e",
        "buy",
        "qty",
        Decimal("0.1"),
        ("by_pct", Decimal("50.0")),
        ("by_pct", Decimal("100.0")),
        6,
    )
    assert close == CloseIntent(None, 6)


def test_rules_only_run_for_their_streams() -> None:
    rt = runtime(
        'WHEN a > 1 THEN LOG "a"\nWHEN b > 1 THEN LOG "b"',
        streams="a = X:EURUSD EVERY 1m\nb = X:EURUSD EVERY 5m",
    )
    assert [i.message for i in feed(rt, [2], alias="b")[0]] == ["b"]  # type: ignore[attr-defined]


def test_highest_excludes_the_current_bar_and_at_legs_are_computed_when_fired() -> None:
    rt = runtime("WHEN e > highest(e, 2) THEN BUY e SIZING 1 BRACKET TAKE_PROFIT AT e.close * 2")
    fired = [f for f in feed(rt, [1, 2, 3]) if f]
    assert len(fired) == 1
    (order,) = fired[0]
    assert isinstance(order, OrderIntent)
    assert order.take_profit == ("at", Decimal("6.0"))
