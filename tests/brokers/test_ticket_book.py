"""The ticket book: positions by identifier, in step with our own fills, never undone by an older
venue snapshot, and never taking another's volume for ours."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from qkt.brokers.mt5.book import TicketBook
from qkt.brokers.mt5.client import Position

BUY, SELL = 0, 1
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def venue(ticket: int, side: int, volume: str, identifier: int = 0, comment: str = "") -> Position:
    return Position(
        ticket=ticket,
        identifier=identifier,
        symbol="EURUSDm",
        type=side,
        volume=Decimal(volume),
        price_open=Decimal(1),
        comment=comment,
    )


def stakes(book: TicketBook) -> list[tuple[int, int, int, Decimal]]:
    return [(s.identifier, s.ticket, s.type, s.volume) for s in book.stakes.values()]


def test_a_position_without_identifier_is_read_with_its_ticket() -> None:
    assert venue(42, BUY, "0.1").identifier == 42
    assert venue(43, BUY, "0.1", identifier=7).identifier == 7


def test_netting_fills_add_reduce_and_reverse_one_position_keeping_its_identifier() -> None:
    book = TicketBook(magic=1)
    book.track("EURUSDm", BUY, "a-1", "tag1", 101, Decimal(1), Decimal("0.3"))
    book.track("EURUSDm", BUY, "a-2", "tag2", 102, Decimal(1), Decimal("0.2"))
    assert stakes(book) == [(101, 101, BUY, Decimal("0.5"))]
    book.track("EURUSDm", SELL, "a-3", "tag3", 103, Decimal(1), Decimal("0.7"))  # through flat
    # MT5 netting: the reversed position keeps its identifier and takes the order's ticket
    assert stakes(book) == [(101, 103, SELL, Decimal("0.2"))]
    assert book.owner(101, "?") == "a-3"


def test_hedging_fills_each_open_a_position() -> None:
    book = TicketBook(magic=1)
    book.hedging = True
    book.track("EURUSDm", BUY, "a-1", "t", 101, Decimal(1), Decimal("0.3"), 101)
    book.track("EURUSDm", BUY, "a-2", "t", 102, Decimal(1), Decimal("0.2"), 102)
    assert [s.ticket for s in book.against("EURUSDm", SELL)] == [101, 102]
    assert book.against("EURUSDm", BUY) == []


def test_a_snapshot_read_before_our_change_does_not_undo_it() -> None:
    book = TicketBook(magic=1)
    book.adopt(venue(7, BUY, "0.5"), NOW)
    read_at = book.moment  # a poll starts reading the venue ...
    book.took(book.stakes[7], Decimal("0.5"))  # ... while an order of ours closes position 7
    stale = {7: venue(7, BUY, "0.5")}
    assert book.changes(stale, read_at).closed == []
    book.refresh(stale, read_at, keep=set())
    assert book.stakes == {}  # not brought back
    assert book.changes({}, book.moment).closed == []  # and never reported as a venue exit


def test_a_snapshot_tells_what_the_venue_did_on_its_own() -> None:
    book = TicketBook(magic=1)
    book.adopt(venue(7, BUY, "0.5"), NOW)
    book.adopt(venue(8, BUY, "0.3"), NOW)
    book.adopt(venue(9, BUY, "0.1"), NOW)
    read_at = book.moment
    now = {7: venue(7, BUY, "0.2"), 9: venue(9, SELL, "0.4")}
    changes = book.changes(now, read_at)
    assert [(s.identifier, lost) for s, lost in changes.closed] == [
        (7, Decimal("0.3")),  # part of it closed at the venue
        (8, Decimal("0.3")),  # closed at the venue
        (9, Decimal("0.1")),  # reversed by someone else: ours is closed
    ]
    book.refresh(now, read_at, keep={7})  # its exit was unreadable
    assert book.stakes[7].volume == Decimal("0.5")  # the next poll looks again


def test_a_reversal_at_the_venue_is_followed_by_identifier_not_taken_for_a_new_position() -> None:
    book = TicketBook(magic=1)
    book.track("EURUSDm", SELL, "a-1", "t1", 50, Decimal(1), Decimal("0.1"), 50)
    book.track("EURUSDm", BUY, "a-2", "t2", 61, Decimal(1), Decimal("0.3"))  # reverses: long 0.2
    read_at = book.moment
    now = {50: venue(61, BUY, "0.2", identifier=50)}
    assert book.changes(now, read_at).closed == []
    book.refresh(now, read_at, keep=set())
    assert stakes(book) == [(50, 61, BUY, Decimal("0.2"))]


def test_our_volume_in_a_position_someone_else_opened_is_only_ours() -> None:
    """Netting: a buy of 0.1 into a hand trade's 0.5 long: the session owns 0.1 of it; the hand
    closing 0.3 takes nothing of ours, closing everything takes our 0.1."""
    book = TicketBook(magic=1)
    book.owner_tag = "sessn"
    book.track("EURUSDm", BUY, "a-1", "sessn-0000000001", 77, Decimal(1), Decimal("0.1"))
    (stake,) = book.stakes.values()
    assert stake.provisional  # where the fill went is not known yet
    hand = venue(40, BUY, "0.6", identifier=40, comment="by hand")
    changes = book.changes({40: hand}, book.moment)
    assert changes.unplaced == [stake] and changes.closed == []
    book.rehome(stake, 40, 40)
    book.refresh({40: hand}, book.moment, keep=set())
    assert stakes(book) == [(40, 40, BUY, Decimal("0.1"))]
    assert book.changes({40: venue(40, BUY, "0.3", 40, "by hand")}, book.moment).closed == []
    closed = book.changes({}, book.moment).closed
    assert [(s.identifier, lost) for s, lost in closed] == [(40, Decimal("0.1"))]


def test_positions_of_another_session_are_never_adopted() -> None:
    book = TicketBook(magic=1)
    book.owner_tag = "mine1"
    theirs = venue(5, BUY, "0.2", comment="other-0000000001")
    ours = venue(6, BUY, "0.2", comment="mine1-0000000001")
    book.refresh({5: theirs, 6: ours}, book.moment, keep=set())
    assert list(book.stakes) == [6]


@given(st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 50)), max_size=30))
def test_netting_book_holds_the_net_of_our_fills(fills: list[tuple[int, int]]) -> None:
    book = TicketBook(magic=1)
    net = Decimal(0)
    for n, (side, lots) in enumerate(fills, start=1):
        qty = Decimal(lots) / 100
        book.track("EURUSDm", side, f"a-{n}", "t", 100 + n, Decimal(1), qty)
        net += qty if side == BUY else -qty
    held = list(book.stakes.values())
    assert len(held) == (1 if net else 0)
    if held:
        (stake,) = held
        assert stake.volume == abs(net) and stake.type == (BUY if net > 0 else SELL)
