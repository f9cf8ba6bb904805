"""Warm-up from the venue: each stream's indicators fed with the venue's bar history before live
bars count (``qkt run`` live, SPEC §6.1).

A stream needs ``WARMUP N BARS``, or by default the longest indicator period its rules use
(:meth:`qkt.engine.runtime.Runtime.warmup_bars`). For every venue stream that needs some, its
profile's venue connection reads the history (``history``): an MT5 gateway with ``GET
/fetch_data_range`` (``reference/mt5-gateway.md``; bars are UTC, unlike positions and deals) in
ranges of at most 31 days, Bybit with ``GET /v5/market/kline`` (1,000 bars a read). The source
timeframe is the largest of the venue's that divides the stream's and lines up with its UTC
candles — a 2m stream from M1, a 2h stream from H1, a 4h stream from H4 on a UTC server but from H1
on a UTC+2 one, whose H4 bars open at 22:00 UTC; Bybit's 1 … 720 minutes and D. A stream of
seconds has no such source: it starts cold, saying so. A bar not closed yet is dropped. Where the
market was shut (a weekend) the range is extended backwards until the stream has its bars or the
venue has no more.

The bars then go through the stream's own candle builder, indicators and rule conditions
(:meth:`qkt.session.LiveSession.warm`), in time order across streams, without any rule firing.
What each stream got is said on the session's bus as a :class:`~qkt.engine.events.VenueNotice`:
``info`` when it is warm, ``warning`` when it starts partly warm or cold (a gateway without the
endpoint is said once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from qkt.brokers.mt5.client import Unsupported
from qkt.engine.events import Bar, VenueNotice
from qkt.errors import QktError

TIMEFRAMES: tuple[tuple[str, int], ...] = (
    ("D1", 86400),
    ("H4", 14400),
    ("H1", 3600),
    ("M30", 1800),
    ("M15", 900),
    ("M5", 300),
    ("M1", 60),
)
CLOSED_GAP = timedelta(days=4)
"""A read of at least this long with no bar at all: the gateway's history ends there."""
ISO = "%Y-%m-%dT%H:%M:%SZ"


def source_timeframe(
    seconds: int,
    zone: tzinfo | None,
    at: datetime,
    timeframes: tuple[tuple[str, int], ...] = TIMEFRAMES,
) -> tuple[str, int] | None:
    """The venue timeframe (name, seconds) a stream of ``seconds`` is built from (MT5's unless
    ``timeframes`` are given): the largest that divides it and whose bars open on UTC multiples
    of their length on a server in ``zone`` (an H4 or D1 bar opens at the server's midnight).
    None when no timeframe fits (``1s``)."""
    offset = at.astimezone(zone).utcoffset() if zone is not None else None
    shift = int(offset.total_seconds()) if offset is not None else 0
    for name, length in timeframes:
        if seconds % length == 0 and shift % length == 0:
            return name, length
    return None


def bar_of(row: Mapping[str, Any], symbol: str, seconds: int) -> Bar:
    """One gateway row as a bar of ``symbol``; raises ValueError for a row it cannot read.

    ``time`` (or ``timestamp``) is the bar's open, in UTC: epoch seconds, epoch milliseconds
    (> 1e11) or an ISO-8601 string; prices and volume are JSON numbers or strings."""
    raw = row.get("time", row.get("timestamp"))
    volume = next(
        (row[k] for k in ("tick_volume", "volume", "real_volume") if row.get(k) is not None), 0
    )
    return Bar(
        symbol,
        _moment(raw),
        seconds,
        _number(row.get("open")),
        _number(row.get("high")),
        _number(row.get("low")),
        _number(row.get("close")),
        _number(volume),
    )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def _moment(raw: Any) -> datetime:
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            moment = datetime.fromisoformat(raw.strip())
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    epoch = _number(raw)
    try:
        return datetime.fromtimestamp(epoch / 1000 if epoch > 1e11 else epoch, UTC)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"not a time: {raw!r}") from exc


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


