"""What the venue did on its own: stops, take-profits and closes by hand, read from its positions.

The venue's positions poller (:meth:`~qkt.brokers.mt5.venue.MT5Venue.poll`) reads the magic's
positions once per interval for every session on the profile; each session diffs that read
against its own book (:mod:`qkt.brokers.mt5.book`) here. A stake the venue closed or shrank is
reported as a fill with its exit deal's exact price and reason (``stop_loss``, ``take_profit``,
``market``) — on the bus of the session whose tag the position carries, never another's. A failed
read, or a position gone that no deal confirms yet, changes nothing.
"""

from __future__ import annotations

from decimal import Decimal

from qkt.brokers.mt5.book import Stake
from qkt.brokers.mt5.client import Deal, GatewayError, Position
from qkt.brokers.mt5.seat import Seat
from qkt.brokers.tags import TAG_LENGTH
from qkt.engine.clock import WallClock
from qkt.engine.events import OrderFilled

EXIT_ENTRIES = (1, 2, 3)  # deal entry OUT, INOUT (a reversal), OUT_BY


class Exits(Seat):
    async def poll(self) -> int:
        """One look at the venue for every session on the profile (a poll already running is
        joined: sessions polling together cost one read); the number of fills this session got
        for what the venue did on its own. Orders of unknown outcome are looked for first."""
        if self not in self.venue.sessions:  # not started: only this session's book
            await self.resolve_pending()
            return await self._reconcile()
        result = (await self.venue.poll()).get(self, 0)
        if isinstance(result, BaseException):
            raise result
        return result

    async def _reconcile(self) -> int:
        """A look of this session's own (before a close: what did the venue do since the last
        poll?); one at a time, since two looks at once would report the same exit twice."""
        async with self._reconciling:
            read_at = self.book.moment
            try:
                positions = await self.venue.client.positions(self.magic)
            except GatewayError as exc:
                self.venue.positions_outage.failed(exc.diagnostics[0].message)
                return 0
            self.venue.positions_outage.answered()
            return await self._diff(positions, read_at)

    async def look_at(self, positions: list[Position], read_at: int) -> int:
        """The venue's positions read at moment ``read_at`` of the book, against the book."""
        async with self._reconciling:
            return await self._diff(positions, read_at)

    async def _diff(self, positions: list[Position], read_at: int) -> int:
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
            deals = await self.venue.client.deals(*self.venue.deal_window(stake.opened))
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
            deals = await self.venue.client.deals(
                *self.venue.deal_window(stake.opened), stake.identifier
            )
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
        when = self.venue.utc(deal.time_msc) if isinstance(self.clock, WallClock) else None
        self._our_deals.add(deal.ticket)
        self.bus.publish(
            OrderFilled(
                self.book.owner(stake.identifier, f"{self.name}-{stake.ticket}"),
                self.name,
                self.label,
                self.venue.qkt_symbol(stake.symbol),
                "sell" if stake.type == 0 else "buy",
                volume,
                deal.price,
                when if when is not None and deal.time_msc else self.clock.now(),
                reason,  # type: ignore[arg-type]
                contract_size=self.venue.contract_size(stake.symbol),
            )
        )
