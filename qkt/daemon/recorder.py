"""One deployment's session events into the journal and its log (SPEC §6.1, §5.5).

Every order is journaled and committed before it is sent:

- venue orders by :meth:`Recorder.before_send`, the hook :class:`~qkt.brokers.mt5.broker.MT5Broker`
  calls right before each ``POST /order`` and close by ticket (if the journal cannot write, the
  broker refuses the order, ``not journaled: not sent``, and sends nothing);
- paper orders when the session makes them (the session announces an order before it hands it
  to a paper broker, which fills it at once): journaled from that announcement.

Then what became of them, from the session's events: ``accepted``; ``unknown`` with its reason; a
rejection is ``rejected`` — or ``not_placed`` for an order whose outcome was unknown (the venue
showed it never arrived); a fill is recorded with its price and quantity, in the same commit as
the paper state it changed (:mod:`qkt.daemon.paperstate`), so a restart finds the fill and the
positions it made together or neither. An order of an earlier run that the venue state read at
restart already shows is recorded by :meth:`Recorder.settled`, the journal only (its effect is in
the recovered position: no second fill).

Every event is also a line of the deployment's log (:mod:`qkt.daemon.eventlog`). No value written
here comes from a profile's fields: no secret reaches the journal or the log.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from qkt.brokers.tags import order_tag
from qkt.daemon import paperstate
from qkt.daemon.eventlog import EventText
from qkt.daemon.journal import Fill, Journal, JournalError, Order, OrderRecord
from qkt.engine.events import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderUnknown,
    VenueNotice,
)

Key = tuple[str, str]


class Recorder:
    def __init__(
        self,
        journal: Journal,
        name: str,
        log: Any,
        on_notice: Callable[[VenueNotice], None],
    ) -> None:
        self.journal = journal
        self.name = name
        self.log = log
        self.on_notice = on_notice
        self.session: Any = None
        self.text = EventText({})
        self.open: set[str] = set()  # journaled here, no final outcome recorded yet
        self.unknown: set[str] = set()  # of those: outcome unknown, or journaled by an earlier run
        self.aliases: dict[str, str] = {}  # client id -> stream alias
        self.settled_qty: dict[Key, Decimal] = {}  # signed, by orders settled at restart

    def attach(self, session: Any) -> None:
        """The session whose events these are (it is built with :meth:`event` as its sink)."""
        self.session = session
        self.text = EventText(
            {
                r.label.lower(): "paper" if r.type == "paper" or r.fallback else r.profile
                for r in session.plan.routes
            }
        )

    # ------------------------------------------------------------ orders
    def before_send(self, profile: str) -> Callable[[OrderRequest, str, str], None]:
        """The hook of the venue broker of ``profile``: journal, commit, then it may send."""

        def journal(request: OrderRequest, tag: str, broker_symbol: str) -> None:
            self._sent(request, tag, profile, broker_symbol)

        return journal

    def settled(self, profile: str) -> Callable[[OrderRequest, Decimal, Decimal], None]:
        """What the venue broker of ``profile`` calls for an order of an earlier run found in
        the venue state read at restart: its fill, in the journal only."""

        def record(request: OrderRequest, price: Decimal, qty: Decimal) -> None:
            fill = self._fill_of(request.client_id, request.label, request.symbol, request.side,
                                 qty, price, "market", request.time, Decimal(0))  # fmt: skip
            self.journal.record_fill(fill)
            self.open.discard(request.client_id)
            self.unknown.discard(request.client_id)
            key = (request.label.lower(), request.symbol)
            signed = qty if request.side == "buy" else -qty
            self.settled_qty[key] = self.settled_qty.get(key, Decimal(0)) + signed
            self.log.info(
                f"settled   {request.side.upper():4} {qty} {request.label}:{request.symbol} @ "
                f"{price}: the venue shows the order of the earlier run, already in the "
                f"recovered position  [{request.client_id}]"
            )

        return record

    def expect(self, record: OrderRecord) -> None:
        """An order of an earlier run without a final outcome: resolved at the venue now."""
        self.open.add(record.order.client_id)
        self.unknown.add(record.order.client_id)
        self.aliases[record.order.client_id] = record.order.alias

    def _sent(self, request: OrderRequest, tag: str, profile: str, broker_symbol: str) -> None:
        self.journal.order_sent(
            Order(
                deployment=self.name,
                client_id=request.client_id,
                tag=tag,
                profile=profile,
                alias=request.alias,
                label=request.label,
                symbol=request.symbol,
                broker_symbol=broker_symbol,
                side=request.side,
                qty=request.qty,
                time=request.time,
                stop_loss=request.stop_loss,
                take_profit=request.take_profit,
                reduce_only=request.reduce_only,
            )
        )
        self.open.add(request.client_id)

    # ------------------------------------------------------------ the session's events
    def event(self, event: Any) -> None:
        said = self.text.line(event)
        if said is not None:
            self.log.log(*said)
        if isinstance(event, OrderRequest):
            self.aliases.setdefault(event.client_id, event.alias)
            if event.client_id not in self.open and paperstate.is_paper(self.session, event.label):
                route = self.session.routes[event.alias]
                tag = order_tag(self.name, event.client_id)
                self._sent(event, tag, route.profile, route.broker_symbol)
        elif isinstance(event, OrderFilled):
            self._filled(event)
        elif isinstance(event, OrderAccepted):
            self._outcome(event.client_id, "accepted", None)
        elif isinstance(event, OrderUnknown):
            if self._outcome(event.client_id, "unknown", event.reason):
                self.unknown.add(event.client_id)
        elif isinstance(event, OrderRejected):
            state = "not_placed" if event.client_id in self.unknown else "rejected"
            if self._outcome(event.client_id, state, event.reason):
                self.open.discard(event.client_id)
                self.unknown.discard(event.client_id)
        elif isinstance(event, VenueNotice):
            self.on_notice(event)

    def _outcome(self, client_id: str, state: Any, reason: str | None) -> bool:
        if client_id not in self.open:
            return False  # never journaled: refused before it was sent
        try:
            self.journal.outcome(client_id, state, reason)
        except JournalError as exc:
            if exc.diagnostics[0].code != "order-final":
                raise
            return False  # filled already (a fill can come before its acceptance is told)
        return True

    def _filled(self, event: OrderFilled) -> None:
        fill = self._fill_of(event.client_id, event.label, event.symbol, event.side, event.qty,
                             event.price, event.reason, event.time, event.commission)  # fmt: skip
        with self.journal.atomic():
            self.journal.record_fill(fill)
            self.journal.save_paper(self.name, paperstate.snapshot(self.session))
        self.open.discard(event.client_id)
        self.unknown.discard(event.client_id)

    def _fill_of(
        self,
        client_id: str,
        label: str,
        symbol: str,
        side: Any,
        qty: Decimal,
        price: Decimal,
        reason: str,
        time: Any,
        commission: Decimal,
    ) -> Fill:
        alias = self.aliases.get(client_id) or self._alias(label, symbol)
        return Fill(self.name, client_id, label, symbol, side, qty, price, reason, time,
                    commission, alias, self.text.route(label))  # fmt: skip

    def _alias(self, label: str, symbol: str) -> str | None:
        for route in self.session.plan.routes if self.session is not None else ():
            if route.label.lower() == label.lower() and route.symbol == symbol:
                return str(route.alias)
        return None

    def save(self) -> None:
        """The paper state now (at shutdown, after a restore)."""
        if self.session is not None:
            self.journal.save_paper(self.name, paperstate.snapshot(self.session))
