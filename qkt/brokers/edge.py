"""The asyncio edge every venue adapter shares: one connection per profile, many sessions on it.

:class:`SharedVenue` is what a profile's venue connection has whatever its protocol (SPEC §6.1):
the sessions attached to it, what it says to all of them (:class:`Everyone`), a start-up guard
checked once while sessions are attached, a poll that sessions polling together share, and one
quote poller per symbol (:class:`~qkt.feeds.shared.SharedPoll`) that stops when nobody reads it.
Subclasses say how the guard checks, how a poll reads and how a quote is read
(:mod:`qkt.brokers.mt5.venue`, :mod:`qkt.brokers.bybit.venue`).

:class:`SessionBroker` is what a session-scoped broker has whatever its protocol: the orders it
handed to the loop, each a task, and :meth:`InFlight.settle` to wait for their answers; the journal
hooks a daemon sets (:class:`~qkt.brokers.base.JournaledBroker`); and how it speaks on its own
session's bus: each order announced once, a refusal, a notice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from qkt.engine.events import OrderRejected, OrderRequest, VenueNotice
from qkt.errors import QktError
from qkt.feeds.shared import SharedPoll

T = TypeVar("T")
S = TypeVar("S")  # a session-scoped broker: has .bus and .clock


def once(
    slot: asyncio.Task[T] | None, make: Callable[[], Coroutine[Any, Any, T]]
) -> asyncio.Task[T]:
    """The task in ``slot`` while it runs, else a new one: callers that ask together share it."""
    if slot is not None and not slot.done():
        return slot
    return asyncio.get_running_loop().create_task(make())


async def joined(task: Awaitable[T]) -> T:
    """Await a task others may be awaiting too: cancelling one caller cancels only its wait."""
    return await asyncio.shield(task)


class Everyone:
    """A bus and a clock for what a venue says: each attached session hears it, at its own
    clock's time."""

    def __init__(self, sessions: list[Any]) -> None:
        self.sessions = sessions

    def now(self) -> datetime:
        return datetime.now(UTC)

    def publish(self, notice: VenueNotice) -> None:
        for seat in list(self.sessions):
            seat.bus.publish(replace(notice, time=seat.clock.now()))


class Connection(Protocol):
    """A venue's wire client: closed with ``aclose()``, made again on first use."""

    async def aclose(self) -> None: ...


class SharedVenue(Generic[S]):
    name: str
    tick_every_s: float
    client: Connection

    def __init__(self) -> None:
        self.sessions: list[S] = []
        self.everyone = Everyone(self.sessions)
        self._guard: asyncio.Task[None] | None = None
        self._polling: asyncio.Task[dict[S, int | BaseException]] | None = None
        self._quotes: dict[str, SharedPoll[Any]] = {}

    # ------------------------------------------------------------ what subclasses say
    async def _check(self) -> None:
        """The start-up guard; raises a QktError refusing the profile."""
        raise NotImplementedError

    async def _poll(self) -> dict[S, int | BaseException]:
        """One look at the venue for every attached session: each one's result."""
        raise NotImplementedError

    async def quote(self, symbol: str) -> Any:
        """One read of the symbol's quote (``bid``, ``ask``, ``time_msc``)."""
        raise NotImplementedError

    def _forget(self) -> None:
        """The last session left: drop what the connection read for them."""

    # ------------------------------------------------------------ sessions
    def attach(self, seat: S) -> None:
        if seat not in self.sessions:
            self.sessions.append(seat)

    async def detach(self, seat: S) -> None:
        """A session closes; the last one stops the venue's tasks and, unless a quote poller
        is still read (a paper profile's ``quotes_from``), closes the connections (the next
        start checks the venue again, on whatever loop it runs)."""
        if seat in self.sessions:
            self.sessions.remove(seat)
        if self.sessions:
            return
        streaming = {s: p for s, p in self._quotes.items() if p.listeners}
        for symbol, poll in self._quotes.items():
            if symbol not in streaming:
                await poll.aclose()
        self._quotes = streaming
        for task in (self._guard, self._polling):
            if task is not None and not task.done():
                task.cancel()
        self._guard = self._polling = None
        self._forget()
        if not streaming:
            await self.client.aclose()

    async def idle(self) -> None:
        """A quote reader left: with no session attached and nobody streaming, close the
        connections (a paper profile's ``quotes_from`` uses the venue without a session)."""
        if not self.sessions and not any(p.listeners for p in self._quotes.values()):
            for poll in self._quotes.values():
                await poll.aclose()
            self._quotes.clear()
            await self.client.aclose()

    def notice(self, level: str, message: str) -> None:
        self.everyone.publish(VenueNotice(self.name, level, message, self.everyone.now()))  # type: ignore[arg-type]

    # ------------------------------------------------------------ shared by the sessions
    async def ready(self) -> None:
        """The start-up guard: once while sessions are attached, shared by those that start
        together. A refusal is not kept: the next start asks again."""
        guard = self._guard = self._guard or asyncio.get_running_loop().create_task(self._check())
        try:
            await joined(guard)
        except BaseException:
            if guard.done() and self._guard is guard:
                self._guard = None
            raise

    async def poll(self) -> dict[S, int | BaseException]:
        """One look at the venue for every attached session; a poll asked while one runs joins
        it, so sessions polling on the same interval cost one read."""
        self._polling = once(self._polling, self._poll)
        return await joined(self._polling)

    def quotes(self, symbol: str) -> SharedPoll[Any]:
        """The one quote poller of ``symbol`` (every ``tick_poll_interval_ms``): each stream on
        it subscribes; nobody subscribed, nothing is polled."""
        poll = self._quotes.get(symbol)
        if poll is None:
            poll = self._quotes[symbol] = SharedPoll(lambda: self.quote(symbol), self.tick_every_s)
        return poll


