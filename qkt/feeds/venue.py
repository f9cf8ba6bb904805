"""Venue quotes (``market_data.source: venue``): each stream priced by the venue that fills it.

For every MT5 route of a session, ``/symbol_info_tick/{broker symbol}`` is polled every
``tick_poll_interval_ms`` of its profile; each new quote becomes a tick row for that label's
streams. A failed read produces nothing (the previous quote stands) and is reported once per outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qkt.brokers.mt5.client import GatewayError
from qkt.engine.events import Tick
from qkt.feeds.replay import Row


@dataclass
class _Poll:
    label: str
    symbol: str
    broker_symbol: str
    broker: Any
    every_s: float
    due: float = 0.0
    last_msc: int = -1
    failing: bool = False


class VenueQuotes:
    def __init__(
        self,
        session: Any,
        *,
        on_error: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._polls: list[_Poll] = []
        self._sleep = sleep
        self._now = monotonic
        self._on_error = on_error or (lambda message: None)
        seen: set[tuple[str, str]] = set()
        for route in session.plan.routes:
            broker = session.brokers.get(route.profile)
            if route.type != "mt5" or not hasattr(broker, "client"):
                continue
            key = (route.label.lower(), route.symbol)
            if key in seen:
                continue
            seen.add(key)
            every = int(broker.profile.values.get("tick_poll_interval_ms") or 1000) / 1000
            self._polls.append(_Poll(route.label, route.symbol, route.broker_symbol, broker, every))

    @property
    def empty(self) -> bool:
        return not self._polls

    def __iter__(self) -> Iterator[Row]:
        while self._polls:
            now = self._now()
            for poll in self._polls:
                if now < poll.due:
                    continue
                poll.due = now + poll.every_s
                row = self._read(poll)
                if row is not None:
                    yield row
            wait = min(p.due for p in self._polls) - self._now()
            if wait > 0:
                self._sleep(wait)

    def _read(self, poll: _Poll) -> Row | None:
        try:
            quote = poll.broker.client.quote(poll.broker_symbol)
        except GatewayError as exc:
            if not poll.failing:
                self._on_error(exc.diagnostics[0].message)
            poll.failing = True
            return None
        poll.failing = False
        if quote.time_msc and quote.time_msc == poll.last_msc:
            return None  # no new quote since the last read
        poll.last_msc = quote.time_msc
        moment = (
            datetime.fromtimestamp(quote.time_msc / 1000, UTC)
            if quote.time_msc
            else datetime.now(UTC)
        )
        tick = Tick(poll.symbol, moment, float(quote.bid), float(quote.ask))
        return Row(poll.symbol, None, tick, moment, poll.label)
