"""qkt symbol <-> MT5 broker symbol: aliases first, then the profile's suffix (and back)."""

from __future__ import annotations

from collections.abc import Mapping


def to_broker_symbol(symbol: str, aliases: Mapping[str, str], suffix: str) -> str:
    """``EURUSD`` -> ``EURUSDm``; ``NAS100`` -> ``USTEC`` -> ``USTECm`` on exness."""
    return aliases.get(symbol, symbol) + suffix


def from_broker_symbol(broker_symbol: str, aliases: Mapping[str, str], suffix: str) -> str:
    """The inverse of :func:`to_broker_symbol`: strip the suffix, then invert the alias map."""
    base = (
        broker_symbol[: -len(suffix)]
        if suffix and broker_symbol.endswith(suffix)
        else broker_symbol
    )
    for qkt_symbol, venue_symbol in aliases.items():
        if venue_symbol == base:
            return qkt_symbol
    return base
