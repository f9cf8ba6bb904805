"""Judging a replay file whole before a session trades on it (SPEC §7).

One streaming pass (constant memory: one line at a time, and one entry per symbol) checks:

- the header: bars ``time,open,high,low,close[,volume][,symbol]`` or ticks
  ``time,bid,ask[,volume][,symbol]``, told apart by their columns; unknown, missing and duplicated
  columns are errors; a UTF-8 byte-order mark is accepted;
- every row: as many fields as the header; ``time`` ISO-8601 (UTC without an offset) or epoch
  milliseconds (a whole number below 1e11 is refused: it looks like epoch seconds); prices finite
  and positive, a volume finite and not negative (empty is 0); a bar's
  ``high >= max(open, close)`` and ``min(open, close) >= low``, a tick's ``bid <= ask``; a
  ``symbol`` that is not empty;
- order: the file goes forward in time, and each symbol's times increase (a repeated time is an
  error naming the line it repeats);
- limits: a line over :data:`MAX_LINE` characters, text that is not UTF-8;
- with the strategy's symbols: rows of a symbol no stream trades, and streams no row feeds, are
  warnings (their rows are ignored, those streams get nothing).

Every problem is a diagnostic naming ``file:line`` (and the field's column); the pass stops after
``max_errors`` errors. :func:`check_replay` checks a file, :func:`check_replay_text` a text held
in memory (a deployment's rows).
"""

from __future__ import annotations

import csv
import io
import math
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from qkt.diagnostics import Diagnostic, did_you_mean, error, has_errors, warning
from qkt.errors import QktError

MAX_LINE = 131_072  # characters; also Python's csv field limit, so no field can exceed it
MAX_ERRORS = 20
MAX_SYMBOLS = 10_000
EPOCH_SECONDS_BELOW = 100_000_000_000  # 1e11 ms is 1973-03-03; 1e11 s would be the year 5138
SECONDS_HINT = "looks like epoch seconds; use milliseconds or ISO-8601"

BAR_COLUMNS = ("time", "open", "high", "low", "close")
TICK_COLUMNS = ("time", "bid", "ask")
OPTIONAL = ("volume", "symbol")
BAR_SHAPE = "time,open,high,low,close[,volume][,symbol]"
TICK_SHAPE = "time,bid,ask[,volume][,symbol]"

Kind = Literal["bars", "ticks"]

if TYPE_CHECKING:
    from _csv import Reader as _Reader

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INF = math.inf


class ReplayError(QktError):
    """The replay file is wrong."""


@dataclass(frozen=True, slots=True)
class Layout:
    """What a header says: the kind of rows and where each known column is."""

    kind: Kind
    columns: tuple[str, ...]
    index: dict[str, int]

    @property
    def has_symbol(self) -> bool:
        return "symbol" in self.index


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """The verdict on one replay file: its diagnostics and what it holds."""

    path: str
    kind: Kind | None
    rows: int
    symbols: tuple[str, ...]  # in the order they first appear; () without a symbol column
    first: datetime | None
    last: datetime | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    def raise_for_errors(self) -> list[Diagnostic]:
        """Raise :class:`ReplayError` with every diagnostic if any is an error; else return the
        warnings (to print)."""
        if not self.ok:
            raise ReplayError(self.diagnostics)
        return list(self.diagnostics)


def parse_time(text: str) -> datetime:
    """``time`` as SPEC §7 reads it: epoch milliseconds or ISO-8601 (UTC without an offset).
    Raises ValueError (or OverflowError) when it is neither."""
    text = text.strip()
    if text.isdigit():
        return _EPOCH + timedelta(milliseconds=int(text))
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def check_replay(
    path: Path | str,
    symbols: Iterable[str] | None = None,
    *,
    max_errors: int = MAX_ERRORS,
) -> ReplayReport:
    """Check a replay file; ``symbols`` are the strategy's (None: no symbol is checked)."""
    shown = str(path)
    check = _Check(shown, _symbols(symbols), max_errors)
    try:
        refused = not_a_file(Path(path))
        if refused is not None:
            return _failed(shown, refused)
        with Path(path).open(newline="", encoding="utf-8-sig") as fh:
            return check.run(fh)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _failed(shown, error("replay-unreadable", f"cannot read: {reason}", path=shown))
    except UnicodeDecodeError:
        line = _first_undecodable_line(Path(path))
        check.at("replay-encoding", "the line is not UTF-8 text", line or 1)
        return check._report(None, 0, {}, None, None)


def check_replay_text(
    text: str,
    name: str,
    symbols: Iterable[str] | None = None,
    *,
    max_errors: int = MAX_ERRORS,
) -> ReplayReport:
    """Check replay rows held in memory; diagnostics name ``name``."""
    rows = io.StringIO(text.removeprefix("\ufeff"), "")
    return _Check(name, _symbols(symbols), max_errors).run(rows)


