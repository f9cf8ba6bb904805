"""One deployment the daemon runs: a :class:`~qkt.session.LiveSession` on the daemon's one asyncio
loop, driven by :func:`qkt.loop.drive` as one task, wired to the journal (:mod:`qkt.daemon.recorder`)
and to its own log (``logs/<name>.log``, records bound with ``deployment=<name>``).

Its rows: :mod:`qkt.daemon.feeds` (the deploy's replay, else the daemon's ``market_data``; live
rows after a warm-up from the venue's bar history where the gateway serves it). A replay that
ends makes the deployment ``finished``. Any exception of the session — a rule, a poller, a broker
refusing, a replay file changed under it — makes it ``failed`` with the reason; nothing else
stops. Before its first row, a restored deployment goes through :mod:`qkt.daemon.restart`; a new
one resolves the orders an earlier deployment of its name left without an outcome.

Stop: rows stop flowing; with ``flatten`` every position is closed reduce-only (as ``CLOSE_ALL``)
and waited for; then the task is cancelled, which waits for the answers of orders in flight and
closes the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from loguru import logger

from qkt.brokers.base import JournaledBroker
from qkt.daemon import logs, restart
from qkt.daemon.connectivity import Connectivity, is_warmup
from qkt.daemon.eventlog import money
from qkt.daemon.feeds import rows_of
from qkt.daemon.hostapi import DaemonContext
from qkt.daemon.recorder import Recorder
from qkt.daemon.records import Deployment, DeploymentState
from qkt.dsl.ast import Strategy
from qkt.engine.clock import SimulatedClock, WallClock
from qkt.engine.events import VenueNotice
from qkt.engine.intents import CloseIntent
from qkt.errors import QktError
from qkt.loop import drive
from qkt.session import LiveSession, Summary


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
        self.key = f"{name}#{id(self):x}"
        """This deployment's own token (its connectivity notices): a deploy refused or planned
        under the name of a running deployment never touches the running one's."""
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
        self.replay_file: Path | None = None

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
            if isinstance(broker, JournaledBroker):
                broker.before_send = self.recorder.before_send(profile)
                broker.on_settled = self.recorder.settled(profile)
            route = next(r for r in session.plan.routes if r.profile == profile)
            self.env.connectivity.use(self.key, profile, route.type, route.target)
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
        self.env.connectivity.release(self.key)
        self.close_log()
        if self.replay_file is not None:
            with contextlib.suppress(OSError):
                self.replay_file.unlink()
            self.replay_file = None

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
                    await restart.restore(self)
                else:
                    await restart.resolve_expected(self)
            except BaseException:
                with contextlib.suppress(Exception):
                    await session.aclose()
                raise
            summary = await drive(session, rows_of(self), warm=self.live)
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

    def seed(self, *, paper: bool) -> dict[tuple[str, str], Decimal]:
        return restart.seed(self, paper=paper)

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
        self.env.connectivity.notice(self.key, notice)

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