@dataclass
class _Want:
    """One stream's need: ``count`` candles of ``seconds``."""

    alias: str
    order: int
    seconds: int
    count: int

    def current(self, now: datetime) -> int:
        """Epoch of the candle open at ``now`` (not complete yet)."""
        epoch = _epoch(now)
        return epoch - epoch % self.seconds

    def span(self, now: datetime) -> timedelta:
        """From the first of ``count`` complete candles before ``now``'s up to ``now``."""
        return timedelta(seconds=_epoch(now) - self.current(now) + self.count * self.seconds)

    def complete(self, opens: Sequence[int], now: datetime) -> list[int]:
        """The opens of the candles before ``now``'s that ``opens`` (source bars) touch."""
        current, tf = self.current(now), self.seconds
        return sorted({t - t % tf for t in opens if t - t % tf < current})


@dataclass
class _Source:
    """One (broker, symbol, timeframe) history, read once for every stream built from it."""

    broker: Any
    symbol: str
    broker_symbol: str
    timeframe: str
    seconds: int
    venue: Any = None  # history(broker_symbol, timeframe, start, end), history_chunk(seconds)
    wants: list[_Want] = field(default_factory=list)
    bars: dict[int, Bar] = field(default_factory=dict)  # open epoch -> bar

    @property
    def what(self) -> str:
        return f"{self.broker_symbol} {self.timeframe} history"

    def add(self, rows: list[dict[str, Any]], now: datetime) -> int:
        """Keep the closed bars of ``rows``; returns how many rows were bars."""
        end = _epoch(now)
        for row in rows:
            bar = bar_of(row, self.symbol, self.seconds)
            opened = _epoch(bar.time)
            if opened + self.seconds <= end:  # a bar still open is dropped
                self.bars[opened] = bar
        return len(rows)

    def missing(self, now: datetime) -> int:
        opens = list(self.bars)
        return max(w.count - len(w.complete(opens, now)) for w in self.wants)

    def of(self, want: _Want, now: datetime) -> list[Bar]:
        """The bars of ``want``'s last ``count`` complete candles and of the one open now."""
        opens = sorted(self.bars)
        complete = want.complete(opens, now)
        first = complete[-want.count] if len(complete) >= want.count else 0
        return [self.bars[t] for t in opens if t >= first]


async def warm_up(session: Any, now: Callable[[], datetime] | None = None) -> dict[str, int]:
    """Warm ``session``'s MT5 streams from their gateways' bar history; returns the candles each
    stream got. Call it after :meth:`~qkt.session.LiveSession.start`, before the first live row."""
    clock = now or session.clock.now
    started = clock()
    sources = _plan(session, started)
    cold: dict[str, list[str]] = {}  # broker without the endpoint -> its streams
    read: list[_Source] = []
    for source in sources:
        aliases = [w.alias for w in source.wants]
        if source.broker.name in cold:
            cold[source.broker.name] += aliases
            continue
        try:
            await _read(source, started)
        except Unsupported:
            cold[source.broker.name] = aliases
            continue
        except (QktError, ValueError) as exc:
            reason = exc.diagnostics[0].message if isinstance(exc, QktError) else str(exc)
            starts = "start" if len(aliases) > 1 else "starts"
            _say(
                session,
                source.broker,
                "warning",
                f"warm-up of {', '.join(aliases)}: {starts} cold, "
                f"{source.what} cannot be read: {reason}",
            )
            continue
        read.append(source)
    for broker, aliases in cold.items():
        starts = "start" if len(aliases) > 1 else "starts"
        _say(
            session,
            broker,
            "warning",
            f"the gateway serves no bar history "
            f"(/fetch_data_range): {', '.join(aliases)} {starts} cold",
        )
    ended = await _catch_up(read, started, clock())
    return _feed(session, read, ended)


def _plan(session: Any, now: datetime) -> list[_Source]:
    sources: dict[tuple[str, str, int], _Source] = {}
    order = {alias: i for i, alias in enumerate(session.runtime.streams)}
    for route in session.plan.routes:
        broker = session.venues.get(route.profile)
        venue: Any = getattr(broker, "venue", None)
        count = session.runtime.warmup_bars(route.alias)
        if not hasattr(venue, "history") or count <= 0:
            continue
        seconds = session.runtime.streams[route.alias].seconds
        source = source_timeframe(seconds, venue.zone, now, venue.history_timeframes)
        if source is None:
            _say(
                session,
                broker,
                "warning",
                f"warm-up of {route.alias}: its {route.timeframe} "
                f"candles cannot be built from {venue.history_kind}; starts cold",
            )
            continue
        timeframe, length = source
        key = (route.profile, route.broker_symbol, length)
        if key not in sources:
            sources[key] = _Source(
                broker, route.symbol, route.broker_symbol, timeframe, length, venue
            )
        sources[key].wants.append(_Want(route.alias, order[route.alias], seconds, count))
    return list(sources.values())


