"""Replay of a CSV of bars or ticks (SPEC §7), told apart by the header.

Bars: ``time,open,high,low,close[,volume][,symbol]``; ticks: ``time,bid,ask[,volume][,symbol]``.
``time`` is ISO-8601 (UTC when it has no offset) or epoch milliseconds; a bar's time is its open
time, and its length is the smallest gap between the file's first timestamps (one minute for a
1-minute file). A ``symbol`` column routes rows to the streams of that qkt symbol; without it every
row feeds every stream.

The whole file is judged before its first row is handed out (:mod:`qkt.feeds.replaycheck`):
:meth:`ReplaySource.check` does it with the strategy's symbols and keeps the verdict; iterating
a source that was not checked checks it first, so a bad row anywhere stops a replay before it
trades. The reader itself stays defensive: a file changed after its check still fails with a
positioned error rather than a wrong price.
"""

from __future__ import annotations

import csv
import time as _time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from qkt.diagnostics import error
from qkt.engine.events import Bar, Tick
from qkt.feeds.replaycheck import (
    BAR_COLUMNS,
    EPOCH_SECONDS_BELOW,
    TICK_COLUMNS,
    ReplayError,
    ReplayReport,
    check_replay,
    not_a_file,
    parse_time,
    read_layout,
)

__all__ = [
    "BAR_COLUMNS",
    "TICK_COLUMNS",
    "ReplayError",
    "ReplayReport",
    "ReplaySource",
    "Row",
    "parse_time",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Row:
    """One row of market data; ``symbol`` is None when it feeds every stream, ``label`` is set
    when it is one venue's quote (then it feeds only that label's streams)."""

    symbol: str | None
    bar: Bar | None
    tick: Tick | None
    time: datetime  # when the row is known: a bar's close, a tick's time
    label: str | None = None


class ReplaySource:
    def __init__(self, path: Path, speed: str | float = "max") -> None:
        self.path = path
        self.speed = speed
        self.report: ReplayReport | None = None
        try:
            refused = not_a_file(path)
            if refused is not None:
                raise ReplayError(refused)
            with path.open(newline="", encoding="utf-8-sig") as fh:
                header = next(csv.reader(fh), [])
        except (UnicodeDecodeError, csv.Error) as exc:  # the check names the line
            found = [d for d in check_replay(path).diagnostics if d.is_error]
            raise ReplayError(
                found or error("replay-unreadable", f"cannot read: {exc}", path=str(path))
            ) from None
        except OSError as exc:
            raise ReplayError(
                error("replay-unreadable", f"cannot read: {exc.strerror or exc}", path=str(path))
            ) from None
        layout, problems = read_layout(header, str(path))
        if layout is None:
            raise ReplayError(problems)
        self.layout = layout
        self.columns = list(layout.columns)
        self.kind = layout.kind
        self.has_symbol = layout.has_symbol
        self.seconds = self._bar_seconds() if self.kind == "bars" else 0

    def check(self, symbols: Iterable[str] | None = None) -> ReplayReport:
        """Judge the whole file (once; ``symbols``: the strategy's, for the symbol warnings).
        The report's errors are what iterating would raise."""
        if self.report is None:
            self.report = check_replay(self.path, symbols)
        return self.report

    def _bar_seconds(self) -> int:
        times: list[datetime] = []
        ti = self.layout.index["time"]
        try:
            for _line, values in self._records():
                try:
                    times.append(parse_time(values[ti]))
                except (ValueError, OverflowError, IndexError):
                    continue  # the check names it
                if len(times) >= 50:
                    break
        except ReplayError:
            pass  # the check names it
        gaps = [int((b - a).total_seconds()) for a, b in pairwise(times)]
        positive = [g for g in gaps if g > 0]
        return min(positive) if positive else 60

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        shown = str(self.path)
        try:
            with self.path.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                next(reader, None)
                width = len(self.columns)
                for values in reader:
                    if len(values) != width and not "".join(values).strip():
                        continue  # a blank line
                    yield reader.line_num, values
        except csv.Error as exc:
            raise ReplayError(
                error("replay-csv", f"the row is not CSV: {exc}", path=shown, line=reader.line_num)
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ReplayError(
                error("replay-unreadable", f"cannot read: {exc}", path=shown)
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
        self.check().raise_for_errors()
        shown = str(self.path)
        index = self.layout.index
        width = len(self.columns)
        ti = index["time"]
        si = index.get("symbol")
        vi = index.get("volume")
        bars = self.kind == "bars"
        seconds = self.seconds
        step = timedelta(seconds=seconds)
        parse_iso = datetime.fromisoformat
        if bars:
            oi, hi, li, ci = index["open"], index["high"], index["low"], index["close"]
        else:
            bi, ai = index["bid"], index["ask"]
        previous: datetime | None = None
        for line, values in self._records():
            try:
                if len(values) != width:
                    raise ValueError("fields")
                text = values[ti].strip()  # as the check reads it: blanks around are allowed
                if text.isdigit() and int(text) >= EPOCH_SECONDS_BELOW:
                    moment = _EPOCH + timedelta(milliseconds=int(text))
                else:
                    moment = parse_iso(text)
                    if moment.tzinfo is None:
                        moment = moment.replace(tzinfo=UTC)
                    elif moment.tzinfo is not UTC:
                        moment = moment.astimezone(UTC)
                symbol = values[si].strip() or None if si is not None else None
                volume = float(values[vi].strip() or 0) if vi is not None else 0.0
                if bars:
                    o, h, lo, c = (
                        float(values[oi]),
                        float(values[hi]),
                        float(values[li]),
                        float(values[ci]),
                    )
                    bar = Bar(symbol or "", moment, seconds, o, h, lo, c, volume)
                    # A bar of the last minutes of 9999 closes past what a datetime holds.
                    closes = moment + step if moment < _LAST - step else _LAST
                    row = Row(symbol, bar, None, closes)
                else:
                    bid, ask = float(values[bi]), float(values[ai])
                    row = Row(symbol, None, Tick(symbol or "", moment, bid, ask, volume), moment)
            except (ValueError, OverflowError):
                raise ReplayError(
                    error(
                        "replay-row",
                        "the row changed since the file was checked: check it again",
                        path=shown,
                        line=line,
                    )
                ) from None
            if previous is not None and moment < previous:
                raise ReplayError(
                    error("replay-order", "rows are not in time order", path=shown, line=line)
                )
            previous = moment
            yield row
