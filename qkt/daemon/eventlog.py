"""How a deployment's events read in its log file and in ``qkt status``.

A log line is what ``qkt run`` prints for the event, without its time (the log line's own first
field is the time; then the level and the full deployment name)::

    order     BUY  0.1 EXNESS:EURUSD sl 0.54 tp 2.16 -> exness  [fx-book/eur-momentum-...-000001]
    fill      BUY  0.1 EXNESS:EURUSD @ 1.08123 (market)  [fx-book/eur-momentum-...-000001]
    rejected  EURUSDm: volume 0.001 is below the minimum 0.01  [...]
    UNKNOWN   outcome unknown (timeout); EURUSDm is blocked until ...  [...]
    log       info: oversold: buying EURUSD
    warning   exness: quotes of EURUSDm cannot be read: ...
    recovered BUY  0.1 EXNESS:EURUSD @ 1.08123 <- exness

Fills in ``qkt status`` are shaped like ``qkt run --json`` fills. Decimals are plain strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from qkt.daemon.records import Fill
from qkt.engine.events import (
    LogEvent,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderUnknown,
    PositionRecovered,
    VenueNotice,
)

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
_LOG_LEVELS: dict[str, Level] = {
    "debug": "INFO",  # the deployment's sink keeps INFO and above: a LOG debug is still said
    "info": "INFO",
    "warning": "WARNING",
    "warn": "WARNING",
    "error": "ERROR",
}
_EIGHT = Decimal("0.00000001")


def money(value: Decimal) -> str:
    """A decimal as a plain string, at most 8 places, no exponent (as ``qkt run`` prints)."""
    quantized = value.quantize(_EIGHT)
    text = format(quantized.normalize(), "f")
    return "0" if text in ("-0", "") else text


def iso(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))


class EventText:
    """The log line of each event of one deployment; ``routes`` maps a lowercased label to where
    its orders go (a profile, or ``paper``)."""

    def __init__(self, routes: Mapping[str, str]) -> None:
        self.routes = dict(routes)

    def route(self, label: str) -> str:
        return self.routes.get(label.lower(), "paper")

    def line(self, event: Any) -> tuple[Level, str] | None:
        """The level and message of ``event``; None for events the log does not show (an
        order's acceptance: its fill says more)."""
        if isinstance(event, OrderRequest):
            legs = ""
            if event.stop_loss is not None:
                legs += f" sl {money(event.stop_loss)}"
            if event.take_profit is not None:
                legs += f" tp {money(event.take_profit)}"
            return "INFO", (
                f"order     {event.side.upper():4} {money(event.qty)} {event.label}:"
                f"{event.symbol}{legs} -> {self.route(event.label)}  [{event.client_id}]"
            )
        if isinstance(event, OrderFilled):
            return "INFO", (
                f"fill      {event.side.upper():4} {money(event.qty)} {event.label}:"
                f"{event.symbol} @ {money(event.price)} ({event.reason})  [{event.client_id}]"
            )
        if isinstance(event, OrderRejected):
            return "WARNING", f"rejected  {event.reason}  [{event.client_id}]"
        if isinstance(event, OrderUnknown):
            return "WARNING", f"UNKNOWN   {event.reason}  [{event.client_id}]"
        if isinstance(event, LogEvent):
            level = _LOG_LEVELS.get(event.level.lower(), "INFO")
            return level, f"log       {event.level}: {event.message}"
        if isinstance(event, VenueNotice):
            level = "WARNING" if event.level == "warning" else "INFO"
            return level, f"{event.level:9} {event.broker}: {event.message}"
        if isinstance(event, PositionRecovered):
            return "INFO", (
                f"recovered {event.side.upper():4} {money(event.qty)} {event.label}:"
                f"{event.symbol} @ {money(event.price)} <- {self.route(event.label)}"
            )
        return None


def fill_json(fill: Fill, strategy: str) -> dict[str, Any]:
    """A journaled fill as ``qkt run --json`` prints a fill."""
    return {
        "event": "fill",
        "time": iso(fill.time),
        "strategy": strategy,
        "alias": fill.alias,
        "label": fill.label,
        "symbol": fill.symbol,
        "side": fill.side,
        "qty": money(fill.qty),
        "price": money(fill.price),
        "reason": fill.reason,
        "route": fill.route,
        "client_id": fill.client_id,
    }
