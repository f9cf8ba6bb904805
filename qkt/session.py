"""LiveSession: one strategy, its route plan, its brokers and its market data, wired together.

The session asks :func:`~qkt.routing.plan_routes` for its plan — the same call ``qkt validate``
makes — and builds exactly the brokers the plan names: one per profile, paper for paper routes and
fallbacks, the registry's factory for everything else. Strict mode refuses a plan with errors
before anything starts.

The session itself is synchronous (the deterministic core). Brokers that talk to a venue are edges
(:class:`~qkt.brokers.base.VenueBroker`): :meth:`LiveSession.start`, :meth:`LiveSession.settle` and
:meth:`LiveSession.aclose` run them on the caller's asyncio loop (see :mod:`qkt.loop`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from qkt.brokers.base import VenueBroker
from qkt.brokers.composite import CompositeBroker
from qkt.brokers.paper import PaperBroker
from qkt.brokers.registry import BrokerRegistry
from qkt.brokers.tags import client_prefix, run_stamp
from qkt.diagnostics import Diagnostic, error
from qkt.dsl.ast import Strategy
from qkt.engine.bus import EventBus
from qkt.engine.candles import CandleBuilder
from qkt.engine.clock import SimulatedClock, WallClock
from qkt.engine.events import (
    Bar,
    LogEvent,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderUnknown,
    PositionRecovered,
    Tick,
    VenueNotice,
)
from qkt.engine.intents import CloseIntent, Intent, LogIntent, OrderIntent
from qkt.engine.orders import OrderManager
from qkt.engine.positions import ONE, ZERO, PositionBook
from qkt.engine.prices import PriceTracker
from qkt.engine.runtime import Runtime
from qkt.errors import QktError
from qkt.feeds.replay import Row
from qkt.routing import RoutePlan, plan_routes


class SessionRefused(QktError):
    """The plan has errors (strict mode) or a broker cannot be built: nothing started."""


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """A position still open when the session finished: ``qty`` is signed (negative short)."""

    label: str
    symbol: str
    qty: Decimal
    avg_price: Decimal


@dataclass
class Summary:
    trades: int = 0
    wins: int = 0
    fills: int = 0
    rejected: int = 0
    realized_pnl: Decimal = ZERO
    commission: Decimal = ZERO
    max_drawdown: Decimal = ZERO
    final_equity: Decimal = ZERO
    open_positions: list[OpenPosition] = field(default_factory=list)

    @property
    def win_rate(self) -> Decimal:
        return (
            (Decimal(self.wins) / self.trades * 100).quantize(Decimal("0.1"))
            if self.trades
            else ZERO
        )


@dataclass
class _Trade:
    realized: Decimal = ZERO


@dataclass
class Account:
    starting_balance: Decimal
    realized: Decimal = ZERO
    commission: Decimal = ZERO
    peak: Decimal = ZERO
    max_drawdown: Decimal = ZERO
    trades: dict[tuple[str, str], _Trade] = field(default_factory=dict)


class LiveSession:
    def __init__(
        self,
        strategy: Strategy,
        registry: BrokerRegistry,
        *,
        strict: bool = False,
        params: Mapping[str, Decimal | bool | str] | None = None,
        name: str | None = None,
        path: str | None = None,
        starting_balance: Decimal = Decimal(10000),
        clock: SimulatedClock | WallClock | None = None,
        paper_only: bool = False,
        on_event: Callable[[Any], None] | None = None,
        client_ids: Callable[[], str] | None = None,
    ) -> None:
        self.strategy = strategy
        self.name = name or strategy.name
        self.plan: RoutePlan = plan_routes(strategy, registry, strict, path=path, params=params)
        self.registry = registry
        errors = [d for d in self.plan.diagnostics if d.severity == "error"]
        if errors:
            raise SessionRefused(errors)
        self.warnings: list[Diagnostic] = list(self.plan.diagnostics)
        self.clock = clock or SimulatedClock()
        self.bus = EventBus()
        self.prices = PriceTracker()
        self.positions = PositionBook()
        self.ledger = Account(starting_balance, peak=starting_balance)
        self.summary = Summary(final_equity=starting_balance)
        self.on_event = on_event or (lambda event: None)
        self._open: set[tuple[str, str]] = set()  # (label lowercased, symbol) not flat
        self._flat_equity: Decimal | None = None
        self.brokers = self._build_brokers(registry, paper_only)
        self.venues: dict[str, VenueBroker] = {
            profile: broker
            for profile, broker in self.brokers.items()
            if isinstance(broker, VenueBroker)
        }
        self._started = False
        self.composite = CompositeBroker(
            self.brokers, {r.label: r.profile for r in self.plan.routes}
        )
        self.routes = {r.alias: r for r in self.plan.routes}
        self._announced_by_venue = {r.label for r in self.plan.routes if r.profile in self.venues}
        self.runtime = Runtime(strategy, self, params)
        # Orders to a venue carry the run in their client id: a restarted session never reuses
        # an id (nor an Idempotency-Key) of an earlier run. Paper runs keep name-000001, so a
        # replay prints the same output every time. ``client_ids`` (the daemon's journal) issues
        # them instead: ids never issued twice by one state dir.
        self.orders = OrderManager(
            self.name,
            self.prices,
            self.positions,
            self.clock,
            self._account_value,
            id_prefix=client_prefix(self.name, run_stamp() if self.venues else None),
            id_source=client_ids,
        )
        self._candles = {
            alias: CandleBuilder(state.symbol, state.seconds)
            for alias, state in self.runtime.streams.items()
        }
        self._feed_cache: dict[
            tuple[str | None, str | None], tuple[list[tuple[str, str, Any]], list[str]]
        ] = {}
        self.bus.subscribe(OrderFilled, self._on_fill)
        self.bus.subscribe(OrderRejected, self._on_rejected)
        self.bus.subscribe(OrderRequest, self.on_event)
        self.bus.subscribe(OrderAccepted, self.on_event)
        self.bus.subscribe(OrderUnknown, self.on_event)
        self.bus.subscribe(VenueNotice, self.on_event)

    # ------------------------------------------------------------ brokers
    def _build_brokers(self, registry: BrokerRegistry, paper_only: bool) -> dict[str, Any]:
        brokers: dict[str, Any] = {}
        for route in self.plan.routes:
            if route.profile in brokers:
                continue
            entry = registry.resolve(route.profile)
            if entry is None or route.fallback or (paper_only and route.type != "paper"):
                # Fallbacks, labels without a registry entry, and --paper: the default paper broker.
                name = route.profile if route.type == "paper" else f"paper:{route.profile}"
                brokers[route.profile] = PaperBroker(name, self.bus, self.clock, self.prices)
                continue
            try:
                broker = entry.factory(self.bus, self.clock, self.prices)
            except QktError as exc:
                raise SessionRefused(self._refusal(route.profile, exc.diagnostics)) from None
            brokers[route.profile] = broker
        return brokers

    def _refusal(self, profile: str, diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
        alias = next(r.alias for r in self.plan.routes if r.profile == profile)
        return [
            error(
                d.code,
                f"stream `{alias}` routes to `{profile}`: {d.message}",
                hint="`qkt run --paper` fills every stream on paper instead",
            )
            for d in diagnostics
        ]

    # ------------------------------------------------------------ venue brokers (async edge)
    @property
    def needs_loop(self) -> bool:
        """Whether some stream routes to a venue: the session must then run on an asyncio loop."""
        return bool(self.venues)

    async def start(self) -> None:
        """Start the venue brokers side by side (readiness, expected account, recovery of their
        open positions). One refusal refuses the session: the others are closed again."""
        if self._started:
            return
        venues = list(self.venues.items())
        results = await asyncio.gather(
            *(b.start(self.name) for _, b in venues), return_exceptions=True
        )
        refusals: list[Diagnostic] = []
        for (profile, _), result in zip(venues, results, strict=True):
            if isinstance(result, QktError):
                refusals.extend(self._refusal(profile, result.diagnostics))
            elif isinstance(result, BaseException):
                await self.aclose()
                raise result
        if refusals:
            await self.aclose()
            raise SessionRefused(refusals)
        for profile, broker in venues:
            self._adopt(profile, broker.recovered)
        self._started = True

    async def settle(self) -> None:
        """Wait until every order handed to a venue has its answer (its events are published)."""
        for broker in self.venues.values():
            await broker.settle()

    async def aclose(self) -> None:
        """Wait for orders in flight, then close every venue connection."""
        results = await asyncio.gather(
            *(b.aclose() for b in self.venues.values()), return_exceptions=True
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            raise failure

    def _adopt(self, profile: str, recovered: Iterable[Any]) -> None:
        """Positions a venue already holds for this session (the broker kept only those whose
        comment's tag names this session), each announced as it becomes the session's."""
        for position in recovered:
            book = self.positions.get(position.label, position.symbol)
            size = getattr(position, "contract_size", ONE)
            book.apply(position.side, position.qty, position.price, size)
            if book.qty:
                self._open.add((position.label.lower(), position.symbol))
            self.on_event(
                PositionRecovered(
                    profile,
                    position.label,
                    position.symbol,
                    position.side,
                    position.qty,
                    position.price,
                    self.clock.now(),
                    size,
                )
            )

    # ------------------------------------------------------------ what rules read
    def position(self, alias: str, pfield: str | None) -> float | None:
        stream = self.runtime.streams[alias]
        position = self.positions.get(stream.label, stream.symbol)
        if pfield is None:
            return float(position.qty)
        if pfield == "entry_price":
            return float(position.avg_price) if position.qty else None
        unrealized = position.unrealized(self.prices.last(stream.label, stream.symbol))
        if pfield == "unrealized_pnl":
            return float(unrealized)
        return float(unrealized + position.realized)

    def account(self, afield: str) -> float | None:
        return float(self._account_value(afield))

    def _account_value(self, afield: str) -> Decimal:
        unrealized = self._unrealized()
        balance = self.ledger.starting_balance + self.ledger.realized
        balance -= self.ledger.commission
        values = {
            "balance": balance,
            "equity": balance + unrealized,
            "realized_pnl": self.ledger.realized,
            "unrealized_pnl": unrealized,
        }
        return values[afield]

    def _unrealized(self) -> Decimal:
        total = ZERO
        for label, symbol in self._open:
            position = self.positions.get(label, symbol)
            total += position.unrealized(self.prices.last(label, symbol))
        return total

    # ------------------------------------------------------------ events
    def _on_fill(self, fill: OrderFilled) -> None:
        position = self.positions.get(fill.label, fill.symbol)
        before = position.qty
        realized = position.apply(fill.side, fill.qty, fill.price, fill.contract_size)
        state = self.ledger
        state.realized += realized
        state.commission += fill.commission
        key = (fill.label.lower(), fill.symbol)
        trade = state.trades.setdefault(key, _Trade())
        trade.realized += realized - fill.commission
        self.summary.fills += 1
        after = position.qty
        if after:
            self._open.add((fill.label.lower(), fill.symbol))
        else:
            self._open.discard((fill.label.lower(), fill.symbol))
        self._flat_equity = None
        if before != 0 and (after == 0 or (after > 0) != (before > 0)):
            self.summary.trades += 1
            self.summary.wins += trade.realized > 0
            state.trades[key] = _Trade()
        self.on_event(fill)

    def _on_rejected(self, rejected: OrderRejected) -> None:
        self.summary.rejected += 1
        self.on_event(rejected)

    # ------------------------------------------------------------ market data
    def _feeds(
        self, symbol: str | None, label: str | None = None
    ) -> tuple[list[tuple[str, str, Any]], list[str]]:
        """For rows of ``symbol`` (of one ``label``, for venue quotes): the (label, symbol, paper
        broker) to price, and the streams to feed."""
        cached = self._feed_cache.get((symbol, label))
        if cached is None:
            streams = self.runtime.streams
            aliases = [
                a
                for a, st in streams.items()
                if (symbol is None or st.symbol == symbol)
                and (label is None or st.label.lower() == label.lower())
            ]
            venues: dict[tuple[str, str], tuple[str, str, Any]] = {}
            for alias in aliases:
                st = streams[alias]
                broker = self.composite.broker_for(st.label)
                paper = broker if isinstance(broker, PaperBroker) else None
                venues.setdefault((st.label.lower(), st.symbol), (st.label, st.symbol, paper))
            cached = (list(venues.values()), aliases)
            self._feed_cache[(symbol, label)] = cached
        return cached

    def on_row(self, row: Row) -> None:
        clock = self.clock
        if isinstance(clock, SimulatedClock):
            clock.advance_to(row.time)
        venues, aliases = self._feeds(row.symbol, row.label)
        if not aliases:
            return
        bar, tick = row.bar, row.tick
        update = self.prices.update
        for label, symbol, paper in venues:
            if bar is not None:
                if paper is not None:
                    paper.on_bar(label, bar if bar.symbol == symbol else _with_symbol(bar, symbol))
                update(label, symbol, bar.close)
            elif tick is not None:
                if paper is not None:
                    paper.on_tick(label, Tick(symbol, tick.time, tick.bid, tick.ask))
                update(label, symbol, (tick.bid + tick.ask) / 2, tick.bid, tick.ask)
        on_bar = self.runtime.on_bar
        for alias in aliases:
            builder = self._candles[alias]
            if bar is not None:
                if builder.seconds == bar.seconds and builder.is_aligned(bar):
                    closed = [bar]  # the input bar is exactly one candle of the stream
                else:
                    closed = builder.add_bar(bar)
            else:
                assert tick is not None
                closed = builder.add_tick(tick.time, (tick.bid + tick.ask) / 2, tick.volume)
            for candle in closed:
                intents = on_bar(alias, candle)
                if intents:
                    self._handle(intents)
        self._mark_equity()

    def warm(self, alias: str, bars: Iterable[Bar], until: datetime | None = None) -> int:
        """Feed ``alias`` bars of history (oldest first) as live bars would be fed: its candles,
        its indicators and its rules' conditions, so a cross or an edge that happened in the
        history is not seen again on the first live bar; but no rule fires and no order is made.
        With ``until``, the stream's candle whose period ended by then is closed as history too.
        Returns how many of the stream's candles closed."""
        builder = self._candles[alias]
        warm = self.runtime.warm
        count = 0
        for bar in bars:
            if builder.seconds == bar.seconds and builder.is_aligned(bar):
                closed = [bar]
            else:
                closed = builder.add_bar(bar)
            for candle in closed:
                warm(alias, candle)
            count += len(closed)
        if until is not None:
            for candle in builder.flush(until):
                warm(alias, candle)
                count += 1
        return count

    def finish(self) -> Summary:
        """Close candles whose period has ended and compute the summary."""
        self._mark_equity()
        state = self.ledger
        self.summary.realized_pnl = state.realized
        self.summary.commission = state.commission
        self.summary.max_drawdown = state.max_drawdown
        self.summary.final_equity = self._account_value("equity")
        labels = {s.label.lower(): s.label for s in self.strategy.streams}
        self.summary.open_positions = [
            OpenPosition(labels.get(p.label, p.label.upper()), p.symbol, p.qty, p.avg_price)
            for p in sorted(self.positions.all(), key=lambda p: (p.label, p.symbol))
            if p.qty
        ]
        return self.summary

    def run(self, rows: Iterable[Row]) -> Summary:
        """Replay ``rows`` synchronously: paper sessions only (venue sessions use qkt.loop)."""
        if self.needs_loop:
            raise RuntimeError("this session routes to a venue: run it with qkt.loop.drive")
        for row in rows:
            self.on_row(row)
        return self.finish()

    def _mark_equity(self) -> None:
        state = self.ledger
        if not self._open:
            if self._flat_equity is not None:
                return  # flat and no fill since the last mark: equity has not moved
            self._flat_equity = self._account_value("equity")
        equity = self._account_value("equity")
        state.peak = max(state.peak, equity)
        state.max_drawdown = max(state.max_drawdown, state.peak - equity)

    # ------------------------------------------------------------ intents
    def _handle(self, intents: list[Intent]) -> None:
        streams = self.runtime.streams
        for intent in intents:
            if isinstance(intent, OrderIntent):
                made = self.orders.order(intent, streams[intent.alias])
                if isinstance(made, str):  # counted in the summary as a broker's refusal is
                    self._on_rejected(
                        OrderRejected(f"{self.name}-unsent", "session", made, self.clock.now())
                    )
                    continue
                self._submit(made)
            elif isinstance(intent, CloseIntent):
                for request in self.orders.close(intent, streams):
                    self._submit(request)
            elif isinstance(intent, LogIntent):
                self.on_event(LogEvent(self.name, intent.level, intent.message, self.clock.now()))

    def _submit(self, request: OrderRequest) -> None:
        # A venue broker says the order itself, as it goes on the wire (its stops placed from the
        # venue's quote and rounded to the symbol's digits), or as made if it refuses it first.
        if request.label not in self._announced_by_venue:
            self.on_event(request)
        self.composite.submit(request)


def _with_symbol(bar: Bar, symbol: str) -> Bar:
    return Bar(symbol, bar.time, bar.seconds, bar.open, bar.high, bar.low, bar.close, bar.volume)
