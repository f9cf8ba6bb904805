"""Candle boundaries, position netting and PnL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from qkt.engine.candles import CandleBuilder
from qkt.engine.events import Bar
from qkt.engine.positions import Position

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def minute(i: int, price: float) -> Bar:
    return Bar("X", T0 + timedelta(minutes=i), 60, price, price + 1, price - 1, price, 2.0)


def test_one_minute_bars_close_five_minute_candles_on_the_boundary() -> None:
    builder = CandleBuilder("X", 300)
    closed = [c for i in range(10) for c in builder.add_bar(minute(i, 100 + i))]
    assert [(c.time, c.open, c.high, c.low, c.close, c.volume) for c in closed] == [
        (T0, 100, 105, 99, 104, 10.0),
        (T0 + timedelta(minutes=5), 105, 110, 104, 109, 10.0),
    ]


def test_a_gap_closes_the_open_candle() -> None:
    builder = CandleBuilder("X", 300)
    assert builder.add_bar(minute(0, 1)) == []
    closed = builder.add_bar(minute(7, 2))
    assert [c.time for c in closed] == [T0]
    assert [c.time for c in builder.add_bar(minute(9, 3))] == [T0 + timedelta(minutes=5)]


def test_ticks_build_candles() -> None:
    builder = CandleBuilder("X", 60)
    assert builder.add_tick(T0 + timedelta(seconds=1), 1.0) == []
    assert builder.add_tick(T0 + timedelta(seconds=30), 3.0) == []
    (candle,) = builder.add_tick(T0 + timedelta(seconds=61), 2.0)
    assert (candle.open, candle.high, candle.low, candle.close) == (1.0, 3.0, 1.0, 3.0)
    assert [c.close for c in builder.flush(T0 + timedelta(minutes=2))] == [2.0]


def test_position_netting_average_and_realized_pnl() -> None:
    p = Position("exness", "EURUSD")
    p.apply("buy", Decimal("1"), Decimal("1.1000"))
    p.apply("buy", Decimal("1"), Decimal("1.1200"))
    assert (p.qty, p.avg_price) == (Decimal(2), Decimal("1.1100"))
    assert p.apply("sell", Decimal("0.5"), Decimal("1.1300")) == Decimal("0.0100")
    assert p.unrealized(Decimal("1.1000")) == Decimal("-0.015")
    realized = p.apply("sell", Decimal("2.5"), Decimal("1.1000"))
    assert realized == Decimal("-0.0150")
    assert (p.qty, p.avg_price) == (Decimal("-1"), Decimal("1.1000"))  # reversed to a short
