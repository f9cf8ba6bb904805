"""Net positions keyed by (label, symbol), with average price and realized/unrealized PnL.

Keyed by label and symbol — never symbol alone — so one strategy can hold EURUSD on two accounts.
Quantities are what the venue counts (lots on MT5); PnL is money: price moves times quantity times
the instrument's contract size (100,000 for a lot of EURUSD), which the fills say.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass
class Position:
    label: str
    symbol: str
    qty: Decimal = ZERO  # signed: negative when short
    avg_price: Decimal = ZERO
    realized: Decimal = ZERO
    contract_size: Decimal = ONE

    def unrealized(self, price: Decimal | None) -> Decimal:
        if price is None or self.qty == 0:
            return ZERO
        return (price - self.avg_price) * self.qty * self.contract_size

    def apply(
        self, side: str, qty: Decimal, price: Decimal, contract_size: Decimal = ONE
    ) -> Decimal:
        """Apply a fill of an instrument of ``contract_size``; returns the money it realized
        (closing or reducing the position)."""
        self.contract_size = contract_size
        signed = qty if side == "buy" else -qty
        realized = ZERO
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            total = self.qty + signed
            self.avg_price = (self.avg_price * abs(self.qty) + price * qty) / abs(total)
            self.qty = total
            return ZERO
        closing = min(abs(signed), abs(self.qty))
        direction = 1 if self.qty > 0 else -1
        realized = (price - self.avg_price) * closing * direction * contract_size
        self.realized += realized
        remainder = self.qty + signed
        if remainder == 0:
            self.avg_price = ZERO
        elif (remainder > 0) != (self.qty > 0):
            self.avg_price = price  # reversed through flat: the rest opens at this price
        self.qty = remainder
        return realized


class PositionBook:
    def __init__(self) -> None:
        self._positions: dict[tuple[str, str], Position] = {}

    def get(self, label: str, symbol: str) -> Position:
        key = (label.lower(), symbol)
        position = self._positions.get(key)
        if position is None:
            position = self._positions[key] = Position(label.lower(), symbol)
        return position

    def all(self) -> list[Position]:
        return list(self._positions.values())

    def realized(self) -> Decimal:
        return sum((p.realized for p in self._positions.values()), ZERO)
