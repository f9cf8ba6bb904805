"""``WARMUP N BARS`` holds a stream's rules until N of its bars have closed: in a replay, and
after a venue warm-up that brought fewer (history bars count towards N)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from qkt.brokers.registry import BrokerRegistry
from qkt.dsl import parse_strategy
from qkt.engine.events import Bar, OrderRequest
from qkt.feeds.replay import Row
from qkt.session import LiveSession

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
TWO = """STRATEGY two VERSION 1
SYMBOLS
eur = BACKTEST:EURUSD EVERY 1m WARMUP 3 BARS
gold = BACKTEST:XAUUSD EVERY 1m
RULES
WHEN eur.close > 1 THEN BUY eur SIZING 1
WHEN gold.close > 1 THEN BUY gold SIZING 1
WHEN gold.close > 1 AND eur.close > 1 THEN SELL gold SIZING 1
"""


def bar(symbol: str, minute: int, close: float) -> Bar:
    return Bar(symbol, T0 + timedelta(minutes=minute), 60, close, close, close, close)


def session(text: str) -> tuple[LiveSession, list[OrderRequest]]:
    parsed = parse_strategy(text, "s.qkt")
    assert parsed.strategy is not None, parsed.diagnostics
    orders: list[OrderRequest] = []
    live = LiveSession(
        parsed.strategy,
        BrokerRegistry(),
        on_event=lambda e: orders.append(e) if isinstance(e, OrderRequest) else None,
    )
    return live, orders


def feed(live: LiveSession, symbol: str, minute: int, close: float) -> None:
    b = bar(symbol, minute, close)
    live.on_row(Row(symbol, b, None, b.end))


def test_venue_history_counts_towards_warmup() -> None:
    """Two bars of history, then live bars: the third bar is still held, the fourth acts."""
    live, orders = session(TWO)
    assert live.warm("eur", [bar("EURUSD", 0, 0.9), bar("EURUSD", 1, 0.9)]) == 2
    feed(live, "EURUSD", 2, 1.1)  # the third bar: held, its edge remembered
    assert orders == []
    feed(live, "EURUSD", 3, 0.9)
    feed(live, "EURUSD", 4, 1.2)  # warm now: the condition turns true again and fires
    assert [(o.symbol, o.side) for o in orders] == [("EURUSD", "buy")]


def test_only_rules_on_a_stream_still_warming_up_are_held() -> None:
    live, orders = session(TWO)
    feed(live, "XAUUSD", 0, 2.0)  # gold declares no WARMUP: its own rule acts at once
    feed(live, "EURUSD", 0, 1.5)  # the rule on gold and eur waits for eur
    assert [(o.symbol, o.side) for o in orders] == [("XAUUSD", "buy")]
    for minute in (1, 2, 3):
        feed(live, "EURUSD", minute, 0.5)
    feed(live, "XAUUSD", 1, 0.5)
    feed(live, "EURUSD", 4, 1.5)  # eur is warm: its rule fires
    feed(live, "XAUUSD", 2, 2.0)  # and so does the rule on both
    assert [(o.symbol, o.side) for o in orders][1:] == [
        ("EURUSD", "buy"),
        ("XAUUSD", "buy"),
        ("XAUUSD", "sell"),
    ]
