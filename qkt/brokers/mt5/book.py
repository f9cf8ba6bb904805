"""The venue positions one MT5 session holds a stake in, kept in step with its fills and the venue.

A position is known by its **identifier** for its whole life: deals carry it as ``position_id``,
and on a netting account a reversal keeps it while the position takes the reversing order's
ticket (reference/mt5-gateway.md, "Positions, tickets and identifiers"). So the book is keyed by
identifier and follows ticket changes; the ticket is only what a close by ticket names.

A stake is the session's own volume in a position. Usually that is the whole position; on a
netting account an order may add to a position that another session or a hand trade opened on the
same symbol, and then the session owns only what its fills put there. The venue's changes are
read against the stake: a position that vanished closed the stake; a position that shrank below
the stake closed the difference (others' volume is taken first); a position that turned to the
other side closed the stake (someone reversed it); growth is someone else's.

The poller reports only what the venue did on its own (a stop, a take-profit, a close by hand), so
the book must already know what the session's orders did: every change of ours is stamped with a
moment, and a snapshot of the venue read before that moment must not undo it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from qkt.brokers.mt5.client import Position
from qkt.brokers.tags import session_of

ZERO = Decimal(0)


@dataclass
class Stake:
    """The session's volume in one venue position."""

    identifier: int
    ticket: int
    symbol: str
    type: int  # 0 buy, 1 sell
    volume: Decimal  # ours
    price_open: Decimal  # our average price
    comment: str
    opened: datetime  # UTC
    venue_volume: Decimal = ZERO  # the whole position's volume at the venue, as last seen
    provisional: bool = False  # netting fill whose position is not confirmed yet


@dataclass
class Changes:
    """What a snapshot of the venue shows that the book did not expect."""

    closed: list[tuple[Stake, Decimal]] = field(default_factory=list)  # (stake, volume lost)
    unplaced: list[Stake] = field(default_factory=list)  # provisional, not in the snapshot


