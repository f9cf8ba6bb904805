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
    """The shortest decimal that round-trips the float: 1.08123 stays 1.08123."""
    return Decimal(repr(value))
