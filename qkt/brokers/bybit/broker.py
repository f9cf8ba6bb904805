"""BybitBroker: the Broker protocol for one session over its profile's shared Bybit account.

What the registry's factory returns for a ``bybit`` profile; the account's connection is the
profile's :class:`~qkt.brokers.bybit.venue.BybitVenue`. Orders are market orders: linear ones in
one-way mode (``positionIdx`` 0) with the bracket sent natively (``takeProfit``/``stopLoss``,
``tpslMode: Full``), closes ``reduceOnly``; spot ones in the base coin (``marketUnit: baseCoin``),
their bracket held by qkt and sent as a sell when the venue's price crosses a leg. Every order
carries an ``orderLinkId`` derived from its client id (:mod:`qkt.brokers.bybit.ids`), is checked
against the instrument before it is sent, is sent once, and gets its fill from its executions
(:mod:`qkt.brokers.bybit.orders`). What Bybit does on its own — a take-profit, a stop-loss — or a
trade by hand reaches the session holding the symbol.

At start a linear session takes back its open positions: the journal's quantity where a daemon
gives it (:attr:`BybitBroker.journal_holds`), else what its own executions of the last week add up
to, never more than the venue holds. Spot holdings are balances, not positions: not recovered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from qkt.brokers.bybit.checks import qty_of_notional, qty_problem, wire_stops
from qkt.brokers.bybit.client import BybitClient, BybitError
from qkt.brokers.bybit.ids import order_link_id, session_of_link
from qkt.brokers.bybit.models import Execution
from qkt.brokers.bybit.orders import ABSENCE_CHECKS, Found, Pending, Reason, look_up, settle_after
from qkt.brokers.bybit.venue import LOOKBACK_MS, BybitVenue, VenueRefused
from qkt.brokers.tags import run_stamp, session_tag
from qkt.engine.events import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderUnknown,
    Side,
)
from qkt.errors import QktError

ZERO = Decimal(0)
EXIT_REASONS: dict[str, Reason] = {
    "CreateByTakeProfit": "take_profit",
    "CreateByPartialTakeProfit": "take_profit",
    "CreateByStopLoss": "stop_loss",
    "CreateByPartialStopLoss": "stop_loss",
    "CreateByTrailingStop": "stop_loss",
}


@dataclass
class Recovered:
    """An open linear position of this session found at start."""

    label: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    ticket: int = 0
    comment: str = ""
    contract_size: Decimal = Decimal(1)


@dataclass
class Held:
    """The session's own net position of a symbol: its fills, less what the venue closed."""

    qty: Decimal  # signed: buys positive
    owner: str  # client id of the order that opened it
    stop_loss: Decimal | None = None  # spot: legs held by qkt
    take_profit: Decimal | None = None


