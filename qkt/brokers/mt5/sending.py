"""Sending a session's orders: checked against what the gateway and the venue accept, then sent once.

Every order carries the profile's magic, its client order id and a 16-character tag as its comment
(:mod:`qkt.brokers.tags`: gateways cut comments and do not echo client ids on positions). Before
anything is sent, the order is checked against the venue's ``symbol_info`` (min, max, step) and the
gateway's per-order limit; an order sized in money becomes lots at the venue's quote; its
stop-loss and take-profit are placed at the strategy's distance from the venue's own quote at send
time, rounded to the symbol's digits, on the right side of the expected fill. Nothing is rounded
silently and no refusal is left to the gateway's 400. An answer that is not one (a timeout, a 502)
is an unknown outcome (:mod:`qkt.brokers.mt5.outcomes`); nothing is ever sent again for it.

Orders of one broker symbol go one at a time, whichever session of the profile sends them (the
venue's lock); a close closes only the session's own volume.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_DOWN, Decimal

from qkt.brokers.mt5.book import Stake
from qkt.brokers.mt5.checks import stops_problem, to_digits, volume_problem
from qkt.brokers.mt5.client import GatewayError, SymbolInfo
from qkt.brokers.mt5.outcomes import Outcomes
from qkt.brokers.mt5.seat import Closing, Unresolved, side_of
from qkt.brokers.tags import MAX_CLIENT_ID, TAG_LENGTH, order_tag, run_stamp
from qkt.engine.events import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderUnknown,
    Side,
)
from qkt.engine.orders import bracket_prices


class Sending(Outcomes):
    def submit(self, request: OrderRequest) -> None:
        """Hand the order to the running loop; the order as sent, then accepted/filled/rejected/
        unknown follow on the bus."""
        self._spawn(self._dispatch(request))

    async def _dispatch(self, request: OrderRequest) -> None:
        symbol = self.broker_symbol(request.symbol)
        async with self.venue.lock(symbol):
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
            info = await self.venue.info(symbol)
        except GatewayError as exc:
            return self._reject(
                request, f"cannot read {symbol} from the gateway: {exc.diagnostics[0].message}"
            )
        entry: Decimal | None = None
        legs = request.stop_loss is not None or request.take_profit is not None
        if request.notional is not None or legs:
            try:
                quote = await self.venue.client.quote(symbol)
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
        problem = volume_problem(request.qty, info, self.venue.gateway_max(request.symbol, symbol))
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
            held = self.book.against(symbol, side_of(request))
            if not held:
                return self._reject(
                    request, f"{symbol}: the venue holds no position of this session to close"
                )
            if not self.hedging:
                qty = min(qty, held[0].volume)
        if self.hedging:
            opposite = self.book.against(symbol, side_of(request))
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
        outcome = await self.venue.client.order(
            symbol=symbol,
            side=request.side,
            volume=qty,
            magic=self.magic,
            client_order_id=request.client_id,
            comment=tag,
            deviation=self.venue.deviation,
            sl=request.stop_loss,
            tp=request.take_profit,
        )
        if outcome.status == "rejected":
            return self._reject(request, outcome.message or "rejected by the venue")
        if outcome.status == "unknown":
            self._unresolved[symbol] = Unresolved(
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
            symbol, side_of(request), request.client_id, tag, result.order, result.price, filled,
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
                outcome = await self.venue.client.close_position(stake.ticket)
            else:
                outcome = await self.venue.client.close_partial(stake.ticket, take)
            if outcome.status == "rejected":
                return self._reject(
                    request, f"closing ticket {stake.ticket}: {outcome.message or 'rejected'}"
                )
            if outcome.status == "unknown":
                closing = Closing(stake, stake.venue_volume, take)
                self._unresolved[symbol] = Unresolved(
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

    def cancel(self, client_id: str) -> bool:
        return False  # market orders only: nothing rests at the venue

    def close_position(self, label: str, symbol: str) -> None:
        """Close the session's positions of ``symbol`` by ticket (right on hedging accounts too),
        in that symbol's order queue. Each close is reported like an order: a fill at the
        venue's price, a rejection, or an unknown outcome the poller settles from the closing
        deal. A netting position shared with others is closed only by the session's volume."""
        self._spawn(self._close(self.broker_symbol(symbol)))

    async def _close(self, broker_symbol: str) -> None:
        async with self.venue.lock(broker_symbol):
            for stake in self.book.of(broker_symbol):
                await self._close_stake(stake)

    async def _close_stake(self, stake: Stake) -> None:
        client_id = f"{self.name}-close-{stake.ticket}-{run_stamp()}"
        side: Side = "sell" if stake.type == 0 else "buy"
        symbol = self.venue.qkt_symbol(stake.symbol)
        request = OrderRequest(
            client_id, self.name, "", self.label, symbol, side, stake.volume, self.clock.now(),
            reduce_only=True,
        )  # fmt: skip
        refused = self._journal(request, stake.comment[:TAG_LENGTH], stake.symbol)
        if refused:
            self.bus.publish(OrderRejected(client_id, self.name, refused, self.clock.now()))
            return
        if stake.venue_volume > stake.volume:  # others' volume is in it: take only ours
            outcome = await self.venue.client.close_partial(stake.ticket, stake.volume)
        else:
            outcome = await self.venue.client.close_position(stake.ticket)
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
                self.venue.qkt_symbol(stake.symbol),
                "sell" if stake.type == 0 else "buy",
                result.volume or stake.volume,
                result.price or stake.price_open,
                now,
                contract_size=self.venue.contract_size(stake.symbol),
            )
        )


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
