"""Order manager: fired intents become typed order requests with client ids and bracket prices.

Sizing: a number is a quantity; ``N PCT OF EQUITY|BALANCE`` sizes the notional at N % of the
account at the current price; ``N USD`` sizes a notional in dollars. ``BY N PCT`` puts a leg N % of
the entry price away (losing side for the stop, winning side for the target), ``BY x`` a price
distance, ``AT x`` an absolute price. Quantities from notionals are rounded down to 1e-8.

An order is whole or not at all: when its size, its price or a declared bracket leg has no usable
value (null, not finite, not positive, beyond :mod:`qkt.limits`, or a level on the wrong side of the
entry), no request is made and the reason says which, ending ``: order not sent``. Every number is
judged before any arithmetic on it, so no decimal exception can escape.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal

from qkt.engine.clock import SimulatedClock, WallClock
from qkt.engine.events import OrderRequest
from qkt.engine.intents import CloseIntent, OrderIntent, StreamState
from qkt.engine.positions import PositionBook
from qkt.engine.prices import PriceTracker
from qkt.limits import (
    MAX_NOTIONAL,
    MAX_PERCENT,
    MAX_PRICE,
    MAX_QUANTITY,
    MIN_QUANTITY,
    amount,
    shown,
)

__all__ = ["MAX_PRICE", "MAX_QUANTITY", "OrderManager", "bracket_prices", "bracket_problem"]

QTY_STEP = MIN_QUANTITY
HUNDRED = Decimal(100)
NOT_SENT = ": order not sent"
_BASES = {"pct_equity": "EQUITY", "pct_balance": "BALANCE"}


class OrderManager:
    def __init__(
        self,
        strategy: str,
        prices: PriceTracker,
        positions: PositionBook,
        clock: WallClock | SimulatedClock,
        account: Callable[[str], Decimal],
        id_prefix: str | None = None,
        id_source: Callable[[], str] | None = None,
    ) -> None:
        self.strategy = strategy
        self.prices = prices
        self.positions = positions
        self.clock = clock
        self.account = account
        self.prefix = id_prefix or strategy
        self.sequence = 0
        self.id_source = id_source

    def next_id(self) -> str:
        """The next client id: from ``id_source`` when given (the daemon's journal, which never
        issues an id twice), else ``<prefix>-<000001>`` counted here."""
        self.sequence += 1
        if self.id_source is not None:
            return self.id_source()
        return f"{self.prefix}-{self.sequence:06d}"

    def order(self, intent: OrderIntent, stream: StreamState) -> OrderRequest | str:
        """A request, or the reason none can be made (no usable price, size or bracket leg)."""
        if intent.problem is not None:
            return intent.problem + NOT_SENT
        entry = self.prices.quote(stream.label, stream.symbol, intent.side)
        if entry is None:
            return f"no price yet for {stream.label}:{stream.symbol}{NOT_SENT}"
        if not (entry.is_finite() and 0 < entry <= MAX_PRICE):
            return f"no usable price for {stream.label}:{stream.symbol} ({shown(entry)}){NOT_SENT}"
        qty = self._quantity(intent, entry)
        if isinstance(qty, str):
            return qty + NOT_SENT
        problem = bracket_problem(intent.side, entry, intent.stop_loss, intent.take_profit)
        if problem is not None:
            return problem + NOT_SENT
        stop, take = bracket_prices(intent.side, entry, intent.stop_loss, intent.take_profit)
        return OrderRequest(
            self.next_id(),
            self.strategy,
            stream.alias,
            stream.label,
            stream.symbol,
            "buy" if intent.side == "buy" else "sell",
            qty,
            self.clock.now(),
            stop,
            take,
            stop_rule=intent.stop_loss,
            take_rule=intent.take_profit,
            notional=None if intent.sizing_kind == "qty" else qty * entry,
        )

    def close(self, intent: CloseIntent, streams: dict[str, StreamState]) -> list[OrderRequest]:
        chosen = [streams[intent.alias]] if intent.alias else list(streams.values())
        requests: list[OrderRequest] = []
        seen: set[tuple[str, str]] = set()
        for stream in chosen:
            key = (stream.label.lower(), stream.symbol)
            if key in seen:
                continue
            seen.add(key)
            qty = self.positions.get(stream.label, stream.symbol).qty
            if qty == 0:
                continue
            requests.append(
                OrderRequest(
                    self.next_id(),
                    self.strategy,
                    stream.alias,
                    stream.label,
                    stream.symbol,
                    "sell" if qty > 0 else "buy",
                    abs(qty),
                    self.clock.now(),
                    reduce_only=True,
                )
            )
        return requests

    def _quantity(self, intent: OrderIntent, price: Decimal) -> Decimal | str:
        """The order's quantity at ``price`` (finite, positive, at most MAX_PRICE), or why not."""
        value, kind = intent.sizing_value, intent.sizing_kind
        if value is None:
            return "SIZING has no value"
        if kind == "qty":
            if not value.is_finite():
                return f"order size {shown(value)} is not a finite number"
            if value <= 0:
                return f"order size is not positive (qty {shown(value)})"
            if value < MIN_QUANTITY:
                return (
                    f"order size {shown(value)} is below the smallest order size, "
                    f"{shown(MIN_QUANTITY)}"
                )
            return _bounded(value)
        written = f"SIZING {shown(value)} " + (
            "USD" if kind == "usd" else f"PCT OF {_BASES.get(kind, 'EQUITY')}"
        )
        if not value.is_finite():
            return f"{written} is not a finite number"
        if value <= 0:
            return f"order size is not positive ({kind} {shown(value)})"
        if kind == "usd":
            if value > MAX_NOTIONAL:
                return f"{written} is above the largest notional, {amount(MAX_NOTIONAL)} USD"
            notional = value
        else:
            if value > MAX_PERCENT:
                return f"{written} is above {amount(MAX_PERCENT)} percent"
            field = "equity" if kind == "pct_equity" else "balance"
            base = self.account(field)
            if not base.is_finite() or base <= 0:
                return f"cannot size {written.removeprefix('SIZING ')}: {field} is {shown(base)}"
            notional = base * value / HUNDRED
        raw = notional / price
        if raw > MAX_QUANTITY:
            return _too_large(raw)
        qty = raw.quantize(QTY_STEP, rounding=ROUND_DOWN)
        if qty <= 0:
            return f"order size is not positive ({kind} {shown(value)})"
        return qty


