"""Replay of a CSV of bars or ticks (SPEC §7), told apart by the header.

Bars: ``time,open,high,low,close,volume[,symbol]``; ticks: ``time,bid,ask[,volume][,symbol]``.
``time`` is ISO-8601 (UTC when it has no offset) or epoch milliseconds; a bar's time is its open
time, and its length is the smallest gap between the file's first timestamps (one minute for a
1-minute file). A ``symbol`` column routes rows to the streams of that qkt symbol; without it every
row feeds every stream. Rows must be in time order. Bad rows are errors naming the line.
"""

from __future__ import annotations

import csv
import time as _time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from qkt.diagnostics import error
from qkt.engine.events import Bar, Tick
from qkt.errors import QktError

BAR_COLUMNS = ("time", "open", "high", "low", "close")
TICK_COLUMNS = ("time", "bid", "ask")


class ReplayError(QktError):
    """The replay file is wrong."""


@dataclass(frozen=True, slots=True)
class Row:
    """One row of market data; ``symbol`` is None when it feeds every stream, ``label`` is set
    when it is one venue's quote (then it feeds only that label's streams)."""

    symbol: str | None
    bar: Bar | None
    tick: Tick | None
    time: datetime  # when the row is known: a bar's close, a tick's time
    label: str | None = None


def parse_time(text: str) -> datetime:
    text = text.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class ReplaySource:
    def __init__(self, path: Path, speed: str | float = "max") -> None:
        self.path = path
        self.speed = speed
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
        except (OSError, UnicodeDecodeError) as exc:
            raise ReplayError(
                error("replay-unreadable", f"cannot read: {exc}", path=str(path))
            ) from None
        self.columns = [c.strip().lower() for c in header]
        if all(c in self.columns for c in BAR_COLUMNS):
            self.kind = "bars"
        elif all(c in self.columns for c in TICK_COLUMNS):
            self.kind = "ticks"
        else:
            raise ReplayError(
                error(
                    "replay-header",
                    "the header must be time,open,high,low,close[,volume][,symbol] (bars) or "
                    f"time,bid,ask[,volume][,symbol] (ticks), found {','.join(self.columns) or 'nothing'}",
                    path=str(path),
                    line=1,
                )
            )
        self.has_symbol = "symbol" in self.columns
        self.seconds = self._bar_seconds() if self.kind == "bars" else 0

    def _bar_seconds(self) -> int:
        times: list[datetime] = []
        for line, record in self._records():
            times.append(self._time(record, line))
            if len(times) >= 50:
                break
        gaps = [int((b - a).total_seconds()) for a, b in pairwise(times)]
        positive = [g for g in gaps if g > 0]
        return min(positive) if positive else 60

    def _records(self) -> Iterator[tuple[int, dict[str, str]]]:
        with self.path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for line, values in enumerate(reader, start=2):
                if not values or all(not v.strip() for v in values):
                    continue
                yield line, dict(zip(self.columns, values, strict=False))

    def _time(self, record: dict[str, str], line: int) -> datetime:
        try:
            return parse_time(record["time"])
        except (KeyError, ValueError, OverflowError, OSError):
            raise ReplayError(
                error(
                    "replay-row", f"bad time {record.get('time')!r}", path=str(self.path), line=line
                )
            ) from None

    def __iter__(self) -> Iterator[Row]:
        if self.speed == "max":
            return self._rows()
        return self._sleeping()

    def _sleeping(self) -> Iterator[Row]:
        for wait, row in self.paced():
            if wait > 0:
                _time.sleep(wait)
            yield row

    def paced(self) -> Iterator[tuple[float, Row]]:
        """Each row with the seconds to wait before it at the source's speed (0 at ``max``):
        a caller with an event loop waits without blocking it."""
        if self.speed == "max":
            yield from ((0.0, row) for row in self._rows())
            return
        factor = 1.0 if self.speed == "realtime" else float(self.speed)
        started = _time.monotonic()
        first: datetime | None = None
        for row in self._rows():
            first = first or row.time
            due = (row.time - first).total_seconds() / factor
            yield due - (_time.monotonic() - started), row

    def _rows(self) -> Iterator[Row]:
        previous: datetime | None = None
        step = timedelta(seconds=self.seconds)
        for line, record in self._records():
            moment = self._time(record, line)
            if previous is not None and moment < previous:
                raise ReplayError(
                    error(
                        "replay-order", "rows are not in time order", path=str(self.path), line=line
                    )
                )
            previous = moment
            symbol = record.get("symbol", "").strip() or None if self.has_symbol else None
            try:
                if self.kind == "bars":
                    o, h, lo, c = (float(record[k]) for k in ("open", "high", "low", "close"))
                    volume = float(record.get("volume") or 0)
                    bar = Bar(symbol or "", moment, self.seconds, o, h, lo, c, volume)
                    row = Row(symbol, bar, None, moment + step)
                else:
                    bid, ask = float(record["bid"]), float(record["ask"])
                    volume = float(record.get("volume") or 0)
                    row = Row(symbol, None, Tick(symbol or "", moment, bid, ask, volume), moment)
            except (KeyError, ValueError):
                raise ReplayError(
                    error(
                        "replay-row",
                        "a price is missing or not a number",
                        path=str(self.path),
                        line=line,
                    )
                ) from None
            yield row