class InFlight:
    """A session broker's orders handed to the loop, each a task until its answer is out."""

    def __init__(self) -> None:
        self._inflight: set[asyncio.Task[None]] = set()
        self._failures: list[BaseException] = []

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if task not in self._inflight:
            return
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failures.append(task.exception())  # type: ignore[arg-type]

    async def settle(self) -> None:
        """Wait until every order handed over so far has its answer (and its events are out).

        Cancelling the caller does not cancel an order in flight: it keeps going, and the next
        ``settle`` (or ``aclose``) waits for it. A bug in a dispatch is raised here."""
        while self._inflight:
            task = next(iter(self._inflight))
            if task.done():  # finished, its done-callback not run yet
                self._done(task)
                continue
            with contextlib.suppress(Exception):  # kept by _done, raised below
                await asyncio.shield(task)
        if self._failures:
            failure, self._failures = self._failures[0], []
            raise failure


class SessionBroker(InFlight):
    """The part of a session-scoped broker every protocol shares (see the module's text)."""

    capabilities = frozenset({"market", "bracket"})

    def __init__(
        self, profile: Any, bus: Any, clock: Any, prices: Any, *, label: str | None = None
    ) -> None:
        super().__init__()
        self.profile = profile
        self.name: str = profile.name
        self.label = label or profile.name.upper()
        self.bus = bus
        self.clock = clock
        self.prices = prices
        self.session = ""  # the session's name, known at start
        self.journal_holds: dict[str, Decimal] = {}
        """What the daemon's journal records the session holds, per broker symbol (buys
        positive), set before a restarted session starts: what it takes back of the venue's."""
        self.before_send: Callable[[OrderRequest, str, str], None] | None = None
        """Called with the request, its venue id (MT5 comment tag, Bybit orderLinkId) and the
        broker symbol right before it is first sent; if it raises, the order is refused (``not
        journaled: not sent``) and nothing is sent. The daemon journals and commits it here."""
        self.on_settled: Callable[[OrderRequest, Decimal, Decimal], None] | None = None
        """Called with (request, price, volume) for an order an earlier run journaled that the
        venue read at start already shows: its effect is in what was taken back, so it is
        reported here only, never as a fill."""
        self._announced: set[str] = set()  # client ids whose order event is out
        self._journaled: set[str] = set()  # client ids before_send accepted

    def notice(self, level: str, message: str) -> None:
        self.bus.publish(VenueNotice(self.name, level, message, self.clock.now()))  # type: ignore[arg-type]

    def _announce(self, request: OrderRequest) -> None:
        """The order event, once: as it goes on the wire, or as made when refused before."""
        if request.client_id not in self._announced:
            self._announced.add(request.client_id)
            self.bus.publish(request)

    def _reject(self, request: OrderRequest, reason: str) -> OrderRejected:
        self._announce(request)
        rejected = OrderRejected(request.client_id, self.name, reason, self.clock.now())
        self.bus.publish(rejected)
        return rejected

    def _journal(self, request: OrderRequest, venue_id: str, broker_symbol: str) -> str | None:
        """Hand the order to :attr:`before_send` (once per client id); why it must not be sent
        when that raises."""
        if self.before_send is None or request.client_id in self._journaled:
            return None
        try:
            self.before_send(request, venue_id, broker_symbol)
        except Exception as exc:
            reason = exc.diagnostics[0].message if isinstance(exc, QktError) else str(exc)
            return f"not journaled: not sent ({reason or type(exc).__name__})"
        self._journaled.add(request.client_id)
        return None

    def cancel(self, client_id: str) -> bool:
        return False  # market orders only: nothing rests at the venue

    def venue_id(self, client_id: str) -> str:
        """The id the venue knows the order ``client_id`` by (printed beside the client id)."""
        raise NotImplementedError
