"""One deployment the daemon runs: a :class:`~qkt.session.LiveSession` on the daemon's one asyncio
loop, driven by :func:`qkt.loop.drive` as one task, wired to the journal (:mod:`qkt.daemon.recorder`)
and to its own log (``logs/<name>.log``, records bound with ``deployment=<name>``).

Its rows: the deploy's replay (the CSV text the client sent, written to ``replays/`` under the
state dir, checked before the deploy started, paced at its speed), else the daemon's
``market_data``: venue quotes (``VenueQuotes``, after a warm-up from the venue's bar history where
the gateway serves it), the configuration's replay, or none. A replay that ends makes the
deployment ``finished``. Any exception of the session — a rule, a poller, a broker refusing, a
replay file changed under it — makes it ``failed`` with the reason; nothing else stops.

Restart (:meth:`LiveDeployment.launch` with ``restored``), in this order, before the session
sees its first row: paper positions, balances and the ledger from the journal
(:mod:`qkt.daemon.paperstate`); every journaled order without a final outcome handed to its MT5
broker (:meth:`~qkt.brokers.mt5.broker.MT5Broker.expect`); the brokers started — open positions
recovered by their tag, orders the recovery already shows settled in the journal only; a gateway
that does not answer is waited for (``down`` meanwhile) — ; the journal's positions compared with
the venue's (a difference is taken from the venue and reported, in the log and ``status``); the
remaining orders resolved at the venue (found: filled; absent after the unknown-outcome window:
not placed). Only then do rows flow, so no rule sees a position the venue has not confirmed, and
no client id is ever sent twice: every new order takes a new id from the journal.

Stop: rows stop flowing; with ``flatten`` every position is closed reduce-only (as ``CLOSE_ALL``)
and waited for; then the task is cancelled, which waits for the answers of orders in flight and
closes the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from loguru import logger

from qkt.brokers.mt5.broker import MT5Broker
from qkt.daemon import logs, paperstate
from qkt.daemon.connectivity import Connectivity, is_warmup
from qkt.daemon.eventlog import money
from qkt.daemon.hostapi import DaemonContext
from qkt.daemon.planning import pace
from qkt.daemon.recorder import Recorder
from qkt.daemon.records import Deployment, DeploymentState, OrderRecord
from qkt.dsl.ast import Strategy
from qkt.engine.clock import SimulatedClock, WallClock
from qkt.engine.events import OrderRequest, VenueNotice
from qkt.engine.intents import CloseIntent
from qkt.errors import QktError
from qkt.feeds.replay import ReplaySource, Row
from qkt.loop import drive
from qkt.session import LiveSession, SessionRefused, Summary

RETRY_S = 5.0
"""Between two starts of a restored deployment whose gateway does not answer."""
RESOLVE_POLL_S = 0.25
_YIELD_EVERY = 64  # replay rows between two yields to the loop at max speed


@dataclass(frozen=True, slots=True)
class Environment:
    """What every deployment of one daemon shares."""

    context: DaemonContext
    connectivity: Connectivity
    set_state: Callable[[str, DeploymentState, str | None], None]
    """Record a deployment's new state (the host keeps its view of the records in step)."""

    @property
    def replays(self) -> Path:
        return self.context.state.path / "replays"


