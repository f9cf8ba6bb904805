"""One connection to an mt5-gateway per profile, shared by every session that trades on it.

The gateway serialises every call to its terminal, so what it costs must grow with the number of
profiles, not of sessions (SPEC §6.1, §9). An :class:`MT5Venue` holds what a profile has once:

- the :class:`~qkt.brokers.mt5.client.GatewayClient` and the symbols it has read;
- the start-up guard — readiness, the expected account, the margin mode — checked once while any
  session is attached, however many start together, and one venue read for their recovery;
- one order at a time per broker symbol, whichever session sends it (orders of one account);
- the position poller: one positions read per interval, handed to every attached session, each of
  which diffs it against its own book (:mod:`qkt.brokers.mt5.exits`) — so a fill, a stop or a
  close by hand reaches only the session whose tag the position carries;
- positions of the magic that carry no qkt tag: nobody's, said once;
- the netting check of sessions sharing a symbol (``allow_shared_symbols``): the venue's net
  position against the sum of their own;
- one quote poller per broker symbol, fanned out to every stream on it (:mod:`qkt.feeds.shared`);
- outages, said on every attached session's bus.

Sessions attach when they start and detach when they close; when the last one leaves, the
connections are closed and the guard forgotten, so the next start checks the venue again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from qkt.brokers.edge import SharedVenue, joined
from qkt.brokers.mt5.checks import GATEWAY_MAX_VOLUME, HEDGING, account_mismatches
from qkt.brokers.mt5.client import (
    GatewayClient,
    GatewayError,
    Position,
    Quote,
    Snapshot,
    SymbolInfo,
)
from qkt.brokers.mt5.clock import to_utc, wall_date
from qkt.brokers.mt5.symbols import from_broker_symbol, to_broker_symbol
from qkt.brokers.notices import Outage
from qkt.brokers.tags import session_of
from qkt.diagnostics import error
from qkt.errors import QktError

if TYPE_CHECKING:
    from qkt.brokers.mt5.broker import MT5Broker

DAY = timedelta(days=1)
HISTORY_CHUNK = timedelta(days=31)  # the longest range one /fetch_data_range may ask for
T = TypeVar("T")


class BrokerRefused(QktError):
    """The profile's gateway is not ready, or is logged in to another account than expected."""


