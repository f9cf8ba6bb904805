"""What one session holds at a shared Bybit account: its positions, its orders, its bus.

:class:`Seat` is the state the session-scoped broker's parts share (:mod:`.recovery`,
:mod:`.broker`); the account's connection (:class:`~qkt.brokers.bybit.venue.BybitVenue`) is
shared with the other sessions of the profile. What a session hears goes on its own bus only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from qkt.brokers.bybit.client import BybitClient
from qkt.brokers.bybit.ids import order_link_id
from qkt.brokers.bybit.orders import Pending, Reason
from qkt.brokers.bybit.venue import BybitVenue
from qkt.brokers.edge import SessionBroker
from qkt.engine.events import OrderFilled, OrderRequest

ZERO = Decimal(0)


@dataclass
class Recovered:
    """An open linear position of this session found at start."""

    label: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    ticket: int = 0
    comment: str = ""
    contract_size: Decimal = Decimal(1)


@dataclass
class Held:
    """The session's own net position of a symbol: its fills, less what the venue closed."""

    qty: Decimal  # signed: buys positive
    owner: str  # client id of the order that opened it
    stop_loss: Decimal | None = None  # spot: legs held by qkt
    take_profit: Decimal | None = None


class Seat(SessionBroker):
    def __init__(
        self,
        profile: Any,
        bus: Any,
        clock: Any,
        prices: Any,
        client: BybitClient | None = None,
        *,
        label: str | None = None,
        venue: BybitVenue | None = None,
    ) -> None:
        super().__init__(profile, bus, clock, prices, label=label)
        self.venue = venue if venue is not None else BybitVenue(profile, client)
        self.recovered: list[Recovered] = []
        self.held: dict[str, Held] = {}
        self.absence_backoff_s = 0.2
        self.lag_s = 2.0  # how late an order may show at the venue after its answer
        self.fill_reads = 20  # reads of an accepted order before the poller takes over
        self.fill_backoff_s = 0.05
        self._unresolved: dict[str, Pending] = {}
        self._expected: dict[str, list[Pending]] = {}
        self._sent: set[str] = set()  # client ids whose create went out

    @property
    def client(self) -> BybitClient:
        return self.venue.client

    @property
    def category(self) -> str:
        return self.venue.category

    def venue_id(self, client_id: str) -> str:
        """The order's ``orderLinkId``."""
        return order_link_id(self.session, client_id)

    # ------------------------------------------------------------ events
    def _fill(
        self, request: OrderRequest, qty: Decimal, price: Decimal, fee: Decimal, reason: Reason
    ) -> None:
        self.bus.publish(
            OrderFilled(
                request.client_id, self.name, request.label, request.symbol, request.side, qty,
                price, self.clock.now(), reason, commission=fee,
            )
        )  # fmt: skip
        symbol = self.venue.broker_symbol(request.symbol)
        signed = qty if request.side == "buy" else -qty
        held = self.held.get(symbol)
        total = (held.qty if held else ZERO) + signed
        if not total:
            self.held.pop(symbol, None)
        elif held is None or (held.qty > 0) != (total > 0):  # opened, or reversed
            self.held[symbol] = Held(total, request.client_id)
        else:
            held.qty = total
        if self.venue.linear or request.reduce_only or symbol not in self.held:
            return
        if request.stop_loss is not None or request.take_profit is not None:
            self.held[symbol].stop_loss = request.stop_loss  # spot: qkt holds the bracket
            self.held[symbol].take_profit = request.take_profit

    # ------------------------------------------------------------ parts that call each other
    async def _resolve(self, symbol: str, reads: int | None = None) -> bool:  # pragma: no cover
        raise NotImplementedError