def first_line(exc: BaseException) -> str:
    if isinstance(exc, QktError) and exc.diagnostics:
        return "; ".join(d.message for d in exc.diagnostics[:3])
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class LiveDeployment:
    def __init__(self, env: Environment, name: str, file: str, csv: str | None, speed: str) -> None:
        self.env = env
        self.name = name
        self.file = file
        self.csv = csv
        self.speed = speed
        self.log = logger.bind(deployment=name)
        self.recorder = Recorder(env.context.journal, name, self.log, self._notice)
        self.spec: Deployment | None = None
        self.session: LiveSession | None = None
        self.task: asyncio.Task[None] | None = None
        self.halt = asyncio.Event()
        self.sink: int | None = None
        self.started = False
        self.warmups: dict[str, tuple[str, str]] = {}  # alias -> (level, message)
        self.notes: list[str] = []
        self._replay_file: Path | None = None

    # ------------------------------------------------------------ building
    @property
    def market(self) -> Any:
        return self.env.context.config.market_data

    @property
    def replaying(self) -> bool:
        return self.csv is not None or (
            self.market.source == "replay" and self.market.replay is not None
        )

    @property
    def live(self) -> bool:
        return not self.replaying and self.market.source == "venue"

    def make_session(self, strategy: Strategy, params: Any, strict: bool) -> LiveSession:
        """The session of this deployment, planned with the daemon's registry; raises
        SessionRefused (a plan with errors in strict mode, a broker that cannot be built)."""
        context = self.env.context
        journal, name = context.journal, self.name
        session = LiveSession(
            strategy,
            context.registry,
            strict=strict,
            params=params,
            name=name,
            path=self.file,
            starting_balance=Decimal(context.config.paper.starting_balance),
            clock=SimulatedClock() if self.replaying else WallClock(),
            on_event=self.recorder.event,
            client_ids=lambda: journal.next_client_id(name),
        )
        self.recorder.attach(session)
        for profile, broker in session.venues.items():
            if isinstance(broker, MT5Broker):
                broker.before_send = self.recorder.before_send(profile)
                broker.on_settled = self.recorder.settled(profile)
            route = next(r for r in session.plan.routes if r.profile == profile)
            self.env.connectivity.use(name, profile, route.type, route.target)
        self.session = session
        return session

    def open_log(self) -> None:
        if self.sink is None:
            self.sink = logs.add_deployment_sink(self.env.context.state, self.name)

    def close_log(self) -> None:
        if self.sink is not None:
            with contextlib.suppress(ValueError):
                logger.remove(self.sink)
            self.sink = None

    def forget(self) -> None:
        """Nothing of this deployment runs any more (refused, stopped, failed, finished)."""
        self.env.connectivity.release(self.name)
        self.close_log()
        if self._replay_file is not None:
            with contextlib.suppress(OSError):
                self._replay_file.unlink()
            self._replay_file = None

    # ------------------------------------------------------------ starting
    async def start(self) -> None:
        """Start the venue brokers (readiness, expected account, recovery); raises
        SessionRefused, after closing what had opened."""
        assert self.session is not None
        await self.session.start()
        self.started = True

    async def abandon(self) -> None:
        """Close a started session of a refused deploy (nothing was sent)."""
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.aclose()
        self.forget()

    def launch(self, *, restored: bool = False) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._main(restored), name=f"deployment {self.name}"
        )

    async def _main(self, restored: bool) -> None:
        assert self.session is not None
        session = self.session
        try:
            try:
                if restored:
                    await self._restore()
                else:
                    await self._resolve_expected()
            except BaseException:
                with contextlib.suppress(Exception):
                    await session.aclose()
                raise
            summary = await drive(session, self._rows(), warm=self.live)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc)
            return
        if self.replaying:
            self._finished(summary)
        else:  # live rows that ended: nothing more will come
            self._failed(RuntimeError("its market data ended"))

    def _failed(self, exc: BaseException) -> None:
        reason = first_line(exc)
        if not isinstance(exc, QktError):
            self.log.opt(exception=exc).error(f"failed: {reason}")
        else:
            self.log.error(f"failed: {reason}")
        self._end("failed", reason)

    def _finished(self, summary: Summary) -> None:
        reason = (
            f"replay ended: {summary.fills} fills, realized PnL {money(summary.realized_pnl)}, "
            f"final equity {money(summary.final_equity)}"
        )
        self.log.info(f"finished: {reason}")
        self._end("finished", reason)

    def _end(self, state: DeploymentState, reason: str) -> None:
        with contextlib.suppress(Exception):
            self.recorder.save()
        with contextlib.suppress(Exception):
            self.env.set_state(self.name, state, reason)
        self.forget()

    # ------------------------------------------------------------ rows
    def _rows(self) -> AsyncIterator[Row]:
        assert self.session is not None
        if self.csv is not None:
            return self._paced(ReplaySource(self._write_replay(), pace(self.speed)))
        market = self.market
        if market.source == "replay" and market.replay is not None:
            path = Path(market.replay.path)
            config = self.env.context.config.path
            if not path.is_absolute() and config is not None:
                path = config.parent / path
            return self._paced(ReplaySource(path, market.replay.speed))
        if market.source == "venue":
            from qkt.feeds.venue import VenueQuotes

            quotes = VenueQuotes(self.session)
            if not quotes.empty:
                return self._gated(quotes.rows())
        return self._idle()

    def replay_path(self) -> Path:
        safe = self.name.replace("/", "--")
        return self.env.replays / f"{safe}.csv"

    def _write_replay(self) -> Path:
        assert self.csv is not None
        path = self.replay_path()
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8", opener=_private) as handle:
            handle.write(self.csv)
        self._replay_file = path
        return path

    async def _paced(self, source: ReplaySource) -> AsyncIterator[Row]:
        for count, (wait, row) in enumerate(source.paced()):
            if wait > 0:
                await asyncio.sleep(wait)
            elif count % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a replay at max speed shares the loop
            if self.halt.is_set():
                await _forever()
            yield row

    async def _gated(self, rows: AsyncIterator[Row]) -> AsyncIterator[Row]:
        async with contextlib.aclosing(rows) as source:  # type: ignore[type-var]
            async for row in source:
                if self.halt.is_set():
                    await _forever()
                yield row

    async def _idle(self) -> AsyncIterator[Row]:
        await _forever()
        yield  # type: ignore[misc]  # pragma: no cover

    # ------------------------------------------------------------ restart
    def seed(self, *, paper: bool) -> dict[tuple[str, str], Decimal]:
        """Before the brokers start: (a restart) paper positions, balances and the ledger from
        the journal; every journaled order of this name without a final outcome handed to its
        MT5 broker to resolve at the venue. Returns the venue positions the ledger recorded."""
        assert self.session is not None
        session, journal = self.session, self.env.context.journal
        expected = paperstate.restore(session, journal.load_paper(self.name)) if paper else {}
        waiting = 0
        for record in journal.open_orders(self.name):
            broker = session.venues.get(record.order.profile)
            if isinstance(broker, MT5Broker):
                broker.expect(request_of(record), record.order.tag, record.updated)
                self.recorder.expect(record)
                waiting += 1
                continue
            reason = "a paper order the daemon stopped before its fill: not placed"
            journal.outcome(record.order.client_id, "not_placed", reason)
            self.log.warning(f"not placed: {reason}  [{record.order.client_id}]")
        if waiting:
            self.log.info(
                f"{waiting} order(s) of an earlier run without a final outcome: resolved at "
                "the venue before anything is sent"
            )
        return expected

    async def _restore(self) -> None:
        expected = self.seed(paper=True)
        await self._start_retrying()
        self._compare(expected)
        await self._resolve_expected()
        self.recorder.save()
        self.log.info("restored: trading resumes")

    async def _start_retrying(self) -> None:
        assert self.session is not None
        told = False
        while True:
            try:
                await self.start()
            except SessionRefused as exc:
                if any(d.code != "gateway-unavailable" for d in exc.diagnostics):
                    raise
                reason = first_line(exc)
                for profile in self.session.venues:
                    self.env.connectivity.refused(self.name, profile, reason)
                if not told:
                    self.log.warning(
                        f"cannot start yet: {reason}; trying again every {RETRY_S:g} s"
                    )
                    told = True
                await asyncio.sleep(RETRY_S)
                continue
            for profile in self.session.venues:
                self.env.connectivity.answered(self.name, profile)
            return

    def _compare(self, expected: dict[tuple[str, str], Decimal]) -> None:
        """The journal's venue positions against what the venue holds (recovered): the venue's
        are kept (the session already has them); a difference is reported."""
        assert self.session is not None
        session = self.session
        held: dict[tuple[str, str], Decimal] = {}
        for p in session.positions.all():
            if p.qty and not paperstate.is_paper(session, p.label):
                held[(p.label.lower(), p.symbol)] = p.qty
        settled = self.recorder.settled_qty
        labels = {s.label.lower(): s.label for s in session.strategy.streams}
        for key in sorted(set(expected) | set(held) | set(settled)):
            want = expected.get(key, Decimal(0)) + settled.get(key, Decimal(0))
            have = held.get(key, Decimal(0))
            if want == have:
                continue
            label, symbol = labels.get(key[0], key[0].upper()), key[1]
            profile = session.composite.route_of_label.get(key[0], "the venue")
            note = (
                f"journal and venue differ on {label}:{symbol}: the journal has {money(want)}, "
                f"{profile} holds {money(have)}; the venue's position is taken"
            )
            self.notes.append(note)
            self.log.warning(note)

    async def _resolve_expected(self) -> None:
        assert self.session is not None
        brokers = [
            b for b in self.session.venues.values() if isinstance(b, MT5Broker) and b.expected
        ]
        while brokers:
            for broker in brokers:
                await broker.resolve_expected()
            brokers = [b for b in brokers if b.expected]
            if brokers:
                await asyncio.sleep(RESOLVE_POLL_S)

    # ------------------------------------------------------------ stopping
    async def stop(self, flatten: bool) -> str:
        """Stop trading (closing every position first with ``flatten``); the reason to record."""
        self.halt.set()
        said = await self._flatten() if flatten else ""
        await self.cancel()
        self.recorder.save()
        return "stopped by qkt stop" + (f"; {said}" if said else "")

    async def _flatten(self) -> str:
        session = self.session
        if session is None or not self.started:
            return "not flattened: the session had not started"
        self.log.info("flatten: closing every position (reduce-only)")
        session._handle([CloseIntent(None, 0)])
        try:
            await session.settle()
            for broker in session.venues.values():
                await broker.poll()  # what the venue did meanwhile
        except Exception as exc:
            self.log.warning(f"flatten: {first_line(exc)}")
        labels = {s.label.lower(): s.label for s in session.strategy.streams}
        left = [
            f"{labels.get(p.label, p.label)}:{p.symbol} {money(p.qty)}"
            for p in session.positions.all()
            if p.qty
        ]
        if left:
            said = f"could not close {', '.join(left)} (see qkt logs {self.name})"
            self.log.warning(f"flatten: {said}")
            return said
        self.log.info("flatten: every position is closed")
        return "flattened: every position closed"

    async def cancel(self) -> None:
        """Stop the session's task: it waits for the answers of orders in flight, then closes
        its connections."""
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def shutdown(self) -> None:
        """The daemon stops: the deployment keeps its state, to be restored at the next start."""
        self.halt.set()
        await self.cancel()
        with contextlib.suppress(Exception):
            self.recorder.save()
        self.log.info("daemon stopping: stays running, restored at the next start")
        self.forget()

    # ------------------------------------------------------------ what it says
    def _notice(self, notice: VenueNotice) -> None:
        if is_warmup(notice.message):
            alias = notice.message.removeprefix("warm-up of ").split(":", 1)[0]
            self.warmups[alias] = (notice.level, notice.message)
            return
        self.env.connectivity.notice(self.name, notice)

    def warmup(self) -> str | None:
        """Whether the indicators started warm (SPEC §6.1)."""
        if not self.live or self.session is None:
            return None if self.session is None else "replay: no warm-up from the venue"
        if not self.warmups:
            needs = any(self.session.runtime.warmup_bars(a) for a in self.session.runtime.streams)
            if not needs:
                return "not needed: no indicator to warm"
            return "warming up" if self.task is not None and not self.task.done() else None
        levels = {level for level, _ in self.warmups.values()}
        word = "warm" if levels == {"info"} else "cold" if "info" not in levels else "partly warm"
        return f"{word}: " + "; ".join(message for _, message in self.warmups.values())


def request_of(record: OrderRecord) -> OrderRequest:
    """The request a journaled order was, as its broker resolves it."""
    o = record.order
    return OrderRequest(
        o.client_id, o.deployment, o.alias, o.label, o.symbol, o.side, o.qty, o.time,
        o.stop_loss, o.take_profit, o.reduce_only,
    )  # fmt: skip


def _private(path: str, flags: int) -> int:
    import os

    return os.open(path, flags, 0o600)


async def _forever() -> None:
    await asyncio.Event().wait()
