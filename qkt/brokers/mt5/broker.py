"""MT5Broker: the Broker protocol over an mt5-gateway, for one profile.

Every order carries the profile's magic, its client order id and a 16-character tag as its comment
(:mod:`qkt.brokers.tags`: gateways cut comments and do not echo client ids on positions). Before
anything is sent, the order is checked against what the gateway and the venue accept: the volume
against the venue's ``symbol_info`` (min, max, step) and the gateway's per-order limit, the
stop-loss and take-profit — placed at the strategy's distance from the venue's own quote at send
time, rounded to the symbol's digits — on the right side of the expected fill. Nothing is rounded
silently and no refusal is left to the gateway's 400.

An order is sent once: an unknown outcome (timeout after sending, 502, an idempotency key still
in progress) is resolved by looking for the order at the venue — ``/reconcile`` where the gateway
serves it, else positions and deals; the deal the order made is the proof (on a netting account
an order that adds to or reverses a position leaves no position of its own) — before anything
else may be sent for that symbol. "Not placed" takes several clean reads in a row; a failed read
keeps the symbol blocked.

Positions are known by their identifier (:mod:`qkt.brokers.mt5.book`): a reversal keeps it while
the ticket changes, and deals name it as ``position_id``. Times the gateway writes are the broker
server's wall clock, converted with the profile's ``server_time_zone``
(:mod:`qkt.brokers.mt5.clock`).

The engine is synchronous and the gateway is an edge: :meth:`MT5Broker.submit` hands the order to
the running asyncio loop and returns at once; the order as it goes on the wire (its stops
rounded), then its answer, come back as events on the bus. Orders of one symbol are sent one
after another (a later one waits for the earlier one's answer, and for its resolution if that
answer is unknown); orders of different symbols travel side by side. :meth:`MT5Broker.settle`
waits until every order handed over so far has its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from qkt.brokers.mt5.book import Stake, TicketBook
from qkt.brokers.mt5.checks import (
    GATEWAY_MAX_VOLUME,
    HEDGING,
    account_mismatches,
    stops_problem,
    to_digits,
    volume_problem,
)
from qkt.brokers.mt5.client import (
    Deal,
    GatewayClient,
    GatewayError,
    Position,
    Snapshot,
    SymbolInfo,
)
from qkt.brokers.mt5.clock import to_utc, wall_date
from qkt.brokers.mt5.symbols import from_broker_symbol, to_broker_symbol
from qkt.brokers.notices import Outage
from qkt.brokers.tags import MAX_CLIENT_ID, TAG_LENGTH, order_tag, run_stamp, session_tag
from qkt.diagnostics import error
from qkt.engine.clock import WallClock
from qkt.engine.events import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderUnknown,
    Side,
    VenueNotice,
)
from qkt.engine.orders import bracket_prices
from qkt.errors import QktError

DAY = timedelta(days=1)
ABSENCE_CHECKS = 3  # clean reads in a row before an order of unknown outcome counts as not placed
EXIT_ENTRIES = (1, 2, 3)  # deal entry OUT, INOUT (a reversal), OUT_BY


class BrokerRefused(QktError):
    """The profile's gateway is not ready, or is logged in to another account than expected."""


@dataclass
class _Unresolved:
    request: OrderRequest
    broker_symbol: str
    tag: str
    closing: _Closing | None = None  # hedging: a close by ticket of unknown outcome
    # Monotonic time before which absence proves nothing: the gateway got the order and gave
    # no answer, so it may still be placing it (the terminal works on after a client gives up).
    settle_after: float = 0.0
    seeded: bool = False  # journaled by an earlier run (see MT5Broker.expect)


@dataclass
class _Closing:
    stake: Stake
    volume: Decimal  # the position's volume before the close
    take: Decimal  # what the close was to take off it


@dataclass
class _Found:
    """An order of unknown outcome, found at the venue."""

    price: Decimal
    qty: Decimal
    identifier: int
    ticket: int
    deal: int = 0


@dataclass
class Recovered:
    """An open position of this profile's magic found at start."""

    label: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    ticket: int
    comment: str
    contract_size: Decimal = Decimal(1)  # the symbol's trade_contract_size


