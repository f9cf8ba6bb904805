"""MT5Broker: the Broker protocol over an mt5-gateway, for one profile.

Every order carries the profile's magic, its client order id and a 16-character tag as its comment
(:mod:`qkt.brokers.tags`: gateways cut comments and do not echo client ids). Volumes are checked
against the venue's ``symbol_info`` before anything is sent; nothing is rounded silently. An order
is sent once: an unknown outcome (timeout after sending, 502) is resolved by looking for the order
at the venue — a position, else a deal (on a netting account an order that adds to or closes a
position leaves only a deal) — before anything else may be sent for that symbol. "Not placed"
takes several clean reads in a row; a failed read keeps the symbol blocked.

The engine is synchronous and the gateway is an edge: :meth:`MT5Broker.submit` hands the order to
the running asyncio loop and returns at once; the answer comes back as events on the bus. Orders
of one symbol are sent one after another (a later one waits for the earlier one's answer, and for
its resolution if that answer is unknown); orders of different symbols travel side by side.
:meth:`MT5Broker.settle` waits until every order handed over so far has its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from qkt.brokers.mt5.book import TicketBook
from qkt.brokers.mt5.client import (
    Account,
    Deal,
    GatewayClient,
    GatewayError,
    Position,
    SymbolInfo,
)
from qkt.brokers.mt5.symbols import from_broker_symbol, to_broker_symbol
from qkt.brokers.notices import Outage
from qkt.brokers.tags import TAG_LENGTH, order_tag, run_stamp, session_tag
from qkt.diagnostics import Diagnostic, error
from qkt.engine.events import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderUnknown,
)
from qkt.errors import QktError

TRADE_MODES = {0: "demo", 1: "contest", 2: "real"}
DAY = timedelta(days=1)
HEDGING = 2  # /account margin_mode of a hedging account (0 is netting)
ABSENCE_CHECKS = 3  # clean reads in a row before an order of unknown outcome counts as not placed


class BrokerRefused(QktError):
    """The profile's gateway is not ready, or is logged in to another account than expected."""


@dataclass
class _Unresolved:
    request: OrderRequest
    broker_symbol: str
    tag: str
    closing: _Closing | None = None  # hedging: a close by ticket of unknown outcome


