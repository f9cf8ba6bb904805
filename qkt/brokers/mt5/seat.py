"""What one session holds at a shared MT5 venue: its book, its orders, and how it speaks on its bus.

:class:`Seat` is the state the session-scoped broker's parts share (:mod:`.sending`,
:mod:`.outcomes`, :mod:`.exits`); the venue connection (:class:`~qkt.brokers.mt5.venue.MT5Venue`)
is shared with the other sessions of the profile. Everything a session says — the order as it
goes on the wire, its answer, a fill, a notice — goes on its own bus only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from qkt.brokers.edge import SessionBroker
from qkt.brokers.mt5.book import Stake, TicketBook
from qkt.brokers.mt5.client import Deal, GatewayClient, Position
from qkt.brokers.mt5.venue import MT5Venue
from qkt.brokers.tags import order_tag
from qkt.engine.events import OrderFilled, OrderRequest


@dataclass
class Unresolved:
    request: OrderRequest
    broker_symbol: str
    tag: str
    closing: Closing | None = None  # hedging: a close by ticket of unknown outcome
    # Monotonic time before which absence proves nothing: the gateway got the order and gave
    # no answer, so it may still be placing it (the terminal works on after a client gives up).
    settle_after: float = 0.0
    seeded: bool = False  # journaled by an earlier run (see Outcomes.expect)


@dataclass
class Closing:
    stake: Stake
    volume: Decimal  # the position's volume before the close
    take: Decimal  # what the close was to take off it


def side_of(request: OrderRequest) -> int:
    """MT5's position type of the request's side: 0 buy, 1 sell."""
    return 0 if request.side == "buy" else 1


class Seat(SessionBroker):
    def __init__(
        self,
        profile: Any,
        bus: Any,
        clock: Any,
        prices: Any,
        venue: MT5Venue | None = None,
        client: GatewayClient | None = None,
        *,
        label: str | None = None,
    ) -> None:
        super().__init__(profile, bus, clock, prices, label=label)
        self.venue = venue if venue is not None else MT5Venue(profile, client)
        self.magic = self.venue.magic
        self.book = TicketBook(self.magic)
        self._our_deals: set[int] = set()  # deals our own orders made: never a venue exit
        self._unresolved: dict[str, Unresolved] = {}  # broker symbol -> order of unknown outcome
        self._expected: dict[str, list[Unresolved]] = {}  # broker symbol -> seeded, queued
        self._reconciling = asyncio.Lock()
        self.absence_backoff_s = 0.2  # between the reads that confirm "not placed"
        self.unknown_window_s = 2 * int(profile.values.get("http_timeout_ms") or 5000) / 1000

    # ------------------------------------------------------------ the shared connection
    @property
    def client(self) -> GatewayClient:
        return self.venue.client

    @client.setter
    def client(self, client: GatewayClient) -> None:
        self.venue.client = client

    @property
    def zone(self) -> Any:
        return self.venue.zone

    @property
    def hedging(self) -> bool:
        """Whether the account hedges (``margin_mode`` 2), as read from ``/account`` at start."""
        return self.book.hedging

    @property
    def ready_poll_s(self) -> float:
        return self.venue.ready_poll_s

    @ready_poll_s.setter
    def ready_poll_s(self, seconds: float) -> None:
        self.venue.ready_poll_s = seconds

    def broker_symbol(self, symbol: str) -> str:
        return self.venue.broker_symbol(symbol)

    def venue_id(self, client_id: str) -> str:
        """The order's comment tag: what comes back on its positions and deals."""
        return order_tag(self.session, client_id)

    def symbols(self) -> set[str]:
        """Broker symbols the session holds a stake in."""
        return {stake.symbol for stake in self.book.stakes.values()}

    def net(self, broker_symbol: str) -> Decimal:
        """The session's own net volume of ``broker_symbol`` (buys positive)."""
        return sum(
            (s.volume if s.type == 0 else -s.volume for s in self.book.of(broker_symbol)),
            Decimal(0),
        )

    # ------------------------------------------------------------ what the session says
    def _fill(
        self,
        request: OrderRequest,
        price: Decimal | None,
        qty: Decimal,
        when: datetime | None = None,
    ) -> None:
        if price is None:
            quote = self.prices.quote(request.label, request.symbol, request.side)
            price = quote if quote is not None else Decimal(0)
        self.bus.publish(
            OrderFilled(
                request.client_id,
                self.name,
                request.label,
                request.symbol,
                request.side,
                qty,
                price,
                when or self.clock.now(),
                contract_size=self.venue.contract_size(self.broker_symbol(request.symbol)),
            )
        )

    # ------------------------------------------------------------ parts that call each other
    async def _resolve(self, broker_symbol: str) -> bool:  # pragma: no cover - see outcomes
        raise NotImplementedError

    async def _reconcile(self) -> int:  # pragma: no cover - see exits
        raise NotImplementedError

    async def _last_exit(self, stake: Stake) -> Deal | None:  # pragma: no cover - see exits
        raise NotImplementedError

    async def resolve_pending(self) -> None:  # pragma: no cover - see outcomes
        raise NotImplementedError

    async def look_at(
        self, positions: list[Position], read_at: int
    ) -> int:  # pragma: no cover - see exits
        raise NotImplementedError
