"""The ticket book: in step with our own fills, and never undone by an older venue snapshot."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from qkt.brokers.mt5.book import TicketBook
from qkt.brokers.mt5.client import Position

BUY, SELL = 0, 1


def venue(ticket: int, side: int, volume: str) -> Position:
    return Position(
        ticket=ticket, symbol="EURUSDm", type=side, volume=Decimal(volume), price_open=Decimal(1)
    )


def test_netting_fills_add_reduce_and_reverse_one_position() -> None:
    book = TicketBook(magic=1)
    book.track("EURUSDm", BUY, "a-1", "tag1", 101, Decimal(1), Decimal("0.3"))
    book.track("EURUSDm", BUY, "a-2", "tag2", 102, Decimal(1), Decimal("0.2"))
    assert [(p.ticket, p.volume) for p in book.tickets.values()] == [(101, Decimal("0.5"))]
    book.track("EURUSDm", SELL, "a-3", "tag3", 103, Decimal(1), Decimal("0.7"))  # through flat
    assert [(p.ticket, p.type, p.volume) for p in book.tickets.values()] == [
        (103, SELL, Decimal("0.2"))
    ]
    assert book.owner(103, "?") == "a-3" and book.owner(101, "?") == "?"


def test_hedging_fills_each_open_a_ticket() -> None:
    book = TicketBook(magic=1)
    book.hedging = True
    book.track("EURUSDm", BUY, "a-1", "t", 101, Decimal(1), Decimal("0.3"))
    book.track("EURUSDm", BUY, "a-2", "t", 102, Decimal(1), Decimal("0.2"))
    assert [p.ticket for p in book.against("EURUSDm", SELL)] == [101, 102]
    assert book.against("EURUSDm", BUY) == []


def test_a_snapshot_read_before_our_change_does_not_undo_it() -> None:
    book = TicketBook(magic=1)
    book.adopt(venue(7, BUY, "0.5"))
    read_at = book.moment  # a poll starts reading the venue ...
    book.took(book.tickets[7], Decimal("0.5"))  # ... while an order of ours closes ticket 7
    stale = {7: venue(7, BUY, "0.5")}
    changes = book.changes(stale, read_at)
    assert changes.vanished == [] and changes.shrunk == []
    book.refresh(stale, read_at, keep=set())
    assert book.tickets == {}  # not brought back
    assert book.changes({}, book.moment).vanished == []  # and never reported as a venue exit


def test_a_snapshot_tells_what_the_venue_did_on_its_own() -> None:
    book = TicketBook(magic=1)
    book.adopt(venue(7, BUY, "0.5"))
    book.adopt(venue(8, BUY, "0.3"))
    read_at = book.moment
    changes = book.changes({7: venue(7, BUY, "0.2")}, read_at)
    assert [p.ticket for p in changes.vanished] == [8]  # closed at the venue
    assert [(held.volume, now.volume) for held, now in changes.shrunk] == [
        (Decimal("0.5"), Decimal("0.2"))
    ]
    book.refresh({7: venue(7, BUY, "0.2")}, read_at, keep={7})  # its exit was unreadable
    assert book.tickets[7].volume == Decimal("0.5")  # the next poll looks again


@given(st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 50)), max_size=30))
def test_netting_book_holds_the_net_of_our_fills(fills: list[tuple[int, int]]) -> None:
    book = TicketBook(magic=1)
    net = Decimal(0)
    for n, (side, lots) in enumerate(fills, start=1):
        qty = Decimal(lots) / 100
        book.track("EURUSDm", side, f"a-{n}", "t", 100 + n, Decimal(1), qty)
        net += qty if side == BUY else -qty
    held = list(book.tickets.values())
    assert len(held) == (1 if net else 0)
    if held:
        (position,) = held
        assert position.volume == abs(net) and position.type == (BUY if net > 0 else SELL)