class TicketBook:
    def __init__(self, magic: int) -> None:
        self.magic = magic
        self.hedging = False  # every order a position of its own (margin_mode 2)
        self.owner_tag: str | None = None  # the session's tag; None: every position is ours
        self.stakes: dict[int, Stake] = {}  # identifier -> stake
        self._owners: dict[int, str] = {}  # identifier -> client id of the order that opened it
        self._touched: dict[int, int] = {}  # identifier -> moment of our last change
        self.moment = 0

    # ------------------------------------------------------------ reading
    def ours(self, position: Position) -> bool:
        """Whether a position of the venue was opened by this book's session."""
        return self.owner_tag is None or session_of(position.comment) == self.owner_tag

    def owner(self, identifier: int, default: str) -> str:
        return self._owners.get(identifier) or default

    def held(self, symbol: str) -> Stake | None:
        """The symbol's stake on a netting account (hedging: None, each order stands alone)."""
        if self.hedging:
            return None
        return next((s for s in self.stakes.values() if s.symbol == symbol), None)

    def against(self, symbol: str, side: int) -> list[Stake]:
        """Stakes of ``symbol`` on the other side, oldest first."""
        found = (s for s in self.stakes.values() if s.symbol == symbol and s.type != side)
        return sorted(found, key=lambda s: s.identifier)

    def of(self, symbol: str) -> list[Stake]:
        return [s for s in self.stakes.values() if s.symbol == symbol]

    # ------------------------------------------------------------ our own fills
    def adopt(self, position: Position, opened: datetime, owner: str | None = None) -> Stake:
        """A position found at the venue that is wholly ours (recovered at start, or an order of
        unknown outcome found as the position it opened)."""
        stake = self.stakes.get(position.identifier)
        if stake is None:
            stake = self.stakes[position.identifier] = Stake(
                position.identifier,
                position.ticket,
                position.symbol,
                position.type,
                position.volume,
                position.price_open,
                position.comment,
                opened,
                venue_volume=position.volume,
            )
        if owner:
            self._owners.setdefault(position.identifier, owner)
        return stake

    def track(
        self,
        symbol: str,
        side: int,
        owner: str,
        tag: str,
        ticket: int,
        price: Decimal | None,
        qty: Decimal,
        identifier: int | None = None,
    ) -> None:
        """A fill of ours of ``qty`` at ``price`` by order ``ticket``: into the symbol's stake
        (netting: adds, reduces, closes, or reverses it — a reversal keeps the identifier and
        takes the order's ticket), or a new stake. A new netting stake is provisional until a
        snapshot shows which position the fill went into (the order may have added to a
        position the session does not own); ``identifier`` is given when it is known."""
        held = self.held(symbol)
        if held is not None and held.type == side:
            total = held.volume + qty
            if price is not None and total:
                held.price_open = (held.price_open * held.volume + price * qty) / total
            held.volume = total
            held.venue_volume += qty
            self._touch(held.identifier)
            return
        if held is not None:
            rest = qty - held.volume  # reversed through flat when positive
            if rest <= 0:
                self.took(held, qty)
                return
            held.ticket = ticket or held.ticket
            held.type = side
            held.volume = held.venue_volume = rest
            held.price_open = price or held.price_open
            held.comment = tag
            self._owners[held.identifier] = owner
            self._touch(held.identifier)
            return
        if not ticket or not qty:
            return
        key = identifier or ticket
        self._owners[key] = owner
        self._touch(key)
        self.stakes[key] = Stake(
            key,
            ticket,
            symbol,
            side,
            qty,
            price or ZERO,
            tag,
            datetime.now(UTC),
            venue_volume=qty,
            provisional=not self.hedging and identifier is None,
        )

    def took(self, stake: Stake, take: Decimal) -> None:
        """``take`` came off ``stake`` by an order of ours."""
        if take >= stake.volume:
            self.forget(stake.identifier)
        else:
            stake.volume -= take
            stake.venue_volume = max(ZERO, stake.venue_volume - take)
            self._touch(stake.identifier)

    def forget(self, identifier: int) -> None:
        """A stake that is closed: identifiers are never reused."""
        self.stakes.pop(identifier, None)
        self._owners.pop(identifier, None)
        self._touch(identifier)

    def rehome(self, stake: Stake, identifier: int, ticket: int | None = None) -> None:
        """A provisional stake's fill went into position ``identifier`` (netting: a position
        that already stood there). Bookkeeping, not a change of ours: a snapshot read before it
        still tells what the venue did."""
        self.stakes.pop(stake.identifier, None)
        owner = self._owners.pop(stake.identifier, None)
        stake.provisional = False
        other = self.stakes.get(identifier)
        if other is not None and other.type == stake.type:
            total = other.volume + stake.volume
            other.price_open = (
                other.price_open * other.volume + stake.price_open * stake.volume
            ) / total
            other.volume = total
            return
        stake.identifier = identifier
        stake.ticket = ticket or stake.ticket
        self.stakes[identifier] = stake
        if owner:
            self._owners[identifier] = owner

    def _touch(self, identifier: int) -> None:
        self.moment += 1
        self._touched[identifier] = self.moment

    # ------------------------------------------------------------ the venue's word
    def changes(self, current: dict[int, Position], read_at: int) -> Changes:
        """Compare a snapshot (by identifier) read at moment ``read_at`` with the book."""
        found = Changes()
        for identifier, stake in self.stakes.items():
            if not self._fresh(identifier, read_at):
                continue  # changed by us since the snapshot was read: the next one tells
            now = current.get(identifier)
            if stake.provisional and now is None:
                found.unplaced.append(stake)
            elif now is None or now.type != stake.type:
                found.closed.append((stake, stake.volume))
            elif now.volume < stake.volume:
                found.closed.append((stake, stake.volume - now.volume))
        return found

    def refresh(self, current: dict[int, Position], read_at: int, keep: set[int]) -> None:
        """Take the snapshot's tickets and volumes, except for stakes we changed since it was
        read (a closed one must not come back) and those in ``keep``; a position the book does
        not hold is taken only if its session's tag is ours (never another session's)."""
        for identifier, position in current.items():
            if identifier in keep or not self._fresh(identifier, read_at):
                continue
            stake = self.stakes.get(identifier)
            if stake is None:
                if self.ours(position):
                    self.adopt(position, datetime.now(UTC))
                continue
            stake.provisional = False
            stake.ticket = position.ticket
            stake.venue_volume = position.volume
            if position.type == stake.type and position.volume < stake.volume:
                stake.volume = position.volume

    def _fresh(self, identifier: int, read_at: int) -> bool:
        return self._touched.get(identifier, 0) <= read_at