def _bounded(qty: Decimal) -> Decimal | str:
    return _too_large(qty) if qty > MAX_QUANTITY else qty


def _too_large(qty: Decimal) -> str:
    return f"order size {shown(qty)} is above the largest order size, {amount(MAX_QUANTITY)}"


def bracket_prices(
    side: str,
    entry: Decimal,
    stop: tuple[str, Decimal] | None,
    take: tuple[str, Decimal] | None,
) -> tuple[Decimal | None, Decimal | None]:
    """The stop-loss and take-profit prices of an order entering at ``entry``."""
    sign = Decimal(1) if side == "buy" else Decimal(-1)
    return _leg(stop, entry, -sign), _leg(take, entry, sign)


def _leg(leg: tuple[str, Decimal] | None, entry: Decimal, direction: Decimal) -> Decimal | None:
    """``direction`` is +1 for a level above the entry, -1 below."""
    if leg is None:
        return None
    mode, value = leg
    if mode == "at":
        return value
    distance = entry * value / HUNDRED if mode == "by_pct" else value
    return entry + direction * distance


def bracket_problem(
    side: str,
    entry: Decimal,
    stop: tuple[str, Decimal] | None,
    take: tuple[str, Decimal] | None,
) -> str | None:
    """Why the legs of an order entering at ``entry`` (finite, positive) cannot go out, or None.

    A leg's value must be finite, positive and within bounds; its level must be a positive price
    on its side of the entry: a buy's stop below it and target above, a sell's the other way."""
    for kind, leg in (("STOP_LOSS", stop), ("TAKE_PROFIT", take)):
        if leg is None:
            continue
        mode, value = leg
        written = f"{kind} at {shown(value)}" if mode == "at" else f"{kind} BY {shown(value)}"
        written += " PCT" if mode == "by_pct" else ""
        if not value.is_finite():
            return f"{written} is not a finite number"
        if value <= 0:
            what = {"at": "price", "by": "distance", "by_pct": "percent"}.get(mode, "value")
            return f"{written} is not a positive {what}"
        if mode == "by_pct" and kind == "TAKE_PROFIT" and value > MAX_PERCENT:
            return f"{written} is above {amount(MAX_PERCENT)} percent"
        if mode != "by_pct" and value > MAX_PRICE:
            return f"{written} is above the largest price, {amount(MAX_PRICE)}"
    levels = bracket_prices(side, entry, stop, take)
    for kind, leg, level in (("STOP_LOSS", stop, levels[0]), ("TAKE_PROFIT", take, levels[1])):
        if leg is None or level is None:
            continue
        mode, value = leg
        if mode != "at":
            written = f"{kind} BY {shown(value)}" + (" PCT" if mode == "by_pct" else "")
            if level <= 0:
                return f"{written} would be at {shown(level)}, not a positive price"
            if level > MAX_PRICE:
                return f"{written} would be at {shown(level)}, above the largest price"
            continue
        below = (side == "buy") == (kind == "STOP_LOSS")
        if (level >= entry) if below else (level <= entry):
            where = "below" if below else "above"
            return (
                f"{kind} at {shown(level)} is not {where} the entry price {shown(entry)} "
                f"of a {side}"
            )
    return None