class MT5Broker:
    capabilities = frozenset({"market", "bracket"})

    def __init__(
        self,
        profile: Any,
        bus: Any,
        clock: Any,
        prices: Any,
        client: GatewayClient | None = None,
        *,
        label: str | None = None,
    ) -> None:
        self.profile = profile
        self.name = profile.name
        self.label = label or profile.name.upper()
        self.bus = bus
        self.clock = clock
        self.prices = prices
        values = profile.values
        self.magic: int = int(values["magic"])
        self.deviation: int = int(values.get("deviation_points") or 20)
        self.zone = profile.time_zone() if hasattr(profile, "time_zone") else None
        self.ready_timeout_s = int(values.get("ready_timeout_ms") or 30000) / 1000
        self.ready_poll_s = 0.5  # between two looks at /health/ready while waiting
        self.client = client or GatewayClient(
            str(values["gateway_url"]),
            api_key=profile.secret("api_key"),
            timeout_ms=int(values.get("http_timeout_ms") or 5000),
            retry_attempts=int(values.get("retry_attempts") or 3),
        )
        self._symbols: dict[str, SymbolInfo] = {}
        self._unresolved: dict[str, _Unresolved] = {}  # broker symbol -> order of unknown outcome
        self.book = TicketBook(self.magic)
        self.recovered: list[Recovered] = []
        self._locks: dict[str, asyncio.Lock] = {}  # broker symbol -> one order at a time
        self._inflight: set[asyncio.Task[None]] = set()
        self._failures: list[BaseException] = []
        self._reconciling = asyncio.Lock()
        self._announced: set[str] = set()  # client ids whose order event is out
        self._our_deals: set[int] = set()  # deals our own orders made: never a venue exit
        self._reconcile_served: bool | None = None  # None: not asked yet
        self.absence_backoff_s = 0.2  # between the reads that confirm "not placed"
        self.unknown_window_s = 2 * int(values.get("http_timeout_ms") or 5000) / 1000
        self._positions_outage = Outage(bus, clock, self.name, f"positions of magic {self.magic}")
        self.before_send: Callable[[OrderRequest, str, str], None] | None = None
        """Called with the request, its comment tag and the broker symbol right before its first
        ``POST /order`` or close by ticket; if it raises, the order is refused (``not journaled:
        not sent``) and nothing is sent. The daemon journals and commits the order here."""
        self.on_settled: Callable[[OrderRequest, Decimal, Decimal], None] | None = None
        """Called with (request, price, volume) for an order of :meth:`expect` that the venue
        state read at :meth:`start` already shows: its effect is in the recovered positions, so
        it is reported here only, never as a fill."""
        self._journaled: set[str] = set()  # client ids before_send accepted
        self._expected: dict[str, list[_Unresolved]] = {}  # broker symbol -> seeded, queued

    @property
    def hedging(self) -> bool:
        """Whether the account hedges (``margin_mode`` 2), as read from ``/account`` at start."""
        return self.book.hedging

    # ------------------------------------------------------------ start-up
    async def start(self, session: str) -> None:
        """Wait for the gateway to be ready (up to ``ready_timeout_ms``), refuse it if it is not
        the expected account, and recover the open positions ``session``'s orders opened (their
        comment's tag names it). Positions of other sessions on the same magic, or made by hand,
        are neither taken nor reported."""
        await self._wait_ready()
        try:
            account = await self.client.account()
            snapshot = await self._venue(deals=bool(self._unresolved))
        except GatewayError as exc:
            raise BrokerRefused(exc.diagnostics) from None
        mismatches = account_mismatches(
            self.name, self.client.base_url, self.profile.values, account
        )
        if mismatches:
            raise BrokerRefused(mismatches)
        self.book.hedging = account.margin_mode == HEDGING
        self.book.owner_tag = session_tag(session)
        ours = [p for p in snapshot.positions if self.book.ours(p)]
        try:  # what a lot of each is worth: the session's money figures need it
            for symbol in dict.fromkeys([*(p.symbol for p in ours), *self._unresolved]):
                await self._info(symbol)
        except GatewayError as exc:
            raise BrokerRefused(
                error(
                    "gateway-unavailable",
                    f"profile `{self.name}`: cannot read the symbol of a position to recover: "
                    f"{exc.diagnostics[0].message}",
                )
            ) from None
        self.recovered = []  # a start again (after another broker of the session refused)
        for position in ours:
            self.book.adopt(position, self._utc(position.time_msc))
            self.recovered.append(
                Recovered(
                    self.label,
                    self._qkt_symbol(position.symbol),
                    "buy" if position.type == 0 else "sell",
                    position.volume,
                    position.price_open,
                    position.ticket,
                    position.comment,
                    self._contract_size(position.symbol),
                )
            )
        self._settle_seen(snapshot, {p.identifier for p in ours})

    # ------------------------------------------------------------ orders of an earlier run
    def expect(self, request: OrderRequest, tag: str, sent_at: datetime) -> None:
        """An order an earlier run journaled and may have sent (``sent_at``, UTC) whose outcome
        it never recorded: it is resolved at the venue before anything else is sent for its
        symbol, as an unknown outcome is. Call it before :meth:`start`. Found in the venue state
        the start reads, its effect is in the recovered positions: :attr:`on_settled` is told,
        and nothing else (no second fill). Found later (the gateway placed it after the start
        read), it is tracked and reported as a fill; "not placed" needs the clean reads of an
        unknown outcome and ``sent_at`` plus twice the request timeout behind us (the gateway
        may still place an order it got just before the earlier run ended). Never resent."""
        symbol = self.broker_symbol(request.symbol)
        age = (datetime.now(UTC) - sent_at).total_seconds()
        settle_after = time.monotonic() + max(0.0, self.unknown_window_s - age)
        pending = _Unresolved(request, symbol, tag, settle_after=settle_after, seeded=True)
        self._announced.add(request.client_id)  # announced by the run that made it
        self._journaled.add(request.client_id)
        if symbol in self._unresolved:
            self._expected.setdefault(symbol, []).append(pending)
        else:
            self._unresolved[symbol] = pending

    async def resolve_expected(self) -> int:
        """Look for the orders of :meth:`expect` at the venue once more (a restarted session does
        this before its first row); how many are still unresolved."""
        for symbol in list(self._unresolved):
            async with self._lock(symbol):
                pending = self._unresolved.get(symbol)
                if pending is not None and pending.seeded:
                    await self._resolve(symbol)
        return self.expected

    @property
    def expected(self) -> int:
        """How many orders of :meth:`expect` are not resolved yet."""
        waiting = sum(p.seeded for p in self._unresolved.values())
        return waiting + sum(len(queued) for queued in self._expected.values())

    def _settle_seen(self, venue: Snapshot, recovered: set[int]) -> None:
        """Orders of :meth:`expect` that ``venue`` (read at start) shows, and whose effect the
        recovered positions hold: a close, or an order into a recovered position."""
        for symbol in list(self._unresolved):
            while symbol in self._unresolved and self._unresolved[symbol].seeded:
                pending = self._unresolved[symbol]
                found = self._find(pending, venue)
                if found is None or not (
                    pending.request.reduce_only or found.identifier in recovered
                ):
                    break  # not in what was recovered: resolved as usual, by the polls
                self._our_deals.add(found.deal)
                self._resolved(symbol)
                if self.on_settled is not None:
                    self.on_settled(pending.request, found.price, found.qty)

    def _resolved(self, broker_symbol: str) -> None:
        """The symbol's order of unknown outcome is settled: the next one of :meth:`expect`, if
        any, is the one to resolve before the symbol sends anything."""
        del self._unresolved[broker_symbol]
        queued = self._expected.get(broker_symbol)
        if queued:
            self._unresolved[broker_symbol] = queued.pop(0)
            if not queued:
                del self._expected[broker_symbol]

    def _journal(self, request: OrderRequest, tag: str, broker_symbol: str) -> str | None:
        """Hand the order to :attr:`before_send` (once per client id); why it must not be sent
        when that raises."""
        if self.before_send is None or request.client_id in self._journaled:
            return None
        try:
            self.before_send(request, tag, broker_symbol)
        except Exception as exc:
            reason = exc.diagnostics[0].message if isinstance(exc, QktError) else str(exc)
            return f"not journaled: not sent ({reason or type(exc).__name__})"
        self._journaled.add(request.client_id)
        return None

    async def _wait_ready(self) -> None:
        """``/health/ready`` until it answers ready, at most ``ready_timeout_ms``; the wait is
        said once on the bus. A refused api_key refuses at once: waiting cannot mend it."""
        url = self.client.base_url
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout_s
        waited = False
        while True:
            state, reason = await self.client.readiness_state()
            if state == "ready":
                if waited:
                    self._notice("info", f"gateway {url} is ready")
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
                self._notice(
                    "warning",
                    f"waiting for gateway {url} (it {reason}), up to {self.ready_timeout_s:g} s",
                )
            await asyncio.sleep(max(0.0, min(self.ready_poll_s, deadline - loop.time())))

    def _notice(self, level: str, message: str) -> None:
        self.bus.publish(VenueNotice(self.name, level, message, self.clock.now()))  # type: ignore[arg-type]

    async def _venue(self, *, deals: bool = True) -> Snapshot:
        """What the venue holds for the magic: ``/reconcile`` in one call where the gateway
        serves it, else positions (and, when asked, the deals of the last day)."""
        if self._reconcile_served is not False:
            try:
                snapshot = await self.client.reconcile(self.magic)
            except GatewayError:
                snapshot = None  # failing now: the separate reads may still answer
            else:
                self._reconcile_served = snapshot is not None
            if snapshot is not None:
                return snapshot
        positions = await self.client.positions(self.magic)
        found = await self.client.deals(*self._deal_window()) if deals else []
        return Snapshot(positions=positions, deals=[d for d in found if d.magic == self.magic])

    # ------------------------------------------------------------ symbols and clocks
    def broker_symbol(self, symbol: str) -> str:
        return to_broker_symbol(symbol, self.profile.aliases, self.profile.symbol_suffix)

    def _qkt_symbol(self, broker_symbol: str) -> str:
        return from_broker_symbol(broker_symbol, self.profile.aliases, self.profile.symbol_suffix)

    def _utc(self, wall_ms: int) -> datetime:
        """A time the gateway wrote (broker wall clock) as UTC; now when it wrote none."""
        return to_utc(wall_ms, self.zone) if wall_ms else datetime.now(UTC)

    def _deal_window(self, since: datetime | None = None) -> tuple[str, str]:
        """``from_date``/``to_date`` around now (from ``since`` when known), padded by a day on
        both sides, written on the broker's wall clock as gateways read them."""
        now = datetime.now(UTC)
        start = min(since or now, now) - DAY
        return wall_date(start, self.zone), wall_date(now + DAY, self.zone)

    async def _info(self, broker_symbol: str) -> SymbolInfo:
        info = self._symbols.get(broker_symbol)
        if info is None:
            info = self._symbols[broker_symbol] = await self.client.symbol_info(broker_symbol)
        return info

    def _contract_size(self, broker_symbol: str) -> Decimal:
        """What one lot of the symbol is worth per unit of price (``trade_contract_size``): every
        fill carries it, so PnL is the account's money as the venue's deals count it. Known for
        every symbol the broker trades or recovered (read before the first order or at start)."""
        info = self._symbols.get(broker_symbol)
        return info.trade_contract_size if info is not None else Decimal(1)

    def _gateway_max(self, request: OrderRequest, broker_symbol: str) -> Decimal:
        """The gateway's per-order volume limit: 100 lots unless the profile's
        ``instrument_overrides`` give the symbol a ``max_volume``."""
        override = self.profile.instrument(request.symbol, broker_symbol) or {}
        limit = override.get("max_volume")
        return Decimal(str(limit)) if limit is not None else GATEWAY_MAX_VOLUME

    # ------------------------------------------------------------ the loop
    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if task not in self._inflight:
            return
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failures.append(task.exception())  # type: ignore[arg-type]

    async def settle(self) -> None:
        """Wait until every order handed over so far has its answer (and its events are out).

        Cancelling the caller does not cancel an order in flight: it keeps going, and the next
        ``settle`` (or :meth:`aclose`) waits for it. A bug in a dispatch is raised here."""
        while self._inflight:
            task = next(iter(self._inflight))
            if task.done():  # finished, its done-callback not run yet
                self._done(task)
                continue
            with contextlib.suppress(Exception):  # kept by _done, raised below
                await asyncio.shield(task)
        if self._failures:
            failure, self._failures = self._failures[0], []
            raise failure

    async def aclose(self) -> None:
        """Wait for the orders in flight, then close the connection pool."""
        try:
            await self.settle()
        finally:
            await self.client.aclose()

    def _lock(self, broker_symbol: str) -> asyncio.Lock:
        lock = self._locks.get(broker_symbol)
        if lock is None:
            lock = self._locks[broker_symbol] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------ orders
    def _announce(self, request: OrderRequest) -> None:
        """The order event, once: as it goes on the wire, or as made when refused before."""
        if request.client_id not in self._announced:
            self._announced.add(request.client_id)
            self.bus.publish(request)

    def _reject(self, request: OrderRequest, reason: str) -> OrderRejected:
        self._announce(request)
        rejected = OrderRejected(request.client_id, self.name, reason, self.clock.now())
        self.bus.publish(rejected)
        return rejected

    def submit(self, request: OrderRequest) -> None:
        """Hand the order to the running loop; the order as sent, then accepted/filled/rejected/
        unknown follow on the bus."""
        self._spawn(self._dispatch(request))

    async def _dispatch(self, request: OrderRequest) -> None:
        symbol = self.broker_symbol(request.symbol)
        async with self._lock(symbol):
            await self._send(symbol, request)

    async def _send(
        self, symbol: str, request: OrderRequest
    ) -> OrderAccepted | OrderRejected | OrderUnknown:
        while symbol in self._unresolved:
            if not await self._resolve(symbol):
                return self._reject(
                    request,
                    f"an earlier order on {symbol} has an unknown outcome; not sending more",
                )
        if len(request.client_id) > MAX_CLIENT_ID:
            return self._reject(
                request, f"client id longer than the gateway's {MAX_CLIENT_ID} characters"
            )
        try:
            info = await self._info(symbol)
        except GatewayError as exc:
            return self._reject(
                request, f"cannot read {symbol} from the gateway: {exc.diagnostics[0].message}"
            )
        entry: Decimal | None = None
        legs = request.stop_loss is not None or request.take_profit is not None
        if request.notional is not None or legs:
            try:
                quote = await self.client.quote(symbol)
            except GatewayError as exc:
                why = exc.diagnostics[0].message
                return self._reject(request, f"{symbol}: cannot read the venue's quote ({why})")
            entry = (quote.ask if request.side == "buy" else quote.bid).quantize(
                Decimal(1).scaleb(-info.digits)
            )
        if request.notional is not None and entry is not None:
            request, problem = _lots(request, entry, info)
            if problem:
                return self._reject(request, f"{symbol}: {problem}; not sent")
        problem = volume_problem(request.qty, info, self._gateway_max(request, symbol))
        if problem:
            return self._reject(request, f"{symbol}: {problem}")
        if entry is not None:
            request, problem = _wire_stops(request, entry, info)
            if problem:
                return self._reject(request, f"{symbol}: {problem}; not sent")
        tag = order_tag(request.strategy, request.client_id)
        qty = request.qty
        if request.reduce_only:
            # A close must only close: first hear what the venue did on its own (a stop may
            # have closed the position since the last poll), then close no more than it holds.
            await self._reconcile()
            held = self.book.against(symbol, _side(request))
            if not held:
                return self._reject(
                    request, f"{symbol}: the venue holds no position of this session to close"
                )
            if not self.hedging:
                qty = min(qty, held[0].volume)
        if self.hedging:
            opposite = self.book.against(symbol, _side(request))
            if opposite:
                return await self._reduce(symbol, request, tag, info, opposite)
        return await self._place(symbol, replace(request, qty=qty), tag, qty)

    async def _place(
        self, symbol: str, request: OrderRequest, tag: str, qty: Decimal, *, accepted: bool = False
    ) -> OrderAccepted | OrderRejected | OrderUnknown:
        """``POST /order`` for ``qty`` of the request, sent once (``accepted``: the venue has
        already taken part of it, a close by ticket on a hedging account)."""
        refused = self._journal(request, tag, symbol)
        if refused:
            return self._reject(request, refused)
        self._announce(request)
        outcome = await self.client.order(
            symbol=symbol,
            side=request.side,
            volume=qty,
            magic=self.magic,
            client_order_id=request.client_id,
            comment=tag,
            deviation=self.deviation,
            sl=request.stop_loss,
            tp=request.take_profit,
        )
        if outcome.status == "rejected":
            return self._reject(request, outcome.message or "rejected by the venue")
        if outcome.status == "unknown":
            self._unresolved[symbol] = _Unresolved(
                request, symbol, tag, settle_after=self._settle_after(outcome.answered)
            )
            return await self._settle_or_block(symbol, request, outcome.message)
        done = OrderAccepted(request.client_id, self.name, self.clock.now())
        if not accepted:
            self.bus.publish(done)
        result = outcome.result
        filled = result.volume or qty
        self._our_deals.add(result.deal)
        identifier = result.order if self.hedging else None
        self.book.track(
            symbol, _side(request), request.client_id, tag, result.order, result.price, filled,
            identifier,
        )  # fmt: skip
        self._fill(request, result.price, filled)
        return done

    async def _reduce(
        self,
        symbol: str,
        request: OrderRequest,
        tag: str,
        info: SymbolInfo,
        opposite: list[Stake],
    ) -> OrderAccepted | OrderRejected | OrderUnknown:
        """Hedging account: an order against open positions closes them by ticket, oldest first
        (whole, or partly for the last one); what is left opens a position of its own. Like a
        netting account, the stream keeps one net position. Stops at the first failure."""
        refused = self._journal(request, tag, symbol)
        if refused:
            return self._reject(request, refused)
        self._announce(request)
        remaining = request.qty
        announced = False
        for stake in opposite:
            if remaining <= 0:
                break
            take = min(remaining, stake.volume)
            if take == stake.volume:
                outcome = await self.client.close_position(stake.ticket)
            else:
                outcome = await self.client.close_partial(stake.ticket, take)
            if outcome.status == "rejected":
                return self._reject(
                    request, f"closing ticket {stake.ticket}: {outcome.message or 'rejected'}"
                )
            if outcome.status == "unknown":
                closing = _Closing(stake, stake.venue_volume, take)
                self._unresolved[symbol] = _Unresolved(
                    request, symbol, tag, closing, self._settle_after(outcome.answered)
                )
                return await self._settle_or_block(symbol, request, outcome.message)
            if not announced:
                self.bus.publish(OrderAccepted(request.client_id, self.name, self.clock.now()))
                announced = True
            self._our_deals.add(outcome.result.deal)
            self.book.took(stake, take)
            self._fill(request, outcome.result.price, take)
            remaining -= take
        if remaining > 0 and not request.reduce_only:
            rest = replace(request, qty=remaining)
            return await self._place(symbol, rest, tag, remaining, accepted=announced)
        return OrderAccepted(request.client_id, self.name, self.clock.now())

    def _settle_after(self, answered: bool) -> float:
        """Until when an order the gateway took without answering may still be placed: twice
        the request timeout after now (nothing, when the gateway answered)."""
        return 0.0 if answered else time.monotonic() + self.unknown_window_s

    async def _settle_or_block(
        self, symbol: str, request: OrderRequest, message: str
    ) -> OrderAccepted | OrderUnknown:
        if await self._resolve(symbol):
            return OrderAccepted(request.client_id, self.name, self.clock.now())
        unknown = OrderUnknown(
            request.client_id,
            self.name,
            f"outcome unknown ({message}); {symbol} is blocked until the gateway "
            "shows whether the order was placed",
            self.clock.now(),
        )
        self.bus.publish(unknown)
        return unknown

    def _fill(
        self,
        request: OrderRequest,
        price: Decimal | None,
        qty: Decimal,
        when: datetime | None = None,
    ) -> None:
        if price is None:
            quote = self.prices.quote(request.label, request.symbol, request.side)
            price = quote if quote is not None else Decimal(0)
        self.bus.publish(
            OrderFilled(
                request.client_id,
                self.name,
                request.label,
                request.symbol,
                request.side,
                qty,
                price,
                when or self.clock.now(),
                contract_size=self._contract_size(self.broker_symbol(request.symbol)),
            )
        )

    # ------------------------------------------------------------ unknown outcomes
    async def _resolve(self, broker_symbol: str) -> bool:
        """Ask the venue whether the order of unknown outcome was placed; True once settled.

        Found as the deal it made, or the position it opened: it was placed, at that price.
        Absent from :data:`ABSENCE_CHECKS` clean reads in a row (the terminal may still be
        working on it): it was not. Any failed read: still unknown, and the symbol stays
        blocked."""
        pending = self._unresolved[broker_symbol]
        if pending.closing is not None:
            return await self._resolve_close(broker_symbol, pending, pending.closing)
        found: _Found | None = None
        for check in range(ABSENCE_CHECKS):
            if check:
                await asyncio.sleep(self.absence_backoff_s * check)
            try:
                found = self._find(pending, await self._venue())
            except GatewayError:
                return False
            if found is not None:
                break
        if found is None and time.monotonic() < pending.settle_after:
            return False  # the gateway may still be working on it: ask again later
        self._resolved(broker_symbol)
        request = pending.request
        if found is None:
            self._reject(
                request,
                f"the venue shows no deal or position for this order after {ABSENCE_CHECKS} "
                "reads: it was not placed",
            )
            return True
        self._our_deals.add(found.deal)
        self.book.track(
            broker_symbol, _side(request), request.client_id, pending.tag, found.ticket,
            found.price, found.qty, found.identifier,
        )  # fmt: skip
        self.bus.publish(OrderAccepted(request.client_id, self.name, self.clock.now()))
        self._fill(request, found.price, found.qty)
        return True

    def _find(self, pending: _Unresolved, venue: Snapshot) -> _Found | None:
        """The order at the venue: the deal it made (exact price and volume; on a netting
        account an order into an existing position leaves only a deal), else a position it
        opened."""
        cid = pending.request.client_id

        def ours(row: Position | Deal) -> bool:
            if row.client_order_id:  # a gateway that echoes client ids: exact
                return row.client_order_id == cid
            return row.comment[:TAG_LENGTH] == pending.tag

        symbol = pending.broker_symbol
        deal = next(
            (d for d in reversed(venue.deals) if d.symbol == symbol and ours(d)),
            None,
        )
        if deal is not None:
            ticket = next(
                (p.ticket for p in venue.positions if p.identifier == deal.position_id),
                deal.order or deal.position_id,
            )
            qty = deal.volume or pending.request.qty
            return _Found(deal.price, qty, deal.position_id or ticket, ticket, deal.ticket)
        position = next((p for p in venue.positions if p.symbol == symbol and ours(p)), None)
        if position is not None:
            return _Found(
                position.price_open, position.volume, position.identifier, position.ticket
            )
        return None

    async def _resolve_close(self, symbol: str, pending: _Unresolved, closing: _Closing) -> bool:
        """A close by ticket of unknown outcome: made if the position is gone or smaller by what
        the close took AND a deal shows it (priced by that deal); not made after
        :data:`ABSENCE_CHECKS` reads that show it whole. The rest of the order is not sent."""
        request = pending.request
        stake = closing.stake
        exit_deal: Deal | None = None
        for check in range(ABSENCE_CHECKS):
            if check:
                await asyncio.sleep(self.absence_backoff_s * check)
            try:
                positions = await self.client.positions(self.magic)
                now = next((p for p in positions if p.identifier == stake.identifier), None)
                if now is not None and now.volume > closing.volume - closing.take:
                    continue  # whole: one clean read that it was not closed
                exit_deal = await self._last_exit(stake)
            except GatewayError:
                return False
            if exit_deal is None:
                return False  # gone from the list but no deal yet: not proof either way
            break
        if exit_deal is None and time.monotonic() < pending.settle_after:
            return False  # the gateway may still be working on it: ask again later
        self._resolved(symbol)
        if exit_deal is None:
            self._reject(
                request,
                f"closing ticket {stake.ticket}: the venue shows it whole after "
                f"{ABSENCE_CHECKS} reads: it was not closed",
            )
            return True
        self._our_deals.add(exit_deal.ticket)
        self.book.took(stake, closing.take)
        self.bus.publish(OrderAccepted(request.client_id, self.name, self.clock.now()))
        self._fill(request, exit_deal.price, closing.take)
        return True

    # ------------------------------------------------------------ position poller
    async def poll(self) -> int:
        """Diff the magic's positions against the book; what the venue closed on its own (SL,
        TP, by hand) is reported with its exit deal's exact price and reason. A failed read, or
        an empty list that no deal confirms, changes nothing. Orders of unknown outcome are
        looked for again first, so a blocked symbol is freed as soon as the gateway can tell.
        Returns the number of fills emitted for venue-side exits."""
        for symbol in list(self._unresolved):
            async with self._lock(symbol):
                if symbol in self._unresolved:
                    await self._resolve(symbol)
        return await self._reconcile()

    async def _reconcile(self) -> int:
        """One look at the venue's positions (one at a time: two looks at once would report the
        same exit twice)."""
        async with self._reconciling:
            return await self._look()

    async def _look(self) -> int:
        read_at = self.book.moment
        try:
            positions = await self.client.positions(self.magic)
        except GatewayError as exc:
            self._positions_outage.failed(exc.diagnostics[0].message)
            return 0
        self._positions_outage.answered()
        current = {p.identifier: p for p in positions}
        changes = self.book.changes(current, read_at)
        unread: set[int] = set()
        for stake in changes.unplaced:
            if not await self._place_stake(stake, current):
                unread.add(stake.identifier)
        if changes.unplaced:  # placed now: read them against the same snapshot
            changes = self.book.changes(current, read_at)
        emitted = 0
        for stake, lost in changes.closed:
            closing = await self._last_exit(stake)
            if closing is None:
                unread.add(stake.identifier)  # no exit deal (yet), or unreadable: keep it
                continue
            self._report_exit(stake, lost, closing)
            if lost >= stake.volume:
                self.book.forget(stake.identifier)
            else:
                stake.volume -= lost
            emitted += 1
        self.book.refresh(current, read_at, keep=unread)
        return emitted

    async def _place_stake(self, stake: Stake, current: dict[int, Position]) -> bool:
        """Which position a netting fill of ours went into: its own new one (identifier = the
        order's ticket), or one that already stood on the symbol (another session's or a hand
        trade). The position on the symbol tells, else the deal our order made. False while
        neither can be read."""
        same = [p for p in current.values() if p.symbol == stake.symbol]
        if len(same) == 1 and same[0].identifier not in self.book.stakes:
            self.book.rehome(stake, same[0].identifier, same[0].ticket)
            return True
        try:
            deals = await self.client.deals(*self._deal_window(stake.opened))
        except GatewayError:
            return False
        made = next(
            (
                d
                for d in reversed(deals)
                if d.symbol == stake.symbol and d.comment[:TAG_LENGTH] == stake.comment
            ),
            None,
        )
        if made is None:
            return False
        self.book.rehome(stake, made.position_id or stake.identifier)
        return True

    async def _last_exit(self, stake: Stake) -> Deal | None:
        """The latest deal that took volume off ``stake``'s position not made by our own orders,
        or None (none yet, or unreadable)."""
        try:
            deals = await self.client.deals(*self._deal_window(stake.opened), stake.identifier)
        except GatewayError:
            return None
        return next(
            (
                d
                for d in reversed(deals)
                if d.position_id == stake.identifier
                and d.entry in EXIT_ENTRIES
                and d.ticket not in self._our_deals
            ),
            None,
        )

    def _report_exit(self, stake: Stake, volume: Decimal, deal: Deal) -> None:
        """``volume`` of ``stake`` was closed at the venue (SL, TP, by hand) by ``deal``."""
        reason = {4: "stop_loss", 5: "take_profit"}.get(deal.reason, "market")
        when = self._utc(deal.time_msc) if isinstance(self.clock, WallClock) else None
        self._our_deals.add(deal.ticket)
        self.bus.publish(
            OrderFilled(
                self.book.owner(stake.identifier, f"{self.name}-{stake.ticket}"),
                self.name,
                self.label,
                self._qkt_symbol(stake.symbol),
                "sell" if stake.type == 0 else "buy",
                volume,
                deal.price,
                when if when is not None and deal.time_msc else self.clock.now(),
                reason,  # type: ignore[arg-type]
                contract_size=self._contract_size(stake.symbol),
            )
        )

    def cancel(self, client_id: str) -> bool:
        return False  # market orders only: nothing rests at the venue

    def close_position(self, label: str, symbol: str) -> None:
        """Close the session's positions of ``symbol`` by ticket (right on hedging accounts too),
        in that symbol's order queue. Each close is reported like an order: a fill at the
        venue's price, a rejection, or an unknown outcome the poller settles from the closing
        deal. A netting position shared with others is closed only by the session's volume."""
        self._spawn(self._close(self.broker_symbol(symbol)))

    async def _close(self, broker_symbol: str) -> None:
        async with self._lock(broker_symbol):
            for stake in self.book.of(broker_symbol):
                await self._close_stake(stake)

    async def _close_stake(self, stake: Stake) -> None:
        client_id = f"{self.name}-close-{stake.ticket}-{run_stamp()}"
        side: Side = "sell" if stake.type == 0 else "buy"
        symbol = self._qkt_symbol(stake.symbol)
        request = OrderRequest(
            client_id, self.name, "", self.label, symbol, side, stake.volume, self.clock.now(),
            reduce_only=True,
        )  # fmt: skip
        refused = self._journal(request, stake.comment[:TAG_LENGTH], stake.symbol)
        if refused:
            self.bus.publish(OrderRejected(client_id, self.name, refused, self.clock.now()))
            return
        if stake.venue_volume > stake.volume:  # others' volume is in it: take only ours
            outcome = await self.client.close_partial(stake.ticket, stake.volume)
        else:
            outcome = await self.client.close_position(stake.ticket)
        now = self.clock.now()
        if outcome.status == "rejected":
            self.bus.publish(OrderRejected(client_id, self.name, outcome.message, now))
            return
        if outcome.status == "unknown":
            reason = f"close of ticket {stake.ticket}: outcome unknown ({outcome.message})"
            self.bus.publish(OrderUnknown(client_id, self.name, reason, now))
            return  # still in the book: the poller reports the close if it happened
        result = outcome.result
        self._our_deals.add(result.deal)
        self.book.forget(stake.identifier)
        self.bus.publish(OrderAccepted(client_id, self.name, now))
        self.bus.publish(
            OrderFilled(
                client_id,
                self.name,
                self.label,
                self._qkt_symbol(stake.symbol),
                "sell" if stake.type == 0 else "buy",
                result.volume or stake.volume,
                result.price or stake.price_open,
                now,
                contract_size=self._contract_size(stake.symbol),
            )
        )