class MT5Venue(SharedVenue["MT5Broker"]):
    def __init__(self, profile: Any, client: GatewayClient | None = None) -> None:
        super().__init__()
        self.profile = profile
        self.name: str = profile.name
        values = profile.values
        self.magic: int = int(values["magic"])
        self.deviation: int = int(values.get("deviation_points") or 20)
        self.zone = profile.time_zone() if hasattr(profile, "time_zone") else None
        self.ready_timeout_s = int(values.get("ready_timeout_ms") or 30000) / 1000
        self.ready_poll_s = 0.5  # between two looks at /health/ready while waiting
        self.tick_every_s = int(values.get("tick_poll_interval_ms") or 1000) / 1000
        self.client: GatewayClient = client or GatewayClient(
            str(values["gateway_url"]),
            api_key=profile.secret("api_key"),
            timeout_ms=int(values.get("http_timeout_ms") or 5000),
            retry_attempts=int(values.get("retry_attempts") or 3),
        )
        self.hedging = False  # margin_mode 2, read by the guard
        self._symbols: dict[str, asyncio.Task[SymbolInfo]] = {}
        self._locks: dict[str, asyncio.Lock] = {}  # broker symbol -> one order at a time
        self._reconcile_served: bool | None = None  # None: not asked yet
        self._reading: asyncio.Task[Snapshot] | None = None  # a venue read sessions share
        self._nobodys: set[int] = set()  # identifiers of untagged positions already said
        self._unequal: set[str] = set()  # broker symbols whose shared sum differs, as said
        self.positions_outage = Outage(
            self.everyone, self.everyone, self.name, f"positions of magic {self.magic}"
        )

    # ------------------------------------------------------------ sessions
    def _forget(self) -> None:
        for task in (self._reading, *self._symbols.values()):
            if task is not None and not task.done():
                task.cancel()
        self._reading = None
        self._symbols.clear()
        self._locks.clear()

    # ------------------------------------------------------------ the start-up guard
    async def _check(self) -> None:
        await self._wait_ready()
        try:
            account = await self.client.account()
        except GatewayError as exc:
            raise BrokerRefused(exc.diagnostics) from None
        mismatches = account_mismatches(
            self.name, self.client.base_url, self.profile.values, account
        )
        if mismatches:
            raise BrokerRefused(mismatches)
        self.hedging = account.margin_mode == HEDGING

    async def _wait_ready(self) -> None:
        """``/health/ready`` until it answers ready, at most ``ready_timeout_ms``; the wait is
        said once. A refused api_key refuses at once: waiting cannot mend it."""
        url = self.client.base_url
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout_s
        waited = False
        while True:
            state, reason = await self.client.readiness_state()
            if state == "ready":
                if waited:
                    self.notice("info", f"gateway {url} is ready")
                return
            if state == "refused" or loop.time() >= deadline:
                after = f" after waiting {self.ready_timeout_s:g} s" if waited else ""
                raise BrokerRefused(
                    error(
                        "gateway-unavailable",
                        f"profile `{self.name}`: gateway {url} {reason}{after}",
                    )
                )
            if not waited:
                waited = True
                self.notice(
                    "warning",
                    f"waiting for gateway {url} (it {reason}), up to {self.ready_timeout_s:g} s",
                )
            await asyncio.sleep(max(0.0, min(self.ready_poll_s, deadline - loop.time())))

    # ------------------------------------------------------------ reads
    async def snapshot(self, *, deals: bool = True) -> Snapshot:
        """What the venue holds for the magic: ``/reconcile`` in one call where the gateway
        serves it, else positions (and, when asked, the deals of the last day)."""
        if self._reconcile_served is not False:
            try:
                found = await self.client.reconcile(self.magic)
            except GatewayError:
                found = None  # failing now: the separate reads may still answer
            else:
                self._reconcile_served = found is not None
            if found is not None:
                return found
        positions = await self.client.positions(self.magic)
        made = await self.client.deals(*self.deal_window()) if deals else []
        return Snapshot(positions=positions, deals=[d for d in made if d.magic == self.magic])

    async def recovery(self) -> Snapshot:
        """The venue read of a starting session: sessions that start together (a daemon
        restoring its deployments) share one."""
        reading = self._reading
        if reading is None or reading.done():
            loop = asyncio.get_running_loop()
            reading = self._reading = loop.create_task(self.snapshot(deals=False))
        return await joined(reading)

    async def info(self, broker_symbol: str) -> SymbolInfo:
        """The symbol's ``symbol_info``, read once (a failed read is not kept)."""
        task = self._symbols.get(broker_symbol)
        if task is None or (task.done() and task.exception() is not None):
            loop = asyncio.get_running_loop()
            task = self._symbols[broker_symbol] = loop.create_task(
                self.client.symbol_info(broker_symbol)
            )
        return await joined(task)

    def known(self, broker_symbol: str) -> SymbolInfo | None:
        task = self._symbols.get(broker_symbol)
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    def contract_size(self, broker_symbol: str) -> Decimal:
        """What one lot of the symbol is worth per unit of price (``trade_contract_size``): every
        fill carries it, so PnL is the account's money as the venue's deals count it. Known for
        every symbol traded or recovered (read before the first order or at start)."""
        info = self.known(broker_symbol)
        return info.trade_contract_size if info is not None else Decimal(1)

    def gateway_max(self, symbol: str, broker_symbol: str) -> Decimal:
        """The gateway's per-order volume limit: 100 lots unless the profile's
        ``instrument_overrides`` give the symbol a ``max_volume``."""
        override = self.profile.instrument(symbol, broker_symbol) or {}
        limit = override.get("max_volume")
        return Decimal(str(limit)) if limit is not None else GATEWAY_MAX_VOLUME

    def lock(self, broker_symbol: str) -> asyncio.Lock:
        lock = self._locks.get(broker_symbol)
        if lock is None:
            lock = self._locks[broker_symbol] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------ symbols and clocks
    def broker_symbol(self, symbol: str) -> str:
        return to_broker_symbol(symbol, self.profile.aliases, self.profile.symbol_suffix)

    def qkt_symbol(self, broker_symbol: str) -> str:
        return from_broker_symbol(broker_symbol, self.profile.aliases, self.profile.symbol_suffix)

    def utc(self, wall_ms: int) -> datetime:
        """A time the gateway wrote (broker wall clock) as UTC; now when it wrote none."""
        return to_utc(wall_ms, self.zone) if wall_ms else datetime.now(UTC)

    def deal_window(self, since: datetime | None = None) -> tuple[str, str]:
        """``from_date``/``to_date`` around now (from ``since`` when known), padded by a day on
        both sides, written on the broker's wall clock as gateways read them."""
        now = datetime.now(UTC)
        start = min(since or now, now) - DAY
        return wall_date(start, self.zone), wall_date(now + DAY, self.zone)

    # ------------------------------------------------------------ the position poller
    async def _poll(self) -> dict[MT5Broker, int | BaseException]:
        seats = list(self.sessions)
        results: dict[MT5Broker, int | BaseException] = {}
        for seat in seats:
            try:
                await seat.resolve_pending()
            except Exception as exc:  # a bug of that session: its own failure, not the others'
                results[seat] = exc
        read_at = {seat: seat.book.moment for seat in seats}
        try:
            positions = await self.client.positions(self.magic)
        except GatewayError as exc:
            self.positions_outage.failed(exc.diagnostics[0].message)
            return {seat: results.get(seat, 0) for seat in seats}
        self.positions_outage.answered()
        self._say_nobodys(positions)
        for seat in seats:
            if seat in results or seat not in self.sessions:
                continue
            try:
                results[seat] = await seat.look_at(positions, read_at[seat])
            except Exception as exc:
                results[seat] = exc
        self._check_shared(positions, seats, read_at)
        return results

    def _say_nobodys(self, positions: list[Position]) -> None:
        """Positions of the magic without a qkt tag belong to no session: said once each."""
        for position in positions:
            if session_of(position.comment) is None and position.identifier not in self._nobodys:
                self._nobodys.add(position.identifier)
                side = "buy" if position.type == 0 else "sell"
                self.notice(
                    "warning",
                    f"position {position.ticket} ({side} {position.volume} {position.symbol}, "
                    f"comment {position.comment!r}) carries the magic {self.magic} but no qkt "
                    "tag: no session owns it, none will close it",
                )

    def _check_shared(
        self, positions: list[Position], seats: list[MT5Broker], read_at: dict[MT5Broker, int]
    ) -> None:
        """Sessions sharing a symbol on a netting account: the venue's net position must be the
        sum of theirs. A difference (or its end) is said on every session sharing it."""
        if self.hedging:
            return
        holders: dict[str, list[MT5Broker]] = {}
        for seat in seats:
            for symbol in seat.symbols():
                holders.setdefault(symbol, []).append(seat)
        for symbol, sharing in holders.items():
            if len(sharing) < 2 or any(s.book.moment != read_at.get(s) for s in sharing):
                continue  # not shared, or an order of one of them moved it since the read
            venue = sum(
                (p.volume if p.type == 0 else -p.volume for p in positions if p.symbol == symbol),
                Decimal(0),
            )
            ours = sum((s.net(symbol) for s in sharing), Decimal(0))
            names = ", ".join(s.session for s in sharing)
            if venue != ours and symbol not in self._unequal:
                self._unequal.add(symbol)
                message = (
                    f"{symbol}: the venue's net position {venue:f} is not the sum {ours:f} of "
                    f"the sessions sharing it ({names})"
                )
                for seat in sharing:
                    seat.notice("warning", message)
            elif venue == ours and symbol in self._unequal:
                self._unequal.discard(symbol)
                for seat in sharing:
                    seat.notice("info", f"{symbol}: the venue's net position is their sum again")

    # ------------------------------------------------------------ bar history (warm-up)
    history_kind = "MT5 bars (M1 to D1)"

    @property
    def history_timeframes(self) -> tuple[tuple[str, int], ...]:
        from qkt.feeds.warmup import TIMEFRAMES

        return TIMEFRAMES

    def history_chunk(self, seconds: int) -> timedelta:
        return HISTORY_CHUNK

    async def history(
        self, broker_symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """Bars opened from ``start`` to ``end`` (``/fetch_data_range``, UTC), oldest first."""
        iso = "%Y-%m-%dT%H:%M:%SZ"
        return await self.client.bars(
            broker_symbol, timeframe, start.strftime(iso), end.strftime(iso)
        )

    # ------------------------------------------------------------ quotes
    async def quote(self, broker_symbol: str) -> Quote:
        return await self.client.quote(broker_symbol)
