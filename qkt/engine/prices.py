"""The last known price, bid and ask of every (label, symbol)."""

from __future__ import annotations

from decimal import Decimal


class PriceTracker:
    def __init__(self) -> None:
        self._last: dict[tuple[str, str], float] = {}
        self._bid: dict[tuple[str, str], float] = {}
        self._ask: dict[tuple[str, str], float] = {}

    def update(
        self,
        label: str,
        symbol: str,
        last: float,
        bid: float | None = None,
        ask: float | None = None,
    ) -> None:
        key = (label.lower(), symbol)
        self._last[key] = last
        if bid is not None and ask is not None:
            self._bid[key] = bid
            self._ask[key] = ask

    def last_float(self, label: str, symbol: str) -> float | None:
        return self._last.get((label.lower(), symbol))

    def last(self, label: str, symbol: str) -> Decimal | None:
        value = self._last.get((label.lower(), symbol))
        return None if value is None else to_decimal(value)

    def quote(self, label: str, symbol: str, side: str) -> Decimal | None:
        """The price a market order of ``side`` fills at: ask for buys, bid for sells, else last."""
        key = (label.lower(), symbol)
        book = self._ask if side == "buy" else self._bid
        value = book.get(key, self._last.get(key))
        return None if value is None else to_decimal(value)


def to_decimal(value: float) -> Decimal:
    """The decimal a float stands for: 1.08123 stays 1.08123, and the noise of binary arithmetic
    goes (``0.1 * 3`` is 0.3, not 0.30000000000000004). Fifteen significant digits, what a double
    holds exactly, so every number written with at most fifteen comes back as written."""
    text = repr(value)  # short for every float that came from a decimal (the common case)
    return Decimal(text if len(text) <= 16 else format(value, ".15g"))