@dataclass
class _Closing:
    ticket: int
    volume: Decimal  # the position's volume before the close
    take: Decimal  # what the close was to take off it


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
        self.absence_backoff_s = 0.2  # between the reads that confirm "not placed"
        self._positions_outage = Outage(bus, clock, self.name, f"positions of magic {self.magic}")

    @property
    def hedging(self) -> bool:
        """Whether the account hedges (``margin_mode`` 2), as read from ``/account`` at start."""
        return self.book.hedging

    # ------------------------------------------------------------ start-up
    async def start(self, session: str) -> None:
        """Refuse a gateway that is not ready or not the expected account; recover the open
        positions ``session``'s orders opened (their comment's tag names it). Positions of other
        sessions on the same magic, or made by hand, are neither taken nor reported."""
        url = self.client.base_url
        problem = await self.client.readiness()
        if problem is not None:
            raise BrokerRefused(
                error("gateway-unavailable", f"profile `{self.name}`: gateway {url} {problem}")
            )
        try:
            account = await self.client.account()
            positions = await self.client.positions(self.magic)
        except GatewayError as exc:
            raise BrokerRefused(exc.diagnostics) from None
        mismatches = account_mismatches(self.name, url, self.profile.values, account)
        if mismatches:
            raise BrokerRefused(mismatches)
        self.book.hedging = account.margin_mode == HEDGING
        self.book.owner_tag = session_tag(session)
        for position in positions:
            if not self.book.ours(position):
                continue
            self.book.adopt(position)
            self.recovered.append(
                Recovered(
                    self.label,
                    self._qkt_symbol(position.symbol),
                    "buy" if position.type == 0 else "sell",
                    position.volume,
                    position.price_open,
                    position.ticket,
                    position.comment,
                )
            )

    # ------------------------------------------------------------ symbols
    def broker_symbol(self, symbol: str) -> str:
        return to_broker_symbol(symbol, self.profile.aliases, self.profile.symbol_suffix)

    def _qkt_symbol(self, broker_symbol: str) -> str:
        return from_broker_symbol(broker_symbol, self.profile.aliases, self.profile.symbol_suffix)

    async def _info(self, broker_symbol: str) -> SymbolInfo:
        info = self._symbols.get(broker_symbol)
        if info is None:
            info = self._symbols[broker_symbol] = await self.client.symbol_info(broker_symbol)
        return info

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
    def _reject(self, request: OrderRequest, reason: str) -> OrderRejected:
        rejected = OrderRejected(request.client_id, self.name, reason, self.clock.now())
        self.bus.publish(rejected)
        return rejected

    def submit(self, request: OrderRequest) -> None:
        """Hand the order to the running loop; accepted/filled/rejected/unknown follow on the bus."""
        self._spawn(self._dispatch(request))

    async def _dispatch(self, request: OrderRequest) -> None:
        symbol = self.broker_symbol(request.symbol)
        async with self._lock(symbol):
            await self._send(symbol, request)

    async def _send(
        self, symbol: str, request: OrderRequest
    ) -> OrderAccepted | OrderRejected | OrderUnknown:
        if symbol in self._unresolved and not await self._resolve(symbol):
            return self._reject(
                request, f"an earlier order on {symbol} has an unknown outcome; not sending more"
            )
        try:
            info = await self._info(symbol)
        except GatewayError as exc:
            return self._reject(
                request, f"cannot read {symbol} from the gateway: {exc.diagnostics[0].message}"
            )
        problem = _volume_problem(request.qty, info)
        if problem:
            return self._reject(request, f"{symbol}: {problem}")
        tag = order_tag(request.strategy, request.client_id)
        qty = request.qty
        if request.reduce_only:
            # A close must only close: first hear what the venue did on its own (a stop may
            # have closed the position since the last poll), then close no more than it holds.
            await self._reconcile()
            held = self.book.against(symbol, _side(request))
            if not held:
                return self._reject(
                    request, f"{symbol}: the venue holds no position of this profile to close"
                )
            if not self.hedging:
                qty = min(qty, held[0].volume)
        if self.hedging:
            opposite = self.book.against(symbol, _side(request))
            if opposite:
                return await self._reduce(symbol, request, tag, info, opposite)
        return await self._place(symbol, request, tag, info, qty, announced=False)

    async def _place(
        self,
        symbol: str,
        request: OrderRequest,
        tag: str,
        info: SymbolInfo,
        qty: Decimal,
        *,
        announced: bool,
    ) -> OrderAccepted | OrderRejected | OrderUnknown:
        """``POST /order`` for ``qty`` of the request, sent once; its stops rounded to the
        symbol's digits (a terminal refuses a stop that is not a price of the symbol)."""
        outcome = await self.client.order(
            symbol=symbol,
            side=request.side,
            volume=qty,
            magic=self.magic,
            client_order_id=request.client_id,
            comment=tag,
            deviation=self.deviation,
            sl=_to_digits(request.stop_loss, info.digits),
            tp=_to_digits(request.take_profit, info.digits),
        )
        if outcome.status == "rejected":
            return self._reject(request, outcome.message or "rejected by the venue")
        if outcome.status == "unknown":
            self._unresolved[symbol] = _Unresolved(request, symbol, tag)
            return await self._settle_or_block(symbol, request, outcome.message)
        accepted = OrderAccepted(request.client_id, self.name, self.clock.now())
        if not announced:
            self.bus.publish(accepted)
        result = outcome.result
        filled = result.volume or qty
        self.book.track(
            symbol, _side(request), request.client_id, tag, result.order, result.price, filled
        )
        self._fill(request, result.price, filled)
        return accepted

    async def _reduce(
        self,
        symbol: str,
        request: OrderRequest,
        tag: str,
        info: SymbolInfo,
        opposite: list[Position],
    ) -> OrderAccepted | OrderRejected | OrderUnknown:
        """Hedging account: an order against open positions closes them by ticket, oldest first
        (whole, or partly for the last one); what is left opens a position of its own. Like a
        netting account, the stream keeps one net position. Stops at the first failure."""
        remaining = request.qty
        announced = False
        for position in opposite:
            if remaining <= 0:
                break
            take = min(remaining, position.volume)
            key = f"{request.client_id}-close-{position.ticket}"
            if take == position.volume:
                outcome = await self.client.close_position(position.ticket, key)
            else:
                outcome = await self.client.close_partial(position.ticket, take, key)
            if outcome.status == "rejected":
                return self._reject(
                    request, f"closing ticket {position.ticket}: {outcome.message or 'rejected'}"
                )
            if outcome.status == "unknown":
                closing = _Closing(position.ticket, position.volume, take)
                self._unresolved[symbol] = _Unresolved(request, symbol, tag, closing)
                return await self._settle_or_block(symbol, request, outcome.message)
            if not announced:
                self.bus.publish(OrderAccepted(request.client_id, self.name, self.clock.now()))
                announced = True
            self.book.took(position, take)
            self._fill(request, outcome.result.price, take)
            remaining -= take
        if remaining > 0 and not request.reduce_only:
            return await self._place(symbol, request, tag, info, remaining, announced=announced)
        return OrderAccepted(request.client_id, self.name, self.clock.now())

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

    def _fill(self, request: OrderRequest, price: Decimal | None, qty: Decimal) -> None:
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
                self.clock.now(),
            )
        )

    async def _resolve(self, broker_symbol: str) -> bool:
        """Ask the venue whether the order of unknown outcome was placed; True once settled.

        Found as a position or a deal: it was placed, at that price. Absent from
        :data:`ABSENCE_CHECKS` clean reads in a row (the terminal may still be working on it):
        it was not. Any failed read: still unknown, and the symbol stays blocked."""
        pending = self._unresolved[broker_symbol]
        if pending.closing is not None:
            return await self._resolve_close(broker_symbol, pending, pending.closing)
        found: Position | Deal | None = None
        for check in range(ABSENCE_CHECKS):
            if check:
                await asyncio.sleep(self.absence_backoff_s * check)
            try:
                found = await self._find(pending)
            except GatewayError:
                return False
            if found is not None:
                break
        del self._unresolved[broker_symbol]
        request = pending.request
        if found is None:
            self._reject(
                request,
                f"the venue shows no position or deal for this order after {ABSENCE_CHECKS} "
                "reads: it was not placed",
            )
            return True
        if isinstance(found, Position):  # the position it opened
            price, qty, ticket = found.price_open, found.volume, found.ticket
        else:  # the deal it made (netting: it may have added to or closed a position)
            price, qty, ticket = found.price, found.volume or request.qty, found.order
        side = _side(request)
        self.book.track(broker_symbol, side, request.client_id, pending.tag, ticket, price, qty)
        self.bus.publish(OrderAccepted(request.client_id, self.name, self.clock.now()))
        self._fill(request, price, qty)
        return True

    async def _resolve_close(self, symbol: str, pending: _Unresolved, closing: _Closing) -> bool:
        """A close by ticket of unknown outcome: made if the ticket is gone or smaller by what the
        close took (priced by the position's last closing deal); not made after
        :data:`ABSENCE_CHECKS` reads that show it whole. The rest of the order is not sent."""
        request = pending.request
        deals: list[Deal] | None = None
        held = self.book.tickets.get(closing.ticket)
        for check in range(ABSENCE_CHECKS):
            if check:
                await asyncio.sleep(self.absence_backoff_s * check)
            try:
                positions = await self.client.positions(self.magic)
                now = next((p for p in positions if p.ticket == closing.ticket), None)
                if now is None or now.volume <= closing.volume - closing.take:
                    since = held.time_msc if held is not None else 0
                    deals = await self.client.deals(*self._deal_window(since), closing.ticket)
                    break
            except GatewayError:
                return False
        del self._unresolved[symbol]
        if deals is None:
            self._reject(
                request,
                f"closing ticket {closing.ticket}: the venue shows it whole after "
                f"{ABSENCE_CHECKS} reads: it was not closed",
            )
            return True
        exit_deal = next((d for d in reversed(deals) if d.entry in (1, 2, 3)), None)
        if held is not None:
            self.book.took(held, closing.take)
        self.bus.publish(OrderAccepted(request.client_id, self.name, self.clock.now()))
        self._fill(request, exit_deal.price if exit_deal else None, closing.take)
        return True

    async def _find(self, pending: _Unresolved) -> Position | Deal | None:
        """The order at the venue: a position it opened, else a deal it made (on a netting
        account an order into an existing position leaves only a deal)."""
        cid = pending.request.client_id

        def ours(row: Position | Deal) -> bool:
            if row.client_order_id:  # a gateway that echoes client ids: exact
                return row.client_order_id == cid
            return row.comment[:TAG_LENGTH] == pending.tag

        positions = await self.client.positions(self.magic)
        position = next(
            (p for p in positions if p.symbol == pending.broker_symbol and ours(p)), None
        )
        if position is not None:
            return position  # it opened this position (an order into one keeps its comment)
        deals = await self.client.deals(*self._deal_window())
        return next(
            (
                d
                for d in reversed(deals)
                if d.magic == self.magic and d.symbol == pending.broker_symbol and ours(d)
            ),
            None,
        )

    def _deal_window(self, since_ms: int = 0) -> tuple[str, str]:
        """``from_date``/``to_date`` around now (from ``since_ms`` when known), padded by a day on
        both sides, on the venue's wall clock: deals carry the venue's time, not the session's."""
        now = datetime.now(UTC)
        since = datetime.fromtimestamp(since_ms / 1000, UTC) if since_ms else now
        zone = getattr(self.profile, "time_zone", lambda: None)() or UTC
        fmt = "%Y-%m-%dT%H:%M:%SZ"  # the venue's wall clock, written as gateways expect
        start, end = min(since, now) - DAY, now + DAY
        return start.astimezone(zone).strftime(fmt), end.astimezone(zone).strftime(fmt)

    # ------------------------------------------------------------ position poller
    async def poll(self) -> int:
        """Diff the magic's positions against the last snapshot; a ticket that disappeared was
        closed at the venue (SL, TP or by hand): emit its closing fill with the exact deal price.
        A failed read changes nothing. Orders of unknown outcome are looked for again first, so
        a blocked symbol is freed as soon as the gateway can tell. Returns the number of fills
        emitted for venue-side exits."""
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
            current = {p.ticket: p for p in await self.client.positions(self.magic)}
        except GatewayError as exc:
            self._positions_outage.failed(exc.diagnostics[0].message)
            return 0
        self._positions_outage.answered()
        changes = self.book.changes(current, read_at)
        emitted = 0
        for position in changes.vanished:
            closing = await self._last_exit(position)
            if closing is None:
                continue  # no exit deal (yet), or unreadable: nothing is assumed
            self._report_exit(position, closing.volume or position.volume, closing)
            self.book.forget(position.ticket)
            emitted += 1
        unread: set[int] = set()
        for held, now in changes.shrunk:  # part of it was closed at the venue
            closing = await self._last_exit(held)
            if closing is None:
                unread.add(held.ticket)  # keep the old volume: the next poll looks again
                continue
            self._report_exit(held, held.volume - now.volume, closing)
            emitted += 1
        self.book.refresh(current, read_at, keep=unread)
        return emitted

    async def _last_exit(self, position: Position) -> Deal | None:
        """The latest deal that took volume off ``position``, or None (none yet, or unreadable)."""
        try:
            deals = await self.client.deals(*self._deal_window(position.time_msc), position.ticket)
        except GatewayError:
            return None
        return next((d for d in reversed(deals) if d.entry in (1, 2, 3)), None)

    def _report_exit(self, position: Position, volume: Decimal, deal: Deal) -> None:
        """``volume`` of ``position`` was closed at the venue (SL, TP, by hand) by ``deal``."""
        reason = {4: "stop_loss", 5: "take_profit"}.get(deal.reason, "market")
        self.bus.publish(
            OrderFilled(
                self.book.owner(position.ticket, f"{self.name}-{position.ticket}"),
                self.name,
                self.label,
                self._qkt_symbol(position.symbol),
                "sell" if position.type == 0 else "buy",
                volume,
                deal.price,
                self.clock.now(),
                reason,  # type: ignore[arg-type]
            )
        )

    def cancel(self, client_id: str) -> bool:
        return False  # market orders only: nothing rests at the venue

    def close_position(self, label: str, symbol: str) -> None:
        """Close the venue's positions of ``symbol`` by ticket (right on hedging accounts too), in
        that symbol's order queue. Each close is reported like an order: a fill at the venue's
        price, a rejection, or an unknown outcome the poller settles from the closing deal."""
        self._spawn(self._close(self.broker_symbol(symbol)))

    async def _close(self, broker_symbol: str) -> None:
        async with self._lock(broker_symbol):
            for position in self.book.of(broker_symbol):
                await self._close_ticket(position.ticket, position)

    async def _close_ticket(self, ticket: int, position: Position) -> None:
        client_id = f"{self.name}-close-{ticket}-{run_stamp()}"  # a fresh key for every try
        outcome = await self.client.close_position(ticket, client_id)
        now = self.clock.now()
        if outcome.status == "rejected":
            self.bus.publish(OrderRejected(client_id, self.name, outcome.message, now))
            return
        if outcome.status == "unknown":
            reason = f"close of ticket {ticket}: outcome unknown ({outcome.message})"
            self.bus.publish(OrderUnknown(client_id, self.name, reason, now))
            return  # still in the book: the poller reports the close if it happened
        self.book.forget(ticket)
        result = outcome.result
        self.bus.publish(OrderAccepted(client_id, self.name, now))
        self.bus.publish(
            OrderFilled(
                client_id,
                self.name,
                self.label,
                self._qkt_symbol(position.symbol),
                "sell" if position.type == 0 else "buy",
                result.volume or position.volume,
                result.price or position.price_current or position.price_open,
                now,
            )
        )


