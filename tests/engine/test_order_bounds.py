"""Sizes and prices are judged before any arithmetic on them: a zero, non-finite or absurd price or
size is a reason not to send the order, never a decimal exception."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from qkt.engine.clock import SimulatedClock
from qkt.engine.intents import OrderIntent, StreamState
from qkt.engine.orders import MAX_PRICE, MAX_QUANTITY, OrderManager
from qkt.engine.positions import PositionBook
from qkt.engine.prices import PriceTracker

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STREAM = StreamState("gold", "EXNESS", "XAUUSD", 60)


def manager(price: float, equity: str = "10000") -> OrderManager:
    prices = PriceTracker()
    prices.update("EXNESS", "XAUUSD", price)
    account = {"equity": Decimal(equity), "balance": Decimal(equity)}
    return OrderManager("s", prices, PositionBook(), SimulatedClock(T0), account.__getitem__)


def intent(
    kind: str, value: str, stop: tuple[str, str] | None = None, side: str = "buy"
) -> OrderIntent:
    leg = None if stop is None else (stop[0], Decimal(stop[1]))
    return OrderIntent("gold", side, kind, Decimal(value), leg, None, 1)


@pytest.mark.parametrize("price", [0.0, -5.0, float("nan"), float("inf"), 1e13])
@pytest.mark.parametrize("kind", ["qty", "usd", "pct_equity"])
def test_an_unusable_price_is_a_reason(price: float, kind: str) -> None:
    made = manager(price).order(intent(kind, "1"), STREAM)
    assert isinstance(made, str)
    assert made.startswith("no usable price for EXNESS:XAUUSD"), made


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("qty", "NaN", "order size NaN is not a finite number"),
        ("qty", "Infinity", "order size Infinity is not a finite number"),
        ("qty", "-1", "order size is not positive (qty -1)"),
        ("qty", "2000000000", "order size 2000000000 is above the largest order size"),
        ("qty", "0.000000001", "order size 0.000000001 is below the smallest order size"),
        ("usd", "sNaN", "SIZING sNaN USD is not a finite number"),
        ("pct_equity", "Infinity", "SIZING Infinity PCT OF EQUITY is not a finite number"),
        # A notional in dollars at a price of a thousandth of a cent: far too many units.
        ("usd", "100000000000", "order size 10000000000000000 is above the largest order size"),
    ],
)
def test_an_unusable_size_is_a_reason(kind: str, value: str, reason: str) -> None:
    made = manager(0.00001).order(intent(kind, value), STREAM)
    assert isinstance(made, str)
    assert made.startswith(reason), made


def test_a_non_finite_account_cannot_size_an_order() -> None:
    made = manager(2000.0, equity="NaN").order(intent("pct_equity", "2"), STREAM)
    assert made == "cannot size 2 PCT OF EQUITY: equity is NaN: order not sent"


@pytest.mark.parametrize(
    ("stop", "reason"),
    [
        (("by_pct", "NaN"), "STOP_LOSS BY NaN PCT is not a finite number"),
        (("by", "Infinity"), "STOP_LOSS BY Infinity is not a finite number"),
        (("at", "1E+13"), "STOP_LOSS at 10000000000000 is above the largest price"),
        (("by_pct", "100"), "STOP_LOSS BY 100 PCT would be at 0, not a positive price"),
    ],
)
def test_an_unusable_leg_is_a_reason(stop: tuple[str, str], reason: str) -> None:
    made = manager(2000.0).order(intent("qty", "1", stop), STREAM)
    assert isinstance(made, str)
    assert made.startswith(reason), made


def test_limits_are_the_documented_ones() -> None:
    assert (Decimal("1e9"), Decimal("1e12")) == (MAX_QUANTITY, MAX_PRICE)
    made = manager(2000.0).order(intent("qty", "1000000000", ("by", "20")), STREAM)
    assert not isinstance(made, str)
    assert (made.qty, made.stop_loss) == (Decimal("1000000000"), Decimal("1980"))
