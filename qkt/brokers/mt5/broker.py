"""MT5Broker: the Broker protocol for one session over its profile's shared mt5-gateway connection.

What the registry's factory ``(bus, clock, prices) -> Broker`` returns for an ``mt5`` profile. The
connection — the gateway client, the start-up guard, the positions poller, the quote pollers, one
order at a time per symbol — is the profile's :class:`~qkt.brokers.mt5.venue.MT5Venue`, shared by
every session on it (a daemon's deployments; ``qkt run`` is the one-session case). This broker is
the session's part: its orders (:mod:`.sending`), their unknown outcomes (:mod:`.outcomes`), what
the venue did to its positions (:mod:`.exits`), all said on the session's own bus.

Positions are known by their identifier (:mod:`qkt.brokers.mt5.book`): a reversal keeps it while
the ticket changes, and deals name it as ``position_id``. Times the gateway writes are the broker
server's wall clock, converted with the profile's ``server_time_zone``
(:mod:`qkt.brokers.mt5.clock`).

The engine is synchronous and the gateway is an edge: :meth:`MT5Broker.submit` hands the order to
the running asyncio loop and returns at once; the order as it goes on the wire (its stops
rounded), then its answer, come back as events on the bus. Orders of one symbol are sent one
after another (a later one waits for the earlier one's answer, and for its resolution if that
answer is unknown); orders of different symbols travel side by side. :meth:`MT5Broker.settle`
waits until every order handed over so far has its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from qkt.brokers.mt5.client import GatewayClient, GatewayError, Position
from qkt.brokers.mt5.exits import Exits
from qkt.brokers.mt5.sending import Sending
from qkt.brokers.mt5.venue import BrokerRefused, MT5Venue
from qkt.brokers.tags import session_tag
from qkt.diagnostics import error

__all__ = ["BrokerRefused", "MT5Broker", "Recovered"]


@dataclass
class Recovered:
    """An open position of this profile's magic found at start."""

    label: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    ticket: int
    comment: str
    contract_size: Decimal = Decimal(1)  # the symbol's trade_contract_size


class MT5Broker(Sending, Exits):
    def __init__(
        self,
        profile: Any,
        bus: Any,
        clock: Any,
        prices: Any,
        client: GatewayClient | None = None,
        *,
        label: str | None = None,
        venue: MT5Venue | None = None,
    ) -> None:
        super().__init__(profile, bus, clock, prices, venue, client, label=label)
        self.recovered: list[Recovered] = []

    async def start(self, session: str) -> None:
        """Join the profile's venue: its guard (the gateway ready within ``ready_timeout_ms``,
        the expected account) is checked once for every session that starts with it; then
        recover the open positions ``session``'s orders opened (their comment's tag names it).
        Positions of other sessions on the same magic, or made by hand, are neither taken nor
        reported here."""
        self.session = session
        self.venue.attach(self)
        await self.venue.ready()
        try:
            snapshot = await self.venue.recovery() if not self._unresolved else None
            if snapshot is None:  # orders to look for: deals of the last day too, fresh
                snapshot = await self.venue.snapshot()
        except GatewayError as exc:
            raise BrokerRefused(exc.diagnostics) from None
        self.book.hedging = self.venue.hedging
        self.book.owner_tag = session_tag(session)
        ours = self._own(snapshot.positions)
        try:  # what a lot of each is worth: the session's money figures need it
            for symbol in dict.fromkeys([*(p.symbol for p in ours), *self._unresolved]):
                await self.venue.info(symbol)
        except GatewayError as exc:
            raise BrokerRefused(
                error(
                    "gateway-unavailable",
                    f"profile `{self.name}`: cannot read the symbol of a position to recover: "
                    f"{exc.diagnostics[0].message}",
                )
            ) from None
        self.recovered = []  # a start again (after another broker of the session refused)
        for position in ours:
            self.book.adopt(position, self.venue.utc(position.time_msc))
            self.recovered.append(
                Recovered(
                    self.label,
                    self.venue.qkt_symbol(position.symbol),
                    "buy" if position.type == 0 else "sell",
                    position.volume,
                    position.price_open,
                    position.ticket,
                    position.comment,
                    self.venue.contract_size(position.symbol),
                )
            )
        self._settle_seen(snapshot, {p.identifier for p in ours})

    def _own(self, positions: list[Position]) -> list[Position]:
        """The positions this session recovers: those its tag names, with only its own volume.

        On a netting account, the volume the journal records (:attr:`journal_holds`) is what is
        the session's when the venue's position holds more (others' fills are in it), and a
        position another session opened holds the session's volume when the journal says so —
        with what the journaled orders of unknown outcome would add, should the venue show them.
        Without a journal's word (or when it says flat), a position the tag names is the
        session's whole, and the restart reports the difference."""
        mine = [p for p in positions if self.book.ours(p)]
        if self.venue.hedging or not self.journal_holds:
            return mine
        holds = dict(self.journal_holds)
        pending = [*self._unresolved.values(), *(p for q in self._expected.values() for p in q)]
        for order in pending:  # orders of the earlier run the venue may have filled since
            if order.seeded and order.broker_symbol in holds:
                qty = order.request.qty
                holds[order.broker_symbol] += qty if order.request.side == "buy" else -qty
        own: list[Position] = []
        for symbol, held in holds.items():
            side, volume = (0 if held > 0 else 1), abs(held)
            there = [p for p in positions if p.symbol == symbol and p.type == side]
            if not held or not there:
                continue
            position = next((p for p in there if p in mine), there[0])
            own.append(position.model_copy(update={"volume": min(volume, position.volume)}))
        covered = {p.identifier for p in own}
        return own + [p for p in mine if p.identifier not in covered]

    async def aclose(self) -> None:
        """Wait for the orders in flight, then leave the venue (the last session to leave
        closes its connections)."""
        try:
            await self.settle()
        finally:
            await self.venue.detach(self)