def trade_mode(account: Account) -> str:
    return TRADE_MODES.get(account.trade_mode, str(account.trade_mode))


def account_mismatches(profile: str, url: str, values: Any, account: Account) -> list[Diagnostic]:
    """The profile's ``expected_*`` fields the gateway's account does not match."""
    found = []
    for key, actual in (
        ("expected_account_login", account.login),
        ("expected_account_server", account.server),
        ("expected_trade_mode", trade_mode(account)),
    ):
        expected = values.get(key)
        if expected is not None and str(expected) != str(actual):
            found.append(
                error(
                    "account-mismatch",
                    f"profile `{profile}`: gateway {url} is logged in with "
                    f"{key.removeprefix('expected_')} {actual!r}, expected {expected!r}",
                )
            )
    return found


def _side(request: OrderRequest) -> int:
    """MT5's position type of the request's side: 0 buy, 1 sell."""
    return 0 if request.side == "buy" else 1


def _to_digits(price: Decimal | None, digits: int) -> Decimal | None:
    return None if price is None else price.quantize(Decimal(1).scaleb(-digits))


def _volume_problem(qty: Decimal, info: SymbolInfo) -> str | None:
    if qty < info.volume_min:
        return f"volume {qty} is below the minimum {info.volume_min}"
    if qty > info.volume_max:
        return f"volume {qty} is above the maximum {info.volume_max}"
    if info.volume_step > 0 and (qty / info.volume_step) % 1 != 0:
        return f"volume {qty} is not a multiple of the step {info.volume_step}"
    return None