def _side(request: OrderRequest) -> int:
    """MT5's position type of the request's side: 0 buy, 1 sell."""
    return 0 if request.side == "buy" else 1


def _wire_stops(
    request: OrderRequest, entry: Decimal, info: SymbolInfo
) -> tuple[OrderRequest, str | None]:
    """The order with its stops as they go on the wire, or why they cannot: placed at the
    strategy's distance from the venue's quote now, ``entry`` (the session may have priced the
    order on a replay or an older quote), rounded to the symbol's digits, and on the right side of
    the expected fill (ask for a buy, bid for a sell) by at least the symbol's stops level."""
    sl, tp = request.stop_loss, request.take_profit
    if request.stop_rule is not None or request.take_rule is not None:
        moved = bracket_prices(request.side, entry, request.stop_rule, request.take_rule)
        sl = moved[0] if request.stop_rule is not None else sl
        tp = moved[1] if request.take_rule is not None else tp
    wired = replace(
        request, stop_loss=to_digits(sl, info.digits), take_profit=to_digits(tp, info.digits)
    )
    return wired, stops_problem(wired, entry, info)


def _lots(
    request: OrderRequest, entry: Decimal, info: SymbolInfo
) -> tuple[OrderRequest, str | None]:
    """An order sized in money (``SIZING N USD``, ``N PCT OF EQUITY``) in the venue's lots: the
    notional over the price of one lot (the venue's price times its contract size), rounded down
    to the volume step, never up."""
    assert request.notional is not None
    size = info.trade_contract_size if info.trade_contract_size > 0 else Decimal(1)
    step = info.volume_step if info.volume_step > 0 else Decimal("0.00000001")
    lots = (request.notional / (entry * size) / step).to_integral_value(ROUND_DOWN) * step
    if lots < info.volume_min or lots <= 0:
        return request, (
            f"a notional of {request.notional:.2f} buys {request.notional / (entry * size):.8f} "
            f"lots at {entry} (contract size {size:f}), below the minimum volume "
            f"{info.volume_min}"
        )
    return replace(request, qty=lots), None
