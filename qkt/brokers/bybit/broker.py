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

A restarted session takes back its open linear positions and resolves the orders an earlier run
journaled (:mod:`qkt.brokers.bybit.recovery`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

from qkt.brokers.bybit.checks import qty_of_notional, qty_problem, wire_stops
from qkt.brokers.bybit.client import BybitError
from qkt.brokers.bybit.ids import order_link_id
from qkt.brokers.bybit.models import Execution
from qkt.brokers.bybit.orders import ABSENCE_CHECKS, Found, Pending, Reason, look_up, settle_after
from qkt.brokers.bybit.recovery import Restart
from qkt.brokers.bybit.seat import ZERO, Held
from qkt.brokers.bybit.venue import VenueRefused
from qkt.brokers.tags import run_stamp
from qkt.engine.events import (
    OrderAccepted,
    OrderRequest,
    OrderUnknown,
    Side,
)

EXIT_REASONS: dict[str, Reason] = {
    "CreateByTakeProfit": "take_profit",
    "CreateByPartialTakeProfit": "take_profit",
    "CreateByStopLoss": "stop_loss",
    "CreateByPartialStopLoss": "stop_loss",
    "CreateByTrailingStop": "stop_loss",
}


class BybitBroker(Restart):
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
        legs = request.stop_loss is not None or request.take_profit is not None
        known = self.prices.quote(request.label, request.symbol, request.side)
        last: Decimal | None = None
        try:
            problem = await self.venue.position_mode(symbol)
            inst = await self.venue.instrument(symbol)
            if request.notional is not None or legs or known is None:
                # Sizes in money and stops are placed at Bybit's own quote at send time.
                quote = await self.venue.quote(symbol)
                known = quote.ask if request.side == "buy" else quote.bid
                last = quote.last
        except BybitError as exc:
            self._reject(request, f"{symbol}: {exc.diagnostics[0].message}; not sent")
            return
        if problem:
            self._reject(request, f"{problem}; not sent")
            return
        entry = known
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
            request, why = wire_stops(request, entry, inst, last if self.venue.linear else None)
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
        refused = self._journal(request, link, symbol)
        if refused:
            self._reject(request, refused)
            return
        self._announce(request)
        self._sent.add(request.client_id)
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
        step: Decimal | None = None
        for check in range(reads or ABSENCE_CHECKS):
            if check:
                wait = self.fill_backoff_s if reads else self.absence_backoff_s * check
                await asyncio.sleep(wait)
            try:
                if not self.venue.linear and step is None:  # read once per symbol, shared
                    step = (await self.venue.instrument(symbol)).volume_step
                found = await look_up(self.client, self.category, pending, step)
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
        """Spot: the venue's bid crossed a leg qkt holds: sell what the session holds. While an
        order of unknown outcome blocks the symbol, the legs wait for a later poll."""
        held = self.held.get(symbol)
        if held is None or held.qty <= 0 or symbol in self._unresolved:
            return
        reason: Reason | None = None
        if held.stop_loss is not None and bid <= held.stop_loss:
            reason = "stop_loss"
        elif held.take_profit is not None and bid >= held.take_profit:
            reason = "take_profit"
        if reason is None:
            return
        legs = held.stop_loss, held.take_profit
        held.stop_loss = held.take_profit = None  # one sell at a time
        self._spawn(self._exit(symbol, held, reason, legs))

    async def _exit(
        self, symbol: str, held: Held, reason: Reason, legs: tuple[Decimal | None, Decimal | None]
    ) -> None:
        """The sell of a crossed leg, sent once; when nothing could be sent (Bybit could not be
        read, the symbol was blocked), the legs are back for the next poll."""
        closing = self._closing(symbol, held)
        await self._dispatch(closing, reason)
        if closing.client_id not in self._sent and self.held.get(symbol) is held:
            held.stop_loss, held.take_profit = legs

    def _closing(self, symbol: str, held: Held) -> OrderRequest:
        side: Side = "sell" if held.qty > 0 else "buy"
        client_id = f"{self.session or self.name}-close-{run_stamp()}"
        return OrderRequest(
            client_id, self.session, "", self.label, symbol, side, abs(held.qty), self.clock.now(),
            reduce_only=True,
        )  # fmt: skip

    def close_position(self, label: str, symbol: str) -> None:
        held = self.held.get(self.venue.broker_symbol(symbol))
        if held is not None:
            self._spawn(self._dispatch(self._closing(self.venue.broker_symbol(symbol), held)))