def not_a_file(path: Path) -> Diagnostic | None:
    """A pipe, a device or a directory cannot be a replay (it is read twice: checked, then
    replayed; a FIFO would block the open). Raises OSError when the path cannot be looked at."""
    mode = path.stat().st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return error("replay-not-a-file", "a directory, not a file", path=str(path))
    message = (
        "not a regular file: a replay is read twice (checked, then replayed), "
        "so write it to a file first"
    )
    return error("replay-not-a-file", message, path=str(path))


def read_layout(header: list[str], shown: str) -> tuple[Layout | None, list[Diagnostic]]:
    """The layout a header describes, or None with the header's errors."""
    names = [c.strip().lower() for c in header]
    if names:
        names[0] = names[0].removeprefix("\ufeff")
    columns = _columns(header)
    if not any(names):
        return None, [error("replay-empty", "the file is empty", path=shown, line=1)]
    kind: Kind
    required: tuple[str, ...]
    if any(n in names for n in BAR_COLUMNS[1:]):
        kind, required, shape = "bars", BAR_COLUMNS, BAR_SHAPE
    elif any(n in names for n in TICK_COLUMNS[1:]):
        kind, required, shape = "ticks", TICK_COLUMNS, TICK_SHAPE
    else:
        found = ",".join(names)
        message = f"the header must be {BAR_SHAPE} (bars) or {TICK_SHAPE} (ticks), found {found}"
        return None, [error("replay-header", message, path=shown, line=1)]
    known = (*required, *OPTIONAL)
    diags: list[Diagnostic] = []
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        where = {"path": shown, "line": 1, "column": columns[i]}
        if name in index:
            message = f"column `{name}` appears twice (fields {index[name] + 1} and {i + 1})"
            diags.append(error("replay-duplicate-column", message, **where))
        elif name not in known:
            label = f"unknown column `{name}`" if name else f"field {i + 1} of the header is empty"
            hint = did_you_mean(name, known) if name else None
            diags.append(error("replay-header", label, hint=hint or f"{kind}: {shape}", **where))
        else:
            index[name] = i
    missing = [c for c in required if c not in index]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        message = f"{kind} need the {noun} {', '.join(missing)}"
        diags.append(error("replay-header", message, path=shown, line=1, hint=shape))
    if diags:
        return None, diags
    return Layout(kind, tuple(names), index), []


