"""Clocks: the wall clock for live sessions, a simulated one driven by data timestamps for replays."""

from __future__ import annotations

from datetime import UTC, datetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """Time is whatever the data says; it never moves backwards."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance_to(self, moment: datetime) -> None:
        if moment > self._now:
            self._now = moment
