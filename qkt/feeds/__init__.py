"""Market data sources: replayed CSV files (:mod:`.replay`) and venue quotes (:mod:`.venue`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from qkt.feeds.replay import Row


class MarketDataSource(Protocol):
    """Rows of bars or ticks in time order; a session consumes them one by one."""

    def __iter__(self) -> Iterator[Row]: ...
