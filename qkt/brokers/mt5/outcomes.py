"""Orders of unknown outcome: found at the venue, or proved not placed, before anything else goes out.

An order is sent once. An unknown outcome (a timeout after sending, a 502, an idempotency key
still in progress) is resolved by looking for the order at the venue — ``/reconcile`` where the
gateway serves it, else positions and deals; the deal the order made is the proof (on a netting
account an order that adds to or reverses a position leaves no position of its own) — before
anything else may be sent for that symbol. "Not placed" takes several clean reads in a row and
the end of the window in which the gateway may still be placing it; a failed read keeps the
symbol blocked. Orders an earlier run journaled without an outcome (:meth:`Outcomes.expect`) are
resolved the same way after a restart, and never resent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from qkt.brokers.mt5.client import Deal, GatewayError, Position, Snapshot
from qkt.brokers.mt5.seat import Closing, Seat, Unresolved, side_of
from qkt.brokers.tags import TAG_LENGTH
from qkt.engine.events import OrderAccepted, OrderRequest, OrderUnknown

ABSENCE_CHECKS = 3  # clean reads in a row before an order of unknown outcome counts as not placed


@dataclass
class _Found:
    """An order of unknown outcome, found at the venue."""

    price: Decimal
    qty: Decimal
    identifier: int
    ticket: int
    deal: int = 0


class Outcomes(Seat):
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
        pending = Unresolved(request, symbol, tag, settle_after=settle_after, seeded=True)
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
            async with self.venue.lock(symbol):
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

    async def resolve_pending(self) -> None:
        """Look for the session's orders of unknown outcome again (the poller does, first), so a
        blocked symbol is freed as soon as the gateway can tell."""
        for symbol in list(self._unresolved):
            async with self.venue.lock(symbol):
                if symbol in self._unresolved:
                    await self._resolve(symbol)

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
                found = self._find(pending, await self.venue.snapshot())
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
            broker_symbol, side_of(request), request.client_id, pending.tag, found.ticket,
            found.price, found.qty, found.identifier,
        )  # fmt: skip
        self.bus.publish(OrderAccepted(request.client_id, self.name, self.clock.now()))
        self._fill(request, found.price, found.qty)
        return True

    def _find(self, pending: Unresolved, venue: Snapshot) -> _Found | None:
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

    async def _resolve_close(self, symbol: str, pending: Unresolved, closing: Closing) -> bool:
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
                positions = await self.venue.client.positions(self.magic)
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
