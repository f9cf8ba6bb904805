"""What the demo shows, as plain values, and the :class:`View` that shows it (the command line
renders it: plain lines, or a rich live view on a terminal)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from qkt.validation import ValidationReport

FINAL_STATES = frozenset({"finished", "failed", "stopped"})


@dataclass(frozen=True, slots=True)
class GatewayOrder:
    """An order request the simulator received (``GET /_sim/orders``)."""

    deployment: str
    side: str
    volume: str
    symbol: str
    sl: str | None
    tp: str | None
    client_id: str


@dataclass(frozen=True, slots=True)
class Fill:
    """A fill the daemon reports for a deployment (``qkt status NAME --json``)."""

    deployment: str
    time: str
    side: str
    qty: str
    label: str
    symbol: str
    price: str
    reason: str
    route: str
    client_id: str


@dataclass(frozen=True, slots=True)
class StateChange:
    deployment: str
    state: str
    reason: str | None


Event = GatewayOrder | Fill | StateChange


@dataclass(frozen=True, slots=True)
class Position:
    label: str
    symbol: str
    qty: str
    avg_price: str
    unrealized_pnl: str
    realized_pnl: str


@dataclass(slots=True)
class Child:
    """The latest of one deployment: its state, positions, money and what it sent."""

    name: str
    state: str = "starting"
    reason: str | None = None
    positions: list[Position] = field(default_factory=list)
    balance: str = "-"
    equity: str = "-"
    orders: int = 0
    fills: int = 0

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class View(Protocol):
    def step(self, text: str) -> None:
        """A line about what the demo does (starting, deploying, stopping)."""

    def preview(self, report: ValidationReport) -> None:
        """``qkt validate``'s routing preview of the portfolio."""

    def deployed(self, answer: dict[str, Any]) -> None:
        """The daemon's answer to the deploy (``qkt.deploy/1``)."""

    def trading(self, children: list[Child]) -> None:
        """Trading begins: the live part of the view starts."""

    def events(self, events: list[Event], children: list[Child]) -> None:
        """What happened since the last call, and every deployment as it is now."""

    def finished(self, children: list[Child]) -> None:
        """Trading is over (the replays ended, or the demo is stopping): the last picture."""
