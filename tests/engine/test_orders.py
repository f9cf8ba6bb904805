"""Order manager: every sizing form, bracket legs against the entry price, client ids, CLOSE."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from qkt.engine.clock import SimulatedClock
from qkt.engine.intents import CloseIntent, OrderIntent, StreamState
from qkt.engine.orders import OrderManager
from qkt.engine.positions import PositionBook
from qkt.engine.prices import PriceTracker

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STREAM = StreamState("gold", "EXNESS", "XAUUSD", 60)


def manager() -> tuple[OrderManager, PositionBook]:
    prices = PriceTracker()
    prices.update("EXNESS", "XAUUSD", 2000.0, bid=1999.5, ask=2000.5)
    book = PositionBook()
    accounts = {"equity": Decimal(10000), "balance": Decimal(8000)}
    return OrderManager("s", prices, book, SimulatedClock(T0), accounts.__getitem__), book


def intent(
    side: str,
    kind: str,
    value: str,
    sl: tuple[str, str] | None = None,
    tp: tuple[str, str] | None = None,
) -> OrderIntent:
    return OrderIntent(
        "gold",
        side,
        kind,
        Decimal(value),
        None if sl is None else (sl[0], Decimal(sl[1])),
        None if tp is None else (tp[0], Decimal(tp[1])),
        1,
    )


def test_sizing_forms() -> None:
    om, _ = manager()
    qty = [
        om.order(intent("buy", k, v), STREAM).qty
        for k, v in [("qty", "0.3"), ("pct_equity", "2"), ("pct_balance", "2"), ("usd", "1000")]  # type: ignore[union-attr]
    ]
    # notionals at the ask 2000.5: 200 / 2000.5, 160 / 2000.5, 1000 / 2000.5, rounded down to 1e-8
    assert qty == [
        Decimal("0.3"),
        Decimal("0.09997500"),
        Decimal("0.07998000"),
        Decimal("0.49987503"),
    ]


def test_bracket_legs_are_resolved_against_the_entry() -> None:
    om, _ = manager()
    buy = om.order(intent("buy", "qty", "1", ("by_pct", "1"), ("by", "30")), STREAM)
    sell = om.order(intent("sell", "qty", "1", ("by", "10"), ("at", "1950")), STREAM)
    assert (buy.stop_loss, buy.take_profit) == (Decimal("1980.495"), Decimal("2030.5"))  # type: ignore[union-attr]
    assert (sell.stop_loss, sell.take_profit) == (Decimal("2009.5"), Decimal("1950"))  # type: ignore[union-attr]
    assert [buy.client_id, sell.client_id] == ["s-000001", "s-000002"]  # type: ignore[union-attr]


def test_zero_size_and_no_price_are_reasons_not_orders() -> None:
    om, _ = manager()
    assert "not positive" in om.order(intent("buy", "qty", "0"), STREAM)  # type: ignore[operator]
    other = StreamState("x", "EXNESS", "EURUSD", 60)
    assert "no price yet" in om.order(intent("buy", "qty", "1"), other)  # type: ignore[operator]


def test_close_flattens_what_is_held() -> None:
    om, book = manager()
    assert om.close(CloseIntent("gold", 1), {"gold": STREAM}) == []
    book.get("EXNESS", "XAUUSD").apply("sell", Decimal("0.7"), Decimal(2000))
    (request,) = om.close(CloseIntent(None, 1), {"gold": STREAM})
    assert (request.side, request.qty, request.reduce_only) == ("buy", Decimal("0.7"), True)
