"""The Broker protocol (SPEC §7) and the engine-facing types a broker factory receives.

The engine's concrete event bus, clock and price tracker satisfy the small protocols below; brokers
depend only on these, so adapters and the deterministic core stay decoupled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable


class EventBus(Protocol):
    def publish(self, event: Any) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class MarketPriceTracker(Protocol):
    def last(self, label: str, symbol: str) -> Decimal | None: ...


@runtime_checkable
class Broker(Protocol):
    """A venue adapter: receives order requests, publishes accepted/rejected/filled events."""

    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> frozenset[str]: ...

    def submit(self, request: Any) -> Any: ...

    def cancel(self, client_id: str) -> Any: ...

    def close_position(self, label: str, symbol: str) -> Any: ...


@runtime_checkable
class VenueBroker(Protocol):
    """A broker that talks to a venue over the network: an asyncio edge around the sync core.

    ``submit`` hands an order to the running loop and returns; its answer arrives as events.
    A factory builds it without I/O; ``start`` checks the venue and recovers the open positions
    the session's orders opened."""

    recovered: list[Any]

    async def start(self, session: str) -> None: ...

    async def settle(self) -> None: ...

    async def poll(self) -> int: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class JournaledBroker(Protocol):
    """A venue broker a daemon journals: every order handed to ``before_send`` (journaled and
    committed) before it is first sent, and after a restart the orders an earlier run journaled
    without an outcome handed back by ``expect`` and resolved at the venue, never resent."""

    before_send: Callable[[Any, str, str], None] | None
    on_settled: Callable[[Any, Decimal, Decimal], None] | None
    journal_holds: dict[str, Decimal]

    def expect(self, request: Any, tag: str, sent_at: datetime) -> None: ...

    async def resolve_expected(self) -> int: ...

    @property
    def expected(self) -> int: ...


BrokerFactory = Callable[[EventBus, Clock, MarketPriceTracker], Broker]
"""Builds one broker for a profile: ``(bus, clock, prices) -> Broker``."""
