"""The venue tickets one MT5 profile holds, kept in step with its own fills and the venue's word.

The poller reports only what the venue did on its own (a stop, a take-profit, a close by hand), so
the book must already know what the broker's own orders did: an order that closes a position has
told the session by its fill, and the ticket it closed must not come back as a venue-side exit.
Every change of ours is stamped with a moment; a snapshot of the venue read before that moment
must not undo it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from qkt.brokers.mt5.client import Position
from qkt.brokers.tags import session_of


@dataclass
class Changes:
    """What a snapshot of the venue shows that the book did not expect."""

    vanished: list[Position] = field(default_factory=list)  # closed at the venue
    shrunk: list[tuple[Position, Position]] = field(default_factory=list)  # (held, now): in part


class TicketBook:
    def __init__(self, magic: int) -> None:
        self.magic = magic
        self.hedging = False  # every order a position of its own (margin_mode 2)
        self.owner_tag: str | None = None  # the session's tag; None: every position is ours
        self.tickets: dict[int, Position] = {}
        self._owners: dict[int, str] = {}  # ticket -> client id of the order that opened it
        self._touched: dict[int, int] = {}  # ticket -> moment of our last change
        self.moment = 0

    # ------------------------------------------------------------ reading
    def ours(self, position: Position) -> bool:
        """Whether a position of the venue was opened by this book's session."""
        return self.owner_tag is None or session_of(position.comment) == self.owner_tag

    def owner(self, ticket: int, default: str) -> str:
        return self._owners.get(ticket) or default

    def held(self, symbol: str) -> Position | None:
        """The symbol's position on a netting account (hedging: None, each order stands alone)."""
        if self.hedging:
            return None
        return next((p for p in self.tickets.values() if p.symbol == symbol), None)

    def against(self, symbol: str, side: int) -> list[Position]:
        """Open positions of ``symbol`` on the other side, oldest first."""
        found = (p for p in self.tickets.values() if p.symbol == symbol and p.type != side)
        return sorted(found, key=lambda p: p.ticket)

    def of(self, symbol: str) -> list[Position]:
        return [p for p in self.tickets.values() if p.symbol == symbol]

    # ------------------------------------------------------------ our own fills
    def adopt(self, position: Position, owner: str | None = None) -> None:
        """A position found at the venue that is ours (recovered at start, or an order of
        unknown outcome found)."""
        self.tickets.setdefault(position.ticket, position)
        if owner:
            self._owners.setdefault(position.ticket, owner)

    def track(
        self,
        symbol: str,
        side: int,
        owner: str,
        tag: str,
        ticket: int,
        price: Decimal | None,
        qty: Decimal,
    ) -> None:
        """A fill of ours: into the symbol's position (netting), against it (reduces, closes, or
        reverses through flat), or a new position whose ticket is the order's."""
        held = self.held(symbol)
        if held is not None and held.type == side:
            held.volume += qty
            self._touch(held.ticket)
            return
        if held is not None:
            rest = qty - held.volume  # reversed through flat when positive: a new position
            self.took(held, qty)
            if rest <= 0:
                return
            qty = rest
        if not ticket or not qty:
            return
        self._owners[ticket] = owner
        self._touch(ticket)
        self.tickets[ticket] = Position(
            ticket=ticket,
            symbol=symbol,
            type=side,
            volume=qty,
            price_open=price or Decimal(0),
            magic=self.magic,
            comment=tag,
            time_msc=int(datetime.now(UTC).timestamp() * 1000),
        )

    def took(self, position: Position, take: Decimal) -> None:
        """``take`` came off ``position`` by an order of ours."""
        if take >= position.volume:
            self.forget(position.ticket)
        else:
            position.volume -= take
            self._touch(position.ticket)

    def forget(self, ticket: int) -> None:
        """A position that is closed: tickets are never reused."""
        self.tickets.pop(ticket, None)
        self._owners.pop(ticket, None)
        self._touch(ticket)

    def _touch(self, ticket: int) -> None:
        self.moment += 1
        self._touched[ticket] = self.moment

    # ------------------------------------------------------------ the venue's word
    def changes(self, current: dict[int, Position], read_at: int) -> Changes:
        """Compare a snapshot read at moment ``read_at`` with the book."""
        found = Changes()
        for ticket, position in self.tickets.items():
            if not self._fresh(ticket, read_at):
                continue  # changed by us since the snapshot was read: the next one tells
            now = current.get(ticket)
            if now is None:
                found.vanished.append(position)
            elif now.type == position.type and now.volume < position.volume:
                found.shrunk.append((position, now))
        return found

    def refresh(self, current: dict[int, Position], read_at: int, keep: set[int]) -> None:
        """Take the snapshot's volumes and prices, except for tickets we changed since it was
        read (a closed one must not come back) and those in ``keep``; a ticket the book does
        not hold is taken only if its session's tag is ours (never another session's)."""
        for ticket, position in current.items():
            if ticket in keep or not self._fresh(ticket, read_at):
                continue
            if ticket in self.tickets or self.ours(position):
                self.tickets[ticket] = position

    def _fresh(self, ticket: int, read_at: int) -> bool:
        return self._touched.get(ticket, 0) <= read_at
