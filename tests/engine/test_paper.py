"""The paper broker: market fills at bid/ask, bracket legs on later prices, gaps, one-cancels-other."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from qkt.brokers.paper import PaperBroker
from qkt.engine.bus import EventBus
from qkt.engine.clock import SimulatedClock
from qkt.engine.events import Bar, OrderFilled, OrderRejected, OrderRequest, Tick
from qkt.engine.prices import PriceTracker

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def setup(**kw: Any) -> tuple[PaperBroker, PriceTracker, list[Any]]:
    bus, prices, events = EventBus(), PriceTracker(), []
    bus.subscribe(OrderFilled, events.append)
    bus.subscribe(OrderRejected, events.append)
    return PaperBroker("paper", bus, SimulatedClock(T0), prices, **kw), prices, events


def order(side: str, qty: str, sl: str | None = None, tp: str | None = None) -> OrderRequest:
    return OrderRequest(
        "c-1",
        "s",
        "e",
        "PAPER",
        "EURUSD",
        side,
        Decimal(qty),
        T0,  # type: ignore[arg-type]
        None if sl is None else Decimal(sl),
        None if tp is None else Decimal(tp),
    )


def bar(o: float, h: float, lo: float, c: float) -> Bar:
    return Bar("EURUSD", T0, 60, o, h, lo, c)


def test_market_orders_fill_at_ask_and_bid_when_quoted() -> None:
    broker, prices, events = setup()
    prices.update("PAPER", "EURUSD", 1.1001, bid=1.1000, ask=1.1002)
    broker.submit(order("buy", "1"))
    broker.submit(order("sell", "1"))
    assert [(e.side, e.price) for e in events] == [
        ("buy", Decimal("1.1002")),
        ("sell", Decimal("1.1")),
    ]


def test_no_price_is_a_rejection() -> None:
    broker, _, events = setup()
    broker.submit(order("buy", "1"))
    assert isinstance(events[0], OrderRejected)


def test_stop_loss_then_nothing_else() -> None:
    broker, prices, events = setup()
    prices.update("PAPER", "EURUSD", 1.10)
    broker.submit(order("buy", "2", sl="1.09", tp="1.12"))
    broker.on_bar("PAPER", bar(1.10, 1.105, 1.095, 1.10))
    assert len(events) == 1
    broker.on_bar("PAPER", bar(1.10, 1.13, 1.08, 1.10))  # both legs in one bar: the stop first
    assert [(e.side, e.qty, e.price, e.reason) for e in events[1:]] == [
        ("sell", Decimal(2), Decimal("1.09"), "stop_loss")
    ]
    broker.on_bar("PAPER", bar(1.20, 1.21, 1.19, 1.20))
    assert len(events) == 2  # the take-profit was cancelled with the stop's fill


def test_take_profit_of_a_short_and_gap_fills() -> None:
    broker, prices, events = setup()
    prices.update("PAPER", "EURUSD", 1.10)
    broker.submit(order("sell", "1", sl="1.11", tp="1.08"))
    broker.on_bar("PAPER", bar(1.07, 1.075, 1.06, 1.07))  # opened through the target: its open
    assert (events[-1].side, events[-1].price, events[-1].reason) == (
        "buy",
        Decimal("1.07"),
        "take_profit",
    )


def test_ticks_trigger_legs_on_the_right_side() -> None:
    broker, prices, events = setup()
    prices.update("PAPER", "EURUSD", 1.10, bid=1.0999, ask=1.1001)
    broker.submit(order("buy", "1", sl="1.0990"))
    broker.on_tick("PAPER", Tick("EURUSD", T0, 1.0991, 1.0993))
    assert len(events) == 1
    broker.on_tick("PAPER", Tick("EURUSD", T0, 1.0990, 1.0992))
    assert events[-1].reason == "stop_loss"


def test_slippage_and_commission() -> None:
    broker, prices, events = setup(slippage_bps=Decimal(10), commission_bps=Decimal(5))
    prices.update("PAPER", "EURUSD", 100.0)
    broker.submit(order("buy", "2"))
    fill = events[0]
    assert fill.price == Decimal("100.100")
    assert fill.commission == Decimal("0.10010000")


def test_balance_and_equity() -> None:
    broker, prices, _ = setup(commission_bps=Decimal(10), starting_balance=Decimal(1000))
    prices.update("PAPER", "EURUSD", 100.0)
    broker.submit(order("buy", "2"))
    prices.update("PAPER", "EURUSD", 110.0)
    assert broker.balance() == Decimal("999.80000000")
    assert broker.equity() == Decimal("1019.80000000")
    broker.submit(order("sell", "2"))
    assert broker.balance() == Decimal("1019.58000000")
    assert broker.equity() == broker.balance()
