"""What a compiled strategy produces and reads: stream state, fired intents, rule records.

Kept apart from the compiler (``runtime.py``) so the order manager and sessions depend on these
plain types only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from qkt.engine.events import Bar


class Portfolio(Protocol):
    """What rules may read about positions and the account (provided by the session)."""

    def position(self, alias: str, field: str | None) -> float | None: ...

    def account(self, field: str) -> float | None: ...


@dataclass
class StreamState:
    alias: str
    label: str
    symbol: str
    seconds: int
    bar: Bar | None = None
    updaters: list[Callable[[Bar], None]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """A fired BUY/SELL with every expression already evaluated.

    ``problem`` says why the order cannot be made whole (a declared bracket leg or the size has no
    value now: an indicator not ready, a division by zero): the order manager refuses it."""

    alias: str
    side: str
    sizing_kind: str
    sizing_value: Decimal | None
    stop_loss: tuple[str, Decimal] | None
    take_profit: tuple[str, Decimal] | None
    line: int
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class CloseIntent:
    alias: str | None  # None: every stream
    line: int


@dataclass(frozen=True, slots=True)
class LogIntent:
    level: str
    message: str
    line: int


Intent = OrderIntent | CloseIntent | LogIntent


@dataclass
class Rule:
    condition: Callable[[], bool]
    actions: list[Callable[[], Intent | None]]
    streams: frozenset[str]
    line: int
    previous: bool = False
