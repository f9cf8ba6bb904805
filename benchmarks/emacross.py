"""The same EMA(9)/EMA(21) crossover in qkt and in backtrader, on the same in-memory bars.

Both buy 1 unit when the fast EMA crosses above the slow one and close when it crosses below, and
both fill at the signal bar's close (backtrader with cheat-on-close), so their trades can be
compared one for one. Used by benchmarks/engine.py and tests/engine/test_backtrader_parity.py.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from qkt.brokers.registry import BrokerRegistry
from qkt.dsl import parse_strategy
from qkt.engine.events import Bar, OrderFilled
from qkt.feeds.replay import Row
from qkt.session import LiveSession

STRATEGY = """STRATEGY emacross VERSION 1
SYMBOLS
e = PAPER:EURUSD EVERY 1m
RULES
WHEN ema(e, 9) crosses ABOVE ema(e, 21) THEN BUY e SIZING 1
WHEN ema(e, 9) crosses BELOW ema(e, 21) THEN CLOSE e
"""
START = datetime(2026, 1, 1, tzinfo=UTC)

Trade = tuple[str, str, Decimal]  # (time, side, price)


def make_bars(n: int, seed: int = 11) -> list[tuple[float, float, float, float, float]]:
    rng = random.Random(seed)
    price, out = 1.1, []
    for _ in range(n):
        opened = price
        price = round(price * math.exp(rng.gauss(0, 0.0003)), 5)
        high = round(max(opened, price) * (1 + abs(rng.gauss(0, 0.0001))), 5)
        low = round(min(opened, price) * (1 - abs(rng.gauss(0, 0.0001))), 5)
        out.append((opened, high, low, price, 100.0))
    return out


def rows(bars: list[tuple[float, float, float, float, float]]) -> list[Row]:
    return [
        Row(
            None,
            Bar("EURUSD", START + timedelta(minutes=i), 60, *b),
            None,
            START + timedelta(minutes=i + 1),
        )
        for i, b in enumerate(bars)
    ]


def run_qkt(replay: list[Row]) -> list[Trade]:
    parsed = parse_strategy(STRATEGY, "emacross.qkt")
    assert parsed.strategy is not None
    trades: list[Trade] = []

    def record(event: Any) -> None:
        if isinstance(event, OrderFilled):
            trades.append((event.time.strftime("%Y-%m-%dT%H:%M"), event.side, event.price))

    session = LiveSession(parsed.strategy, BrokerRegistry(), on_event=record)
    session.run(replay)
    return trades


def run_backtrader(bars: list[tuple[float, float, float, float, float]]) -> list[Trade]:
    import backtrader as bt

    class ListFeed(bt.feed.DataBase):  # type: ignore[misc,name-defined]
        def start(self) -> None:
            super().start()
            self._index = 0

        def _load(self) -> bool:
            if self._index >= len(bars):
                return False
            o, h, lo, c, v = bars[self._index]
            # backtrader stamps a bar with its close time: our open time + 1 minute.
            moment = START + timedelta(minutes=self._index + 1)
            self.lines.datetime[0] = bt.date2num(moment.replace(tzinfo=None))
            self.lines.open[0], self.lines.high[0], self.lines.low[0] = o, h, lo
            self.lines.close[0], self.lines.volume[0] = c, v
            self._index += 1
            return True

    trades: list[Trade] = []

    class Cross(bt.Strategy):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            fast = bt.ind.EMA(self.data.close, period=9)
            slow = bt.ind.EMA(self.data.close, period=21)
            self.cross = bt.ind.CrossOver(fast, slow)

        def next(self) -> None:
            if self.cross[0] > 0:
                self.buy(size=1)
            elif self.cross[0] < 0 and self.position.size:
                self.close()

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                when = bt.num2date(order.executed.dt)  # the bar close, as qkt stamps fills
                side = "buy" if order.isbuy() else "sell"
                price = Decimal(repr(round(order.executed.price, 5)))
                trades.append((when.strftime("%Y-%m-%dT%H:%M"), side, price))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.set_coc(True)
    cerebro.adddata(ListFeed())
    cerebro.addstrategy(Cross)
    cerebro.run()
    return trades
