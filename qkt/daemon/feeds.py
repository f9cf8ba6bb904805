"""Where a deployment's rows come from (SPEC §6.1 "Market data in the daemon"): its deploy's
replay — the CSV text the client sent, written to ``<state-dir>/replays/`` (mode 0600) for
:class:`~qkt.feeds.replay.ReplaySource`, at its speed —, else the daemon's ``market_data``: the
venues' quotes (:class:`~qkt.feeds.venue.VenueQuotes`), the configuration's replay (relative to
the configuration file), or none (the session waits, its brokers and pollers running).

A replay at ``max`` speed yields to the loop every few rows, so the control API and the other
deployments keep going. Once the deployment is halted (a stop), no further row is handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from qkt.daemon.planning import pace
from qkt.feeds.replay import ReplaySource, Row
from qkt.feeds.venue import VenueQuotes

if TYPE_CHECKING:
    from qkt.daemon.deployment import LiveDeployment

_YIELD_EVERY = 64  # replay rows between two yields to the loop at max speed


def rows_of(dep: LiveDeployment) -> AsyncIterator[Row]:
    assert dep.session is not None
    if dep.csv is not None:
        return _paced(dep, ReplaySource(write_replay(dep), pace(dep.speed)))
    market = dep.market
    if market.source == "replay" and market.replay is not None:
        path = Path(market.replay.path)
        config = dep.env.context.config.path
        if not path.is_absolute() and config is not None:
            path = config.parent / path
        return _paced(dep, ReplaySource(path, market.replay.speed))
    if market.source == "venue":
        quotes = VenueQuotes(dep.session)
        if not quotes.empty:
            return _gated(dep, quotes.rows())
    return _idle()


def replay_path(dep: LiveDeployment) -> Path:
    return dep.env.replays / f"{dep.name.replace('/', '--')}.csv"


def write_replay(dep: LiveDeployment) -> Path:
    assert dep.csv is not None
    path = replay_path(dep)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    with open(path, "w", encoding="utf-8", opener=_private) as handle:
        handle.write(dep.csv)
    dep.replay_file = path
    return path


async def _paced(dep: LiveDeployment, source: ReplaySource) -> AsyncIterator[Row]:
    for count, (wait, row) in enumerate(source.paced()):
        if wait > 0:
            await asyncio.sleep(wait)
        elif count % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a replay at max speed shares the loop
        if dep.halt.is_set():
            await forever()
        yield row


async def _gated(dep: LiveDeployment, rows: AsyncIterator[Row]) -> AsyncIterator[Row]:
    async with contextlib.aclosing(rows) as source:  # type: ignore[type-var]
        async for row in source:
            if dep.halt.is_set():
                await forever()
            yield row


async def _idle() -> AsyncIterator[Row]:
    await forever()
    yield  # type: ignore[misc]  # pragma: no cover


async def forever() -> None:
    await asyncio.Event().wait()


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
