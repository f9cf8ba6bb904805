"""What Bybit accepts, checked before anything is sent (pure: tested without a network).

Quantities against ``instruments-info`` (``reference/bybit-v5.md``): linear on the ``qtyStep`` grid,
at least ``minOrderQty``, at most ``maxMktOrderQty``, worth at least ``minNotionalValue``; spot
market orders in the base coin (``marketUnit: baseCoin``) on the ``basePrecision`` grid, worth at
least ``minOrderAmt``, at most ``maxMarketOrderQty``. Nothing is rounded silently, except an order
sized in money, which is rounded down to the grid (never up). Stops are placed from the venue's
quote at send time, on the ``tickSize`` grid, on the right side of the expected fill.

The start-up guard: a key that is valid, not read-only, not expired and may trade the profile's
category; a unified account; one-way position mode for linear.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from qkt.brokers.bybit.models import ApiKeyInfo, Instrument, Position
from qkt.diagnostics import Diagnostic, error
from qkt.engine.events import OrderRequest
from qkt.engine.orders import bracket_prices

TRADE_PERMISSIONS = {"linear": ("ContractTrade", "Order"), "spot": ("Spot", "SpotTrade")}


def _limits(category: str, inst: Instrument) -> tuple[Decimal, Decimal, Decimal | None, Decimal]:
    """(step, minimum quantity, maximum quantity, minimum value) of a market order."""
    lot = inst.lot_size_filter
    if category == "spot":
        step = lot.base_precision or Decimal("0.00000001")
        return step, step, lot.max_market_order_qty, lot.min_order_amt or Decimal(0)
    step = lot.qty_step or Decimal("0.001")
    return (
        step,
        lot.min_order_qty or step,
        lot.max_mkt_order_qty,
        lot.min_notional_value or Decimal(0),
    )


def qty_problem(category: str, qty: Decimal, price: Decimal, inst: Instrument) -> str | None:
    """Why ``qty`` at ``price`` is no market order Bybit takes, or None."""
    step, least, most, value = _limits(category, inst)
    if qty <= 0:
        return f"quantity {qty} is not a positive number"
    if qty % step:
        return f"quantity {qty} is not a multiple of the step {step:f}"
    if qty < least:
        return f"quantity {qty} is below the minimum {least:f}"
    if most is not None and qty > most:
        return f"quantity {qty} is above the maximum {most:f} of a market order"
    if value and qty * price < value:
        return f"quantity {qty} at {price} is worth {qty * price:f}, below the minimum {value:f}"
    return None


def qty_of_notional(
    category: str, notional: Decimal, price: Decimal, inst: Instrument
) -> tuple[Decimal, str | None]:
    """An order sized in money as a quantity at ``price``, rounded down to the step."""
    step, least, _, _ = _limits(category, inst)
    qty = (notional / price / step).to_integral_value(ROUND_DOWN) * step
    if qty < least or qty <= 0:
        return qty, (
            f"a notional of {notional:.2f} buys {notional / price:.8f} at {price}, below the "
            f"minimum quantity {least:f}"
        )
    return qty, None


def to_tick(price: Decimal | None, tick: Decimal) -> Decimal | None:
    if price is None or tick <= 0:
        return price
    return (price / tick).to_integral_value(ROUND_HALF_EVEN) * tick


def wire_stops(
    request: OrderRequest, entry: Decimal, inst: Instrument, last: Decimal | None = None
) -> tuple[OrderRequest, str | None]:
    """The order with its stops at the strategy's distance from ``entry`` (the venue's quote at
    send time), on the tick grid, or why they cannot be: each on its side of the fill, and — for a
    native linear bracket, which Bybit checks against its last trade — of ``last`` too."""
    sl, tp = request.stop_loss, request.take_profit
    if request.stop_rule is not None or request.take_rule is not None:
        moved = bracket_prices(request.side, entry, request.stop_rule, request.take_rule)
        sl = moved[0] if request.stop_rule is not None else sl
        tp = moved[1] if request.take_rule is not None else tp
    tick = inst.price_filter.tick_size
    wired = replace(request, stop_loss=to_tick(sl, tick), take_profit=to_tick(tp, tick))
    fill = "ask" if request.side == "buy" else "bid"
    references = [(entry, f"the expected fill {entry} ({fill})")]
    if last is not None:
        references.append((last, f"Bybit's last price {last}"))
    for name, level, below in (
        ("stop-loss", wired.stop_loss, request.side == "buy"),
        ("take-profit", wired.take_profit, request.side != "buy"),
    ):
        if level is None:
            continue
        for price, what in references:
            if level <= 0 or (level >= price if below else level <= price):
                return wired, f"{name} {level} is not {'below' if below else 'above'} {what}"
    return wired, None


def guard_problems(
    profile: str,
    url: str,
    category: str,
    key: ApiKeyInfo,
    positions: list[Position],
    now: datetime | None = None,
) -> list[Diagnostic]:
    """Why the profile must not trade with this key and account (SPEC §7: refused at start)."""
    found: list[Diagnostic] = []
    where = f"profile `{profile}` ({url})"
    if key.read_only:
        found.append(error("venue-refused", f"{where}: the API key is read-only"))
    wanted = TRADE_PERMISSIONS[category]
    granted = key.permissions.get(wanted[0], [])
    if not any(p in granted for p in wanted[1:]):
        found.append(
            error(
                "venue-refused",
                f"{where}: the API key may not trade {category} "
                f"(permission {wanted[0]}: {', '.join(granted) or 'none'})",
            )
        )
    moment = now or datetime.now(UTC)
    if key.expired_at is not None and key.expired_at <= moment:
        found.append(error("venue-refused", f"{where}: the API key expired at {key.expired_at}"))
    if not (key.uta or key.unified):
        found.append(
            error("venue-refused", f"{where}: the account is not a Unified Trading Account")
        )
    hedged = sorted({p.symbol for p in positions if p.position_idx != 0})
    if category == "linear" and hedged:
        found.append(
            error(
                "venue-refused",
                f"{where}: {', '.join(hedged)} in hedge mode; qkt trades one-way mode only",
                hint="switch the symbols to one-way mode (Bybit: position mode)",
            )
        )
    return found