async def _read(source: _Source, now: datetime) -> None:
    """Read ``source`` back from ``now`` until every stream has its candles, the history ends, or
    the read reaches four times the span asked first (plus a week of closed market)."""
    span = max(w.span(now) for w in source.wants)
    floor = now - 4 * span - timedelta(days=7)
    end = now
    while True:
        start = max(end - span, floor)
        answered = 0
        for lo, hi in _chunks(start, end, source.venue.history_chunk(source.seconds)):
            answered += await _ask(source, lo, hi, now)
        missing = source.missing(now)
        if missing <= 0 or start <= floor or (not answered and end - start >= CLOSED_GAP):
            return
        tf = max(w.seconds for w in source.wants)
        wider = 2 * (end - start) if not answered else timedelta(0)  # a closed market: look further
        span = max(timedelta(seconds=missing * tf), timedelta(days=1), wider)
        end = start


async def _ask(source: _Source, start: datetime, end: datetime, now: datetime) -> int:
    rows = await source.venue.history(source.broker_symbol, source.timeframe, start, end)
    return source.add(rows, now)


def _chunks(start: datetime, end: datetime, chunk: timedelta) -> list[tuple[datetime, datetime]]:
    """``[start, end]`` in ranges of at most ``chunk`` (what one read may ask), oldest first."""
    chunks = []
    while end - start > chunk:
        chunks.append((start, start + chunk))
        start += chunk
    chunks.append((start, end))
    return chunks


async def _catch_up(sources: list[_Source], started: datetime, now: datetime) -> datetime:
    """The bars that closed while the history was being read (read once more: a failure here
    only leaves the newest bar out). Returns the moment the history now reaches."""
    for source in sources:
        if _epoch(now) // source.seconds == _epoch(started) // source.seconds:
            continue
        try:
            await _ask(source, started - timedelta(seconds=source.seconds), now, now)
        except (QktError, ValueError):
            continue
    return now


def _feed(session: Any, sources: list[_Source], now: datetime) -> dict[str, int]:
    """Every stream's bars, in the order live bars would have come (by close, then by stream)."""
    queue: list[tuple[int, int, int, str, Bar]] = []
    wants: list[tuple[_Source, _Want]] = []
    for source in sources:
        for want in source.wants:
            wants.append((source, want))
            for bar in source.of(want, now):
                opened = _epoch(bar.time)
                queue.append((opened + bar.seconds, want.order, opened, want.alias, bar))
    queue.sort(key=lambda item: item[:3])
    got = {want.alias: 0 for _, want in wants}
    for *_, alias, bar in queue:
        got[alias] += session.warm(alias, (bar,))
    for source, want in sorted(wants, key=lambda sw: sw[1].order):
        got[want.alias] += session.warm(want.alias, (), until=now)
        _said(session, source, want, got[want.alias])
    return got


def _said(session: Any, source: _Source, want: _Want, got: int) -> None:
    if got >= want.count:
        _say(
            session,
            source.broker,
            "info",
            f"warm-up of {want.alias}: {got} bars from {source.what}",
        )
    elif got:
        _say(
            session,
            source.broker,
            "warning",
            f"warm-up of {want.alias}: only {got} of "
            f"{want.count} bars in {source.what}; its indicators start partly warm",
        )
    else:
        _say(
            session,
            source.broker,
            "warning",
            f"warm-up of {want.alias}: no bars in {source.what}; starts cold",
        )


def _say(session: Any, broker: Any, level: Literal["warning", "info"], message: str) -> None:
    name = broker if isinstance(broker, str) else broker.name
    session.bus.publish(VenueNotice(name, level, message, session.clock.now()))