def _symbols(symbols: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if symbols is None else tuple(symbols)


def _failed(shown: str, diag: Diagnostic) -> ReplayReport:
    return ReplayReport(shown, None, 0, (), None, None, (diag,))


def _columns(values: list[str]) -> list[int]:
    """The 1-based character column where each field starts (exact for unquoted fields)."""
    out, at = [], 1
    for value in values:
        out.append(at)
        at += len(value) + 1
    return out


def _first_undecodable_line(path: Path) -> int | None:
    try:
        with path.open("rb") as fh:
            for number, raw in enumerate(iter(lambda: fh.readline(MAX_LINE * 4), b""), start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return number
    except OSError:
        return None
    return None


@dataclass
class _Check:
    shown: str
    symbols: tuple[str, ...] | None
    max_errors: int
    diags: list[Diagnostic] = field(default_factory=list)
    errors: int = 0

    def add(self, diag: Diagnostic) -> None:
        self.diags.append(diag)
        if diag.is_error:
            self.errors += 1

    def at(
        self, code: str, message: str, line: int, column: int | None = None, hint: str | None = None
    ) -> None:
        self.add(error(code, message, path=self.shown, line=line, column=column, hint=hint))

    def _lines(self, fh: IO[str]) -> Iterator[str]:
        """The file's lines, none longer than MAX_LINE: a longer one is an error and reads as
        blank (its rest is skipped without being held)."""
        readline = fh.readline
        number = 0
        while line := readline(MAX_LINE):
            number += 1
            if len(line) == MAX_LINE and line[-1] != "\n":
                while line and line[-1] != "\n":
                    line = readline(MAX_LINE)
                message = f"the line is longer than {MAX_LINE:,} characters"
                self.at("replay-line-too-long", message, number)
                yield "\n"
                continue
            yield line

    def run(self, fh: IO[str]) -> ReplayReport:
        reader = csv.reader(self._lines(fh))
        try:
            header = next(reader, [])
        except csv.Error as exc:
            self.at("replay-csv", f"the header is not CSV: {exc}", 1)
            return self._report(None, 0, {}, None, None)
        if self.diags:
            return self._report(None, 0, {}, None, None)
        layout, problems = read_layout(header, self.shown)
        if layout is None:
            for diag in problems:
                self.add(diag)
            return self._report(None, 0, {}, None, None)
        try:
            return self._rows(reader, layout)
        except csv.Error as exc:
            self.at("replay-csv", f"the row is not CSV: {exc}", reader.line_num)
            return self._report(layout.kind, 0, {}, None, None)

    def _rows(self, reader: _Reader, layout: Layout) -> ReplayReport:
        shown = self.shown
        index = layout.index
        width = len(layout.columns)
        bars = layout.kind == "bars"
        prices: tuple[str, ...] = ("open", "high", "low", "close") if bars else ("bid", "ask")
        ti = index["time"]
        p0 = index[prices[0]]
        p1 = index[prices[1]]
        p2 = index["low"] if bars else p0
        p3 = index["close"] if bars else p1
        vi = index.get("volume")
        si = index.get("symbol")
        parse_iso = datetime.fromisoformat
        seen: dict[str | None, _Seen] = {}  # per symbol (None without a symbol column)
        last: datetime | None = None
        last_line = 0
        first: datetime | None = None
        rows = 0
        line = 1
        for values in reader:
            line = reader.line_num
            if len(values) != width:
                if not values or not "".join(values).strip():
                    continue
                rows += 1
                self.at("replay-fields", f"{len(values)} fields, the header has {width}", line)
                if self.errors >= self.max_errors:
                    break
                continue
            rows += 1
            text = values[ti]
            moment: datetime | None
            try:
                if text.isdigit():
                    ms = int(text)
                    if ms < EPOCH_SECONDS_BELOW:
                        raise ValueError(text)
                    moment = _EPOCH + timedelta(milliseconds=ms)
                else:
                    moment = parse_iso(text)
                    tz = moment.tzinfo
                    if tz is None:
                        moment = moment.replace(tzinfo=UTC)
                    elif tz is not UTC:
                        moment = moment.astimezone(UTC)
            except (ValueError, OverflowError):
                moment = self._slow_time(text, line, _column(values, ti))
            symbol: str | None = None
            if si is not None:
                symbol = values[si].strip()
                if not symbol:
                    self.at("replay-symbol-empty", "the symbol is empty", line, _column(values, si))
            try:
                a = float(values[p0])
                b = float(values[p1])
                c = float(values[p2])
                d = float(values[p3])
            except ValueError:
                self._bad_number(values, prices, index, line)
            else:
                if not (0.0 < a < _INF and 0.0 < b < _INF and 0.0 < c < _INF and 0.0 < d < _INF):
                    self._bad_number(values, prices, index, line)
                elif bars:  # a, b, c, d: open, high, low, close
                    if b < a or b < d:
                        top = values[p0 if a >= d else p3].strip()
                        message = f"high {values[p1].strip()} is below max(open, close) {top}"
                        self.at("replay-bar-range", message, line, _column(values, p1))
                    elif c > a or c > d:
                        bottom = values[p0 if a <= d else p3].strip()
                        message = f"low {values[p2].strip()} is above min(open, close) {bottom}"
                        self.at("replay-bar-range", message, line, _column(values, p2))
                elif a > b:
                    message = f"bid {values[p0].strip()} is above ask {values[p1].strip()}"
                    self.at("replay-quote", message, line, _column(values, p0))
            if vi is not None:
                raw = values[vi]
                if raw:
                    try:
                        volume = float(raw)
                    except ValueError:
                        if raw.strip():
                            message = f"volume {raw.strip()!r} is not a number"
                            self.at("replay-number", message, line, _column(values, vi))
                    else:
                        if not 0.0 <= volume < _INF:
                            what = "is negative" if volume < 0 else "is not finite"
                            message = f"volume {raw.strip()} {what}"
                            self.at("replay-number", message, line, _column(values, vi))
            if moment is not None:
                if last is not None and moment < last:
                    message = (
                        f"time {_iso(moment)} is before line {last_line}'s {_iso(last)} "
                        "(rows must be in time order)"
                    )
                    self.at("replay-order", message, line, _column(values, ti))
                else:
                    if first is None:
                        first = moment
                    last, last_line = moment, line
                    state = seen.get(symbol)
                    if state is None:
                        if len(seen) >= MAX_SYMBOLS:
                            message = (
                                f"more than {MAX_SYMBOLS:,} symbols: is the symbol column right?"
                            )
                            self.at("replay-symbols", message, line, _column(values, si or 0))
                            break
                        seen[symbol] = _Seen(moment, line)
                    else:
                        # Two bars of one time are one bar twice; two ticks in the same
                        # millisecond are ordinary market data.
                        if moment == state.last and layout.kind == "bars":
                            whose = (
                                "times must increase"
                                if si is None
                                else f"{symbol}: each symbol's times must increase"
                            )
                            message = f"time {_iso(moment)} repeats line {state.line}'s ({whose})"
                            self.at("replay-duplicate", message, line, _column(values, ti))
                        state.last = moment
                        state.line = line
            if self.errors >= self.max_errors:
                break
        if self.errors >= self.max_errors:
            message = f"stopped after {self.errors} errors"
            self.add(Diagnostic("info", "replay-stopped", message, shown, line))
        elif rows == 0 and not self.errors:
            message = "the header is not followed by any row"
            self.add(warning("replay-empty", message, path=shown, line=1))
        self._symbol_warnings(seen, si is not None)
        return self._report(layout.kind, rows, seen, first, last)

    def _slow_time(self, text: str, line: int, column: int) -> datetime | None:
        """A time the fast path did not read: with spaces around it, or wrong (said)."""
        stripped = text.strip()
        if stripped != text and not stripped.isdigit():
            try:
                return parse_time(stripped)
            except (ValueError, OverflowError):
                pass
        if stripped.isdigit() and stripped.isascii():
            # Past 20 digits it is out of range anyway (int() refuses 4,300 of them).
            value = int(stripped) if len(stripped) <= 20 else 10**20
            if len(stripped) > 20:
                stripped = stripped[:20] + "..."
            if value < EPOCH_SECONDS_BELOW:
                as_ms = _iso(_EPOCH + timedelta(milliseconds=value))
                message = f"time {stripped} as epoch milliseconds is {as_ms}"
                self.at("replay-epoch-seconds", message, line, column, SECONDS_HINT)
                return None
            try:
                return _EPOCH + timedelta(milliseconds=value)
            except OverflowError:
                message = (
                    f"time {stripped} is out of range (epoch milliseconds up to the year 9999)"
                )
                self.at("replay-time", message, line, column)
                return None
        try:
            number = float(stripped)
        except ValueError:
            number = math.nan
        if 0 <= number < EPOCH_SECONDS_BELOW:
            message = f"time {stripped} is not a whole number of epoch milliseconds"
            self.at("replay-epoch-seconds", message, line, column, SECONDS_HINT)
        elif math.isfinite(number):
            message = f"time {stripped} is not a whole number of epoch milliseconds"
            self.at("replay-time", message, line, column)
        else:
            message = f"time {text!r} is neither ISO-8601 nor epoch milliseconds"
            self.at("replay-time", message, line, column, "e.g. 2026-03-02T00:00:00Z")
        return None

    def _bad_number(
        self, values: list[str], prices: tuple[str, ...], index: dict[str, int], line: int
    ) -> None:
        """Name the first price that is not a finite positive number."""
        for name in prices:
            i = index[name]
            raw = values[i].strip()
            try:
                number = float(raw)
            except ValueError:
                problem = f"{name} {raw!r} is not a number"
            else:
                if not math.isfinite(number):
                    problem = f"{name} {raw} is not finite"
                elif number <= 0:
                    problem = f"{name} {raw} is not positive"
                else:
                    continue
            self.at("replay-number", problem, line, _column(values, i))
            return

    def _symbol_warnings(self, seen: dict[str | None, _Seen], has_symbol: bool) -> None:
        if self.symbols is None or not has_symbol or self.errors:
            return
        wanted = sorted(set(self.symbols))
        strangers = [(s, st.first_line) for s, st in seen.items() if s and s not in wanted]
        if strangers:
            named = ", ".join(f"{s} (line {first})" for s, first in strangers[:10])
            if len(strangers) > 10:
                named += f" and {len(strangers) - 10} more"
            message = (
                f"no stream trades {named}: their rows are ignored "
                f"(the strategy's symbols: {', '.join(wanted)})"
            )
            self.add(warning("replay-symbol", message, path=self.shown))
        starved = [s for s in wanted if s not in seen]
        if starved and seen:
            message = (
                f"no row is for {', '.join(starved)}: "
                f"{'its streams get' if len(starved) == 1 else 'their streams get'} no data"
            )
            self.add(warning("replay-unfed", message, path=self.shown))

    def _report(
        self,
        kind: Kind | None,
        rows: int,
        seen: dict[str | None, _Seen],
        first: datetime | None,
        last: datetime | None,
    ) -> ReplayReport:
        symbols = tuple(s for s in seen if s)
        return ReplayReport(self.shown, kind, rows, symbols, first, last, tuple(self.diags))


class _Seen:
    """A symbol's last time and line, and where it first appears."""

    __slots__ = ("first_line", "last", "line")

    def __init__(self, moment: datetime, line: int) -> None:
        self.last = moment
        self.line = line
        self.first_line = line


def _column(values: list[str], i: int) -> int:
    return 1 + sum(len(v) + 1 for v in values[:i])


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
