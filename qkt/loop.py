"""The asyncio loop a session with venue brokers runs on: rows in, orders out, pollers beside.

The session (the synchronous core) handles one row at a time; after each row the loop waits until
the orders that row produced have their answers, so the next row sees their fills — the same order
of events as a paper replay. Meanwhile the venue brokers' position pollers and the venue quote
pollers run as their own tasks, each on its profile's interval, so a slow gateway delays nobody
else; sessions sharing a profile share its polls (:mod:`qkt.brokers.mt5.venue`). Stopping (Ctrl-C,
cancellation) never abandons an order in flight: the loop waits for its answer, then closes every
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

from qkt.brokers.base import VenueBroker
from qkt.feeds.replay import ReplaySource, Row
from qkt.feeds.warmup import warm_up
from qkt.session import LiveSession, Summary


async def drive(
    session: LiveSession,
    rows: ReplaySource | Iterable[Row] | AsyncIterator[Row],
    *,
    warm: bool = False,
) -> Summary:
    """Start the session's venue brokers, feed it ``rows`` and return its summary.

    ``rows`` is a replay (paced without blocking the loop), any iterable of rows, or an async
    iterator such as :meth:`qkt.feeds.venue.VenueQuotes.rows`. With ``warm`` (live rows), the
    streams are first warmed from their venues' bar history (:mod:`qkt.feeds.warmup`); a replay
    never is. A poller that fails stops the session with its error; so does the session's own
    failure, after the pollers stopped."""
    try:
        await session.start()  # inside: a start stopped half-way still closes its connections
        async with asyncio.TaskGroup() as group:
            pollers = [
                group.create_task(_poll_positions(broker), name=f"positions of {profile}")
                for profile, broker in session.venues.items()
            ]
            try:
                if warm:
                    await warm_up(session)
                async with contextlib.aclosing(_rows(rows)) as source:
                    async for row in source:
                        session.on_row(row)
                        await session.settle()
            finally:
                for task in pollers:
                    task.cancel()
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    finally:
        await session.aclose()
    return session.finish()


async def _rows(
    rows: ReplaySource | Iterable[Row] | AsyncIterator[Row],
) -> AsyncGenerator[Row, None]:
    if isinstance(rows, ReplaySource):
        for wait, row in rows.paced():
            if wait > 0:
                await asyncio.sleep(wait)
            yield row
    elif isinstance(rows, AsyncIterator):
        async for row in rows:
            yield row
    else:
        for row in rows:
            yield row


async def _poll_positions(broker: VenueBroker) -> None:
    """The broker's position poller, every ``poll_interval_ms`` of its profile, on the loop's
    grid of that interval: every session of a profile polls at the same moments, so the venue
    connection they share answers them all with one read (a poll joins the one running)."""
    profile: Any = getattr(broker, "profile", None)
    every = int((profile.values.get("poll_interval_ms") if profile else None) or 1000) / 1000
    loop = asyncio.get_running_loop()
    due = math.floor(loop.time() / every) * every
    while True:
        due = max(due + every, math.floor(loop.time() / every) * every)
        await asyncio.sleep(max(0.0, due - loop.time()))
        await broker.poll()
