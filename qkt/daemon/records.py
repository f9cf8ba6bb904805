"""What the journal stores and gives back: typed, immutable values, and the journal's errors.

Quantities and prices are :class:`~decimal.Decimal` (stored as exact TEXT, never floats); times are
timezone-aware UTC. No value here has room for a secret: the journal is never given a profile, only
its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from qkt.engine.events import Side
from qkt.errors import QktError

DeploymentState = Literal["starting", "running", "stopped", "failed", "finished"]
DEPLOYMENT_STATES: tuple[DeploymentState, ...] = (
    "starting",
    "running",
    "stopped",
    "failed",
    "finished",
)
LIVE_STATES: tuple[DeploymentState, ...] = ("starting", "running")
"""A name held by a deployment in one of these states cannot be replaced (and is restored)."""

OrderState = Literal["sent", "accepted", "unknown", "filled", "rejected", "not_placed"]
OPEN_ORDER_STATES: tuple[OrderState, ...] = ("sent", "accepted", "unknown")
"""No final outcome yet: a restart resolves these at the venue before the stream sends anything."""
FINAL_ORDER_STATES: tuple[OrderState, ...] = ("filled", "rejected", "not_placed")
Outcome = Literal["accepted", "unknown", "rejected", "not_placed"]
OUTCOMES: tuple[Outcome, ...] = ("accepted", "unknown", "rejected", "not_placed")
"""What :meth:`Journal.outcome` records; ``filled`` is recorded by :meth:`Journal.record_fill`."""

Param = Decimal | bool | str
ZERO = Decimal(0)


class JournalError(QktError):
    """The journal cannot be opened or refuses a write (see the diagnostic's code)."""


class NameInUseError(JournalError):
    """A deployment of that name is ``starting`` or ``running``."""


class ClientIdJournaledError(JournalError):
    """An order with that client id is already journaled: it must never be sent again."""


@dataclass(frozen=True, slots=True)
class Replay:
    """The replay a deployment trades instead of live quotes: the CSV text as sent, and its speed
    (``max``, ``realtime`` or a multiple of real time such as ``10``)."""

    csv: str
    speed: str = "realtime"


@dataclass(frozen=True, slots=True)
class Deployment:
    """What a deploy asks the daemon to run: the strategy source itself, never only its path."""

    name: str
    strategy: str
    file: str
    """The path the user deployed, for display; the daemon runs :attr:`source`."""
    source: str
    params: Mapping[str, Param] = field(default_factory=dict)
    strict: bool = False
    portfolio: str | None = None
    replay: Replay | None = None


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    deployment: Deployment
    state: DeploymentState
    reason: str | None
    since: datetime
    """When it entered :attr:`state`."""
    created: datetime
    updated: datetime

    @property
    def name(self) -> str:
        return self.deployment.name


@dataclass(frozen=True, slots=True)
class Order:
    """One order request as it is sent: journaled (and committed) before it leaves."""

    deployment: str
    client_id: str
    tag: str
    """The id the venue keeps (the MT5 comment tag, the Bybit orderLinkId)."""
    profile: str
    alias: str
    label: str
    symbol: str
    broker_symbol: str
    side: Side
    qty: Decimal
    time: datetime
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class OrderRecord:
    order: Order
    state: OrderState
    reason: str | None
    """Why it was rejected, why its outcome is unknown, how it was resolved."""
    price: Decimal | None
    """Fill price (``filled``)."""
    filled_qty: Decimal | None
    updated: datetime

    @property
    def final(self) -> bool:
        return self.state in FINAL_ORDER_STATES


@dataclass(frozen=True, slots=True)
class Fill:
    deployment: str
    client_id: str
    label: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    reason: str
    """``market``, ``stop_loss``, ``take_profit``, ``close`` or ``venue``."""
    time: datetime
    commission: Decimal = ZERO
    alias: str | None = None
    route: str | None = None
    """The profile the fill came from, or ``paper``."""


@dataclass(frozen=True, slots=True)
class PaperPosition:
    """A paper position with the protective legs the paper broker holds for it."""

    label: str
    symbol: str
    qty: Decimal
    """Signed: negative when short."""
    avg_price: Decimal
    realized: Decimal = ZERO
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    legs_client_id: str | None = None


@dataclass(frozen=True, slots=True)
class PaperAccount:
    """One paper broker of a deployment (``paper``, ``paper:exness``…): enough to rebuild it."""

    name: str
    starting_balance: Decimal
    commission_paid: Decimal = ZERO
    positions: tuple[PaperPosition, ...] = ()
