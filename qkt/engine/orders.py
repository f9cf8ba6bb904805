"""Order manager: fired intents become typed order requests with client ids and bracket prices.

Sizing: a number is a quantity; ``N PCT OF EQUITY|BALANCE`` sizes the notional at N % of the
account at the current price; ``N USD`` sizes a notional in dollars. ``BY N PCT`` puts a leg N % of
the entry price away (losing side for the stop, winning side for the target), ``BY x`` a price
distance, ``AT x`` an absolute price. Quantities from notionals are rounded down to 1e-8.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal

from qkt.engine.clock import SimulatedClock, WallClock
from qkt.engine.events import OrderRequest
from qkt.engine.intents import CloseIntent, OrderIntent, StreamState
from qkt.engine.positions import PositionBook
from qkt.engine.prices import PriceTracker

QTY_STEP = Decimal("0.00000001")
HUNDRED = Decimal(100)


class OrderManager:
    def __init__(
        self,
        strategy: str,
        prices: PriceTracker,
        positions: PositionBook,
        clock: WallClock | SimulatedClock,
        account: Callable[[str], Decimal],
        id_prefix: str | None = None,
    ) -> None:
        self.strategy = strategy
        self.prices = prices
        self.positions = positions
        self.clock = clock
        self.account = account
        self.prefix = id_prefix or strategy
        self.sequence = 0

    def next_id(self) -> str:
        self.sequence += 1
        return f"{self.prefix}-{self.sequence:06d}"

    def order(self, intent: OrderIntent, stream: StreamState) -> OrderRequest | str:
        """A request, or the reason none can be made (no price yet, a zero size)."""
        entry = self.prices.quote(stream.label, stream.symbol, intent.side)
        if entry is None:
            return f"no price yet for {stream.label}:{stream.symbol}"
        qty = self._quantity(intent, entry)
        if qty is None or qty <= 0:
            return f"order size is not positive ({intent.sizing_kind} {intent.sizing_value})"
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

    def _quantity(self, intent: OrderIntent, price: Decimal) -> Decimal | None:
        value = intent.sizing_value
        if value is None:
            return None
        if intent.sizing_kind == "qty":
            return value
        if intent.sizing_kind == "usd":
            notional = value
        else:
            base = self.account("equity" if intent.sizing_kind == "pct_equity" else "balance")
            notional = base * value / HUNDRED
        return (notional / price).quantize(QTY_STEP, rounding=ROUND_DOWN)


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
