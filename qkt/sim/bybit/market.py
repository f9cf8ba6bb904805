"""Prices of the simulated venue: one book per symbol (linear and spot trade on the same
quotes), moved by a seeded random walk or by scripted rows from a replay file, and the
1-minute history behind ``/v5/market/kline`` and the 24 h figures of ``/v5/market/tickers``.

The history is seeded: ``history_days`` of 1-minute bars ending where the quotes start, then
live bars of the last price as quotes move (the open bar included). Longer intervals aggregate
them on UTC boundaries (weeks from Monday, months from the 1st).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from qkt.sim.bybit.common import DAY_MS, WEEK_MS, to_step
from qkt.sim.bybit.instruments import Spec

MINUTE_MS = 60_000
INTERVALS = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M")
MONDAY_MS = 4 * DAY_MS  # 1970-01-05, the first Monday of the epoch

Candle = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]  # start ms, o, h, l, c, volume
ScriptRow = tuple[str | None, Decimal, Decimal]  # symbol (None: every one), bid, ask


@dataclass
class Quote:
    bid: Decimal
    ask: Decimal
    last: Decimal
    time_ms: int


def bucket(start_ms: int, interval: str) -> int:
    """Open time of the ``interval`` bar holding the minute ``start_ms``."""
    if interval == "M":
        moment = datetime.fromtimestamp(start_ms / 1000, UTC)
        return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp() * 1000)
    if interval == "W":
        return (start_ms - MONDAY_MS) // WEEK_MS * WEEK_MS + MONDAY_MS
    size = DAY_MS if interval == "D" else int(interval) * MINUTE_MS
    return start_ms // size * size


class Market:
    def __init__(
        self, specs: dict[str, Spec], seed: int, history_days: int, now_ms: Callable[[], int]
    ) -> None:
        self.specs = specs
        self.seed = seed
        self.history_days = history_days
        self.now_ms = now_ms
        self.quotes: dict[str, Quote] = {}
        self._rng = random.Random(seed)
        self._script: list[ScriptRow] | None = None
        self._anchors: dict[str, tuple[int, Decimal]] = {}  # first live minute, its price
        self._past: dict[str, list[Candle]] = {}  # synthesised on first use
        self._live: dict[str, list[Candle]] = {}
        for spec in specs.values():
            self._restart(spec.symbol, spec.price)

    # ------------------------------------------------------------ quotes
    def _restart(self, symbol: str, price: Decimal) -> None:
        """Start ``symbol``'s quotes at ``price``, its seeded history ending there."""
        spec = self.specs[symbol]
        mid = to_step(price, spec.tick)
        self._live[symbol] = []
        self._past.pop(symbol, None)
        self.set(symbol, mid - spec.tick, mid + spec.tick, mid)
        self._anchors[symbol] = (self._live[symbol][0][0], mid)

    def set(self, symbol: str, bid: Decimal, ask: Decimal, last: Decimal | None = None) -> None:
        """A new best bid/ask (on the tick grid: bid down, ask up); ``last`` defaults to the mid
        rounded to the tick. The open 1-minute bar moves with the last price."""
        tick = self.specs[symbol].tick
        bid = to_step(bid, tick, ROUND_FLOOR)
        ask = max(to_step(ask, tick, ROUND_CEILING), bid + tick)
        last = to_step((bid + ask) / 2 if last is None else last, tick)
        now = self.now_ms()
        self.quotes[symbol] = Quote(bid, ask, last, now)
        self._record(symbol, now, Decimal(self._rng.randint(1, 50)) * self.specs[symbol].qty_step)

    def trade(self, symbol: str, qty: Decimal) -> None:
        """A fill adds its quantity to the open bar's volume."""
        self._record(symbol, self.now_ms(), qty)

    def follow(self, rows: list[ScriptRow]) -> None:
        """Quotes come from ``rows`` (one per :meth:`step`) instead of the random walk; each
        symbol starts at its first row, with its seeded history ending there."""
        self._script = list(reversed(rows))
        for symbol in self.specs:
            first = next((r for r in rows if r[0] in (None, symbol)), None)
            if first is not None:
                self._restart(symbol, (first[1] + first[2]) / 2)
                self.set(symbol, first[1], first[2])

    def step(self) -> None:
        """The next scripted row, else one seeded random-walk move of every symbol."""
        if self._script is not None:
            if self._script:
                symbol, bid, ask = self._script.pop()
                for name in [symbol] if symbol else list(self.specs):
                    if name in self.specs:
                        self.set(name, bid, ask)
            return
        for symbol, spec in self.specs.items():
            quote = self.quotes[symbol]
            mid = (quote.bid + quote.ask) / 2
            moved = mid * Decimal(repr(math.exp(self._rng.gauss(0, 0.0002))))
            self.set(symbol, moved - spec.tick / 2, moved + spec.tick / 2)

    # ------------------------------------------------------------ bars
    def _record(self, symbol: str, now: int, volume: Decimal) -> None:
        last = self.quotes[symbol].last
        minute = now // MINUTE_MS * MINUTE_MS
        live = self._live[symbol]
        if live and live[-1][0] >= minute:
            t, o, h, lo, _, v = live[-1]
            live[-1] = (t, o, max(h, last), min(lo, last), last, v + volume)
        else:
            live.append((minute, last, last, last, last, volume))

    def minutes(self, symbol: str) -> list[Candle]:
        """Every 1-minute bar of ``symbol``, oldest first: the seeded past, then the live bars."""
        past = self._past.get(symbol)
        if past is None:
            past = self._past[symbol] = self._synthesise(symbol)
        return past + self._live[symbol]

    def _synthesise(self, symbol: str) -> list[Candle]:
        spec = self.specs[symbol]
        start, price = self._anchors[symbol]
        rng = random.Random(f"{self.seed}:{symbol}")
        count = self.history_days * 1440
        closes = [float(price)]
        for _ in range(count):  # walk back from the start price
            closes.append(closes[-1] * math.exp(-rng.gauss(0, 0.0004)))
        closes.reverse()

        def tick(value: float) -> Decimal:
            return to_step(Decimal(repr(value)), spec.tick)

        bars: list[Candle] = []
        for i in range(count):
            o, c = closes[i], closes[i + 1]
            h = tick(max(o, c) * (1 + abs(rng.gauss(0, 0.0002))))
            lo = tick(min(o, c) * (1 - abs(rng.gauss(0, 0.0002))))
            do, dc = tick(o), tick(c)
            volume = Decimal(rng.randint(20, 2000)) * spec.qty_step
            bars.append((start - (count - i) * MINUTE_MS, do, max(h, do, dc), min(lo, do, dc),
                         dc, volume))  # fmt: skip
        return bars

    def candles(self, symbol: str, interval: str) -> list[Candle]:
        """Bars of ``interval`` (one of :data:`INTERVALS`), oldest first."""
        minutes = self.minutes(symbol)
        if interval == "1":
            return minutes
        out: list[Candle] = []
        for t, o, h, lo, c, v in minutes:
            opened = bucket(t, interval)
            if out and out[-1][0] == opened:
                bt, bo, bh, bl, _, bv = out[-1]
                out[-1] = (bt, bo, max(bh, h), min(bl, lo), c, bv + v)
            else:
                out.append((opened, o, h, lo, c, v))
        return out

    def day_stats(self, symbol: str) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        """Over the last 24 h: the price 24 h ago, high, low, volume and turnover."""
        since = self.now_ms() - DAY_MS
        bars = [b for b in self.minutes(symbol)[-1441:] if b[0] >= since]
        if not bars:
            last = self.quotes[symbol].last
            return last, last, last, Decimal(0), Decimal(0)
        high = max(b[2] for b in bars)
        low = min(b[3] for b in bars)
        volume = sum((b[5] for b in bars), Decimal(0))
        turnover = sum((b[5] * b[4] for b in bars), Decimal(0))
        return bars[0][1], high, low, volume, turnover
