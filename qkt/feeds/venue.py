"""Venue quotes (``market_data.source: venue``): each stream priced by the venue that fills it.

For every MT5 route of a session, ``/symbol_info_tick/{broker symbol}`` is polled every
``tick_poll_interval_ms`` of its profile — by the profile's one quote poller of that symbol, shared
with every other session streaming it (:meth:`~qkt.brokers.mt5.venue.MT5Venue.quotes`); each new
quote becomes a tick row for that label's streams, stamped in UTC (gateways write tick times on the
broker server's wall clock; the profile's ``server_time_zone`` converts them). A failed read
produces nothing (the previous quote stands); so does a quote that is no price (a bid or ask not
above 0 — a closed market's zeros —, or above :data:`~qkt.limits.MAX_PRICE`) or whose time is not
one: both are failed reads. An outage is said on the session's bus when it starts and when it ends
(:class:`~qkt.engine.events.VenueNotice`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from qkt.brokers.mt5.clock import to_utc
from qkt.brokers.notices import Outage
from qkt.engine.events import Tick
from qkt.errors import QktError
from qkt.feeds.replay import Row
from qkt.limits import MAX_PRICE, shown


@dataclass
class _Poll:
    label: str
    symbol: str
    broker_symbol: str
    venue: Any  # the profile's shared connection: quotes(broker_symbol), zone, idle()
    outage: Outage
    zone: tzinfo | None = None  # the profile's server_time_zone (MT5); None: UTC
    last_msc: int = -1


class VenueQuotes:
    def __init__(self, session: Any) -> None:
        self._polls: list[_Poll] = []
        seen: set[tuple[str, str]] = set()
        registry = getattr(session, "registry", None)
        for route in session.plan.routes:
            venue = getattr(session.venues.get(route.profile), "venue", None)
            broker_symbol = route.broker_symbol
            if venue is None and route.type == "paper" and registry is not None:
                venue = _quotes_from(registry, route.profile)  # paper on a venue's quotes
                broker_symbol = venue.broker_symbol(route.symbol) if venue is not None else ""
            if venue is None or not hasattr(venue, "quotes"):
                continue
            key = (route.label.lower(), route.symbol)
            if key in seen:
                continue
            seen.add(key)
            outage = Outage(session.bus, session.clock, venue.name, f"quotes of {broker_symbol}")
            zone = getattr(venue, "zone", None)
            self._polls.append(_Poll(route.label, route.symbol, broker_symbol, venue, outage, zone))

    @property
    def empty(self) -> bool:
        return not self._polls

    async def rows(self) -> AsyncIterator[Row]:
        """New quotes as rows, in the order they arrive; each symbol is read by its own task from
        its profile's poller of it, so one slow gateway does not hold the others' quotes back."""
        queue: asyncio.Queue[Row | BaseException] = asyncio.Queue()
        tasks = [asyncio.create_task(self._poll(poll, queue)) for poll in self._polls]
        try:
            while tasks:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll(self, poll: _Poll, queue: asyncio.Queue[Row | BaseException]) -> None:
        shared = poll.venue.quotes(poll.broker_symbol)
        reads = shared.subscribe()
        try:
            while True:
                row = self._read(poll, await reads.get())
                if row is not None:
                    queue.put_nowait(row)
        except Exception as exc:  # a bug, not a venue failure: stop the reader with it
            queue.put_nowait(exc)
        finally:
            shared.unsubscribe(reads)
            if hasattr(poll.venue, "idle"):
                await poll.venue.idle()

    def _read(self, poll: _Poll, quote: Any) -> Row | None:
        if isinstance(quote, QktError):  # the venue did not answer, or not with a quote
            poll.outage.failed(quote.diagnostics[0].message)
            return None
        if isinstance(quote, Exception):
            raise quote
        bid, ask = quote.bid, quote.ask
        if not (0 < bid <= MAX_PRICE and 0 < ask <= MAX_PRICE):  # a closed market's 0, 1e400
            poll.outage.failed(f"the quote is not a price (bid {shown(bid)}, ask {shown(ask)})")
            return None
        try:
            # The tick's time is the broker server's wall clock: UTC through the profile's zone.
            moment = to_utc(quote.time_msc, poll.zone) if quote.time_msc else datetime.now(UTC)
        except (ValueError, OverflowError, OSError):
            poll.outage.failed(f"the quote's time_msc {quote.time_msc} is not a time")
            return None
        poll.outage.answered()
        if quote.time_msc and quote.time_msc == poll.last_msc:
            return None  # no new quote since the last read
        poll.last_msc = quote.time_msc
        tick = Tick(poll.symbol, moment, float(bid), float(ask))
        return Row(poll.symbol, None, tick, moment, poll.label)


def _quotes_from(registry: Any, profile: str) -> Any:
    """The venue a paper profile takes its quotes from (``quotes_from``), if it names one."""
    entry = registry.resolve(profile)
    source = None if entry is None else entry.profile.values.get("quotes_from")
    return registry.venue(str(source)) if source else None