class BybitBroker:
    capabilities = frozenset({"market", "bracket"})

    def __init__(
        self,
        profile: Any,
        bus: Any,
        clock: Any,
        prices: Any,
        client: BybitClient | None = None,
        *,
        label: str | None = None,
        venue: BybitVenue | None = None,
    ) -> None:
        self.venue = venue if venue is not None else BybitVenue(profile, client)
        self.profile = profile
        self.name: str = profile.name
        self.label = label or profile.name.upper()
        self.bus, self.clock, self.prices = bus, clock, prices
        self.session = ""
        self.recovered: list[Recovered] = []
        self.journal_holds: dict[str, Decimal] = {}
        self.held: dict[str, Held] = {}
        self.absence_backoff_s = 0.2
        self.lag_s = 2.0  # how late an order may show at the venue after its answer
        self.fill_reads = 20  # reads of an accepted order before the poller takes over
        self.fill_backoff_s = 0.05
        self.before_send: Callable[[OrderRequest, str, str], None] | None = None
        self.on_settled: Callable[[OrderRequest, Decimal, Decimal], None] | None = None
        self._unresolved: dict[str, Pending] = {}
        self._expected: dict[str, list[Pending]] = {}
        self._announced: set[str] = set()
        self._journaled: set[str] = set()
        self._inflight: set[asyncio.Task[None]] = set()
        self._failures: list[BaseException] = []

    @property
    def client(self) -> BybitClient:
        return self.venue.client

    @property
    def category(self) -> str:
        return self.venue.category

    # ------------------------------------------------------------ start-up
    async def start(self, session: str) -> None:
        """Join the venue (its guard checked once for the sessions starting with it) and take
        back this session's open linear positions."""
        self.session = session
        self.venue.attach(self)
        try:
            await self.venue.ready()
            self.recovered = await self._recover() if self.venue.linear else []
            await self._settle_seen()
        except BybitError as exc:
            raise VenueRefused(exc.diagnostics) from None

    async def _recover(self) -> list[Recovered]:
        positions = [p for p in await self.client.positions(self.category) if p.size > 0]
        holds = dict(self.journal_holds)
        for pending in self._seeded():
            if pending.symbol in holds:
                qty = pending.request.qty
                holds[pending.symbol] += qty if pending.request.side == "buy" else -qty
        recovered: list[Recovered] = []
        since = int(time.time() * 1000) - LOOKBACK_MS
        for position in positions:
            sign = Decimal(1) if position.side == "Buy" else Decimal(-1)
            if position.symbol in holds:
                mine = holds[position.symbol] * sign
            else:  # what this session's own executions add up to
                rows = await self.client.executions(self.category, position.symbol, start_ms=since)
                mine = sign * sum(
                    (
                        e.exec_qty if e.side == "Buy" else -e.exec_qty
                        for e in rows
                        if e.exec_type == "Trade"
                        and session_of_link(e.order_link_id) == session_tag(self.session)
                    ),
                    ZERO,
                )
            qty = min(mine, position.size)
            if qty <= 0:
                continue
            self.held[position.symbol] = Held(sign * qty, f"{self.name}-{position.symbol}")
            side = "buy" if sign > 0 else "sell"
            price = position.avg_price or ZERO
            recovered.append(Recovered(self.label, position.symbol, side, qty, price))
        return recovered

    # ------------------------------------------------------------ orders of an earlier run
    def expect(self, request: OrderRequest, tag: str, sent_at: datetime) -> None:
        """An order an earlier run journaled (``tag``: its orderLinkId) without an outcome: found
        at the venue before anything else is sent for its symbol, never resent."""
        age = (datetime.now(UTC) - sent_at).total_seconds()
        symbol = self.venue.broker_symbol(request.symbol)
        after = settle_after(self.client.recv_window_ms, self.lag_s, age)
        pending = Pending(request, tag, symbol, False, after, seeded=True)
        self._announced.add(request.client_id)
        self._journaled.add(request.client_id)
        if symbol in self._unresolved:
            self._expected.setdefault(symbol, []).append(pending)
        else:
            self._unresolved[symbol] = pending

    def _seeded(self) -> list[Pending]:
        queued = [p for q in self._expected.values() for p in q]
        return [p for p in [*self._unresolved.values(), *queued] if p.seeded]

    async def _settle_seen(self) -> None:
        """Orders of :meth:`expect` whose fill is in what :meth:`start` took back."""
        recovered = {r.symbol for r in self.recovered}
        for symbol in list(self._unresolved):
            pending = self._unresolved[symbol]
            if not pending.seeded:
                continue
            found = await look_up(self.client, self.category, pending)
            if found is None or not found.final or not found.qty:
                continue
            if not (pending.request.reduce_only or symbol in recovered):
                continue
            self._resolved(symbol)
            if self.on_settled is not None:
                self.on_settled(pending.request, found.price, found.qty)

    async def resolve_expected(self) -> int:
        for symbol in list(self._unresolved):
            async with self.venue.lock(symbol):
                if symbol in self._unresolved and self._unresolved[symbol].seeded:
                    await self._resolve(symbol)
        return self.expected

    @property
    def expected(self) -> int:
        waiting = sum(p.seeded for p in self._unresolved.values())
        return waiting + sum(len(q) for q in self._expected.values())

    def _resolved(self, symbol: str) -> None:
        del self._unresolved[symbol]
        queued = self._expected.get(symbol)
        if queued:
            self._unresolved[symbol] = queued.pop(0)
            if not queued:
                del self._expected[symbol]

    # ------------------------------------------------------------ the loop
    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if task in self._inflight:
            self._inflight.discard(task)
            if not task.cancelled() and task.exception() is not None:
                self._failures.append(task.exception())  # type: ignore[arg-type]

    async def settle(self) -> None:
        while self._inflight:
            task = next(iter(self._inflight))
            if task.done():
                self._done(task)
                continue
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
        if self._failures:
            failure, self._failures = self._failures[0], []
            raise failure

    async def aclose(self) -> None:
        try:
            await self.settle()
        finally:
            await self.venue.detach(self)

    async def poll(self) -> int:
        if self not in self.venue.sessions:
            await self.resolve_pending()
            return 0
        result = (await self.venue.poll()).get(self, 0)
        if isinstance(result, BaseException):
            raise result
        return result

    # ------------------------------------------------------------ events
    def _announce(self, request: OrderRequest) -> None:
        if request.client_id not in self._announced:
            self._announced.add(request.client_id)
            self.bus.publish(request)

    def _reject(self, request: OrderRequest, reason: str) -> None:
        self._announce(request)
        self.bus.publish(OrderRejected(request.client_id, self.name, reason, self.clock.now()))

    def _fill(
        self, request: OrderRequest, qty: Decimal, price: Decimal, fee: Decimal, reason: Reason
    ) -> None:
        self.bus.publish(
            OrderFilled(
                request.client_id, self.name, request.label, request.symbol, request.side, qty,
                price, self.clock.now(), reason, commission=fee,
            )
        )  # fmt: skip
        symbol = self.venue.broker_symbol(request.symbol)
        signed = qty if request.side == "buy" else -qty
        held = self.held.get(symbol)
        total = (held.qty if held else ZERO) + signed
        if not total:
            self.held.pop(symbol, None)
        elif held is None or (held.qty > 0) != (total > 0):  # opened, or reversed
            self.held[symbol] = Held(total, request.client_id)
        else:
            held.qty = total
        if self.venue.linear or request.reduce_only or symbol not in self.held:
            return
        if request.stop_loss is not None or request.take_profit is not None:
            self.held[symbol].stop_loss = request.stop_loss  # spot: qkt holds the bracket
            self.held[symbol].take_profit = request.take_profit

    # ------------------------------------------------------------ sending
    def submit(self, request: OrderRequest) -> None:
        self._spawn(self._dispatch(request))

    async def _dispatch(self, request: OrderRequest, reason: Reason = "market") -> None:
        symbol = self.venue.broker_symbol(request.symbol)
        async with self.venue.lock(symbol):
            await self._send(symbol, request, reason)

    async def _send(self, symbol: str, request: OrderRequest, reason: Reason) -> None:
        while symbol in self._unresolved:
            if not await self._resolve(symbol):
                self._reject(
                    request,
                    f"an earlier order on {symbol} has an unknown outcome; not sending more",
                )
                return
        try:
            problem = await self.venue.position_mode(symbol)
            inst = await self.venue.instrument(symbol)
            quote = await self.venue.quote(symbol)
        except BybitError as exc:
            self._reject(request, f"{symbol}: {exc.diagnostics[0].message}; not sent")
            return
        if problem:
            self._reject(request, f"{problem}; not sent")
            return
        entry = quote.ask if request.side == "buy" else quote.bid
        if request.notional is not None:
            qty, why = qty_of_notional(self.category, request.notional, entry, inst)
            request = replace(request, qty=qty)
            if why:
                self._reject(request, f"{symbol}: {why}; not sent")
                return
        if request.reduce_only:
            held = self.held.get(symbol)
            if held is None or (held.qty > 0) == (request.side == "buy"):
                self._reject(request, f"{symbol}: this session holds no position to close")
                return
            request = replace(request, qty=min(request.qty, abs(held.qty)))
        why = qty_problem(self.category, request.qty, entry, inst)
        if why is None and not request.reduce_only:
            request, why = wire_stops(request, entry, inst)
        if why:
            self._reject(request, f"{symbol}: {why}; not sent")
            return
        await self._create(symbol, request, reason)

    def _body(self, symbol: str, request: OrderRequest, link: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "category": self.category,
            "symbol": symbol,
            "side": "Buy" if request.side == "buy" else "Sell",
            "orderType": "Market",
            "qty": format(request.qty, "f"),
            "orderLinkId": link,
        }
        if not self.venue.linear:
            body["marketUnit"] = "baseCoin"
            return body
        body["positionIdx"] = 0
        if request.reduce_only:
            body["reduceOnly"] = True
        elif request.stop_loss is not None or request.take_profit is not None:
            if request.take_profit is not None:
                body["takeProfit"] = format(request.take_profit, "f")
            if request.stop_loss is not None:
                body["stopLoss"] = format(request.stop_loss, "f")
            body["tpslMode"] = "Full"
        return body

    async def _create(self, symbol: str, request: OrderRequest, reason: Reason) -> None:
        link = order_link_id(self.session, request.client_id)
        if self.before_send is not None and request.client_id not in self._journaled:
            try:
                self.before_send(request, link, symbol)
            except Exception as exc:
                why = exc.diagnostics[0].message if isinstance(exc, QktError) else str(exc)
                self._reject(request, f"not journaled: not sent ({why or type(exc).__name__})")
                return
            self._journaled.add(request.client_id)
        self._announce(request)
        outcome = await self.client.create_order(self._body(symbol, request, link))
        if outcome.status == "rejected":
            code = f" (retCode {outcome.ret_code})" if outcome.ret_code else ""
            self._reject(request, f"{outcome.message or 'rejected by Bybit'}{code}")
            return
        accepted = outcome.status == "accepted"
        if accepted:
            self.bus.publish(OrderAccepted(request.client_id, self.name, self.clock.now()))
        after = settle_after(self.client.recv_window_ms, self.lag_s)
        self._unresolved[symbol] = Pending(request, link, symbol, accepted, after, reason)
        settled = await self._resolve(symbol, reads=self.fill_reads if accepted else None)
        if not settled and not accepted:
            self.bus.publish(
                OrderUnknown(
                    request.client_id,
                    self.name,
                    f"outcome unknown ({outcome.message}); {symbol} is blocked until Bybit "
                    "shows whether the order was placed",
                    self.clock.now(),
                )
            )

    async def _resolve(self, symbol: str, reads: int | None = None) -> bool:
        """Look the symbol's pending order up; True once it is settled (filled, refused by the
        venue, or proved not placed). ``reads``: how many looks before giving up for now."""
        pending = self._unresolved[symbol]
        found: Found | None = None
        for check in range(reads or ABSENCE_CHECKS):
            if check:
                wait = self.fill_backoff_s if reads else self.absence_backoff_s * check
                await asyncio.sleep(wait)
            try:
                found = await look_up(self.client, self.category, pending)
            except BybitError:
                return False
            if found is not None and (found.final or not reads):
                break
        if found is None:
            if pending.accepted or time.monotonic() < pending.settle_after:
                return False  # acknowledged but not visible yet, or may still be placed
            self._resolved(symbol)
            self._reject(
                pending.request,
                f"Bybit shows no order {pending.link} after {ABSENCE_CHECKS} reads: not placed",
            )
            return True
        if not found.final:
            return False
        self._resolved(symbol)
        request = pending.request
        if not found.qty:
            why = f": {found.why}" if found.why else ""
            self._reject(request, f"Bybit {found.status.lower()} it without a fill{why}")
            return True
        if not pending.accepted:
            self.bus.publish(OrderAccepted(request.client_id, self.name, self.clock.now()))
        self._fill(request, found.qty, found.price, found.fee, pending.reason)
        return True

    async def resolve_pending(self) -> None:
        for symbol in list(self._unresolved):
            async with self.venue.lock(symbol):
                if symbol in self._unresolved:
                    await self._resolve(symbol)

    # ------------------------------------------------------------ what the venue did
    def exit_from(self, execution: Execution, available: Decimal) -> Decimal:
        """An execution not of this session's orders (Bybit's TP/SL, a trade by hand) that
        reduces its position of the symbol: reported as the exit it is; what it took."""
        held = self.held.get(execution.symbol)
        if held is None or (held.qty > 0) == (execution.side == "Buy") or available <= 0:
            return ZERO
        take = min(abs(held.qty), available)
        side: Side = "sell" if held.qty > 0 else "buy"
        reason = EXIT_REASONS.get(execution.create_type, "market")
        fee = execution.exec_fee or ZERO
        share = fee * take / execution.exec_qty if execution.exec_qty else ZERO
        request = OrderRequest(
            held.owner, self.session, "", self.label, execution.symbol, side, take, self.clock.now()
        )
        self._fill(request, take, execution.exec_price, share, reason)
        return take

    def crossed(self, symbol: str, bid: Decimal) -> None:
        """Spot: the venue's bid crossed a leg qkt holds: sell what the session holds."""
        held = self.held.get(symbol)
        if held is None or held.qty <= 0:
            return
        reason: Reason | None = None
        if held.stop_loss is not None and bid <= held.stop_loss:
            reason = "stop_loss"
        elif held.take_profit is not None and bid >= held.take_profit:
            reason = "take_profit"
        if reason is None:
            return
        held.stop_loss = held.take_profit = None  # sent once
        self._spawn(self._dispatch(self._closing(symbol, held), reason))

    def _closing(self, symbol: str, held: Held) -> OrderRequest:
        side: Side = "sell" if held.qty > 0 else "buy"
        client_id = f"{self.session or self.name}-close-{run_stamp()}"
        return OrderRequest(
            client_id, self.session, "", self.label, symbol, side, abs(held.qty), self.clock.now(),
            reduce_only=True,
        )  # fmt: skip

    def cancel(self, client_id: str) -> bool:
        return False  # market orders only: nothing rests at the venue

    def close_position(self, label: str, symbol: str) -> None:
        held = self.held.get(self.venue.broker_symbol(symbol))
        if held is not None:
            self._spawn(self._dispatch(self._closing(self.venue.broker_symbol(symbol), held)))
