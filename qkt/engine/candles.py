"""Aggregation of ticks or bars into a stream's timeframe, with boundaries aligned to UTC epoch.

A candle of ``tf`` seconds covers ``[T, T + tf)`` with ``T`` a multiple of ``tf`` since the epoch. A
replayed bar closes the candle when the bar's end reaches the candle's end (a 1-minute file drives
1m, 5m and 1h streams); a bar or tick beyond the candle closes it first (gaps in the data).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from qkt.engine.events import Bar


class CandleBuilder:
    __slots__ = ("_close", "_high", "_low", "_open", "_start", "_volume", "seconds", "symbol")

    def __init__(self, symbol: str, seconds: int) -> None:
        self.symbol = symbol
        self.seconds = seconds
        self._start: int | None = None  # epoch seconds of the open candle

    def is_aligned(self, bar: Bar) -> bool:
        """True when ``bar`` starts on this builder's boundary and nothing is pending."""
        return self._start is None and int(bar.time.timestamp()) % self.seconds == 0

    def _bucket(self, moment: datetime) -> int:
        epoch = int(moment.timestamp())
        return epoch - epoch % self.seconds

    def _emit(self) -> Bar:
        assert self._start is not None
        bar = Bar(
            self.symbol,
            datetime.fromtimestamp(self._start, UTC),
            self.seconds,
            self._open,
            self._high,
            self._low,
            self._close,
            self._volume,
        )
        self._start = None
        return bar

    def _merge(self, start: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        if self._start is None:
            self._start = start
            self._open, self._high, self._low, self._close, self._volume = o, h, lo, c, v
            return
        if h > self._high:
            self._high = h
        if lo < self._low:
            self._low = lo
        self._close = c
        self._volume += v

    def add_bar(self, bar: Bar) -> list[Bar]:
        """Feed one input bar; returns the candles it closed (zero, one, or two after a gap)."""
        closed: list[Bar] = []
        start = self._bucket(bar.time)
        if self._start is not None and start != self._start:
            closed.append(self._emit())
        self._merge(start, bar.open, bar.high, bar.low, bar.close, bar.volume)
        bar_end = int(bar.time.timestamp()) + bar.seconds
        if bar_end >= start + self.seconds:
            closed.append(self._emit())
        return closed

    def add_tick(self, moment: datetime, price: float, volume: float = 0.0) -> list[Bar]:
        """Feed one tick; a tick in a later candle closes the open one."""
        closed: list[Bar] = []
        start = self._bucket(moment)
        if self._start is not None and start != self._start:
            closed.append(self._emit())
        self._merge(start, price, price, price, price, volume)
        return closed

    def flush(self, until: datetime) -> list[Bar]:
        """Close the open candle if its period has ended by ``until`` (ticks stopped arriving)."""
        if self._start is not None and until >= datetime.fromtimestamp(
            self._start, UTC
        ) + timedelta(seconds=self.seconds):
            return [self._emit()]
        return []
