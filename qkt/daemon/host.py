"""The daemon's deployments (SPEC §5.4, §5.5, §6.1): the :class:`~qkt.daemon.hostapi.HostLike`
the control API calls, on the daemon's one asyncio loop.

**Deploy, all or nothing:** :mod:`qkt.daemon.deploying` (one deploy or stop at a time).

**Failure isolation.** A deployment's failure (its session's exception, a broker refusing at a
restart) makes it ``failed`` with the reason; nothing else stops.

**Stop.** A deployment, or every child of a portfolio: rows stop, ``flatten`` closes positions
first, orders in flight are awaited; ``stopped`` is kept (not restored at the next start).
Stopping a stopped deployment changes nothing and is not an error.

**Restart.** :meth:`Host.restore` brings back every ``running``/``starting`` deployment from its
journaled source, params and strictness, each in its own task (see :mod:`qkt.daemon.deployment`
for the order of its steps), so the control socket answers at once; a deployment that was
replaying is not replayed again (paper fills would repeat): it becomes ``stopped`` with that
reason. :meth:`Host.shutdown` stops every session for a daemon stop, states kept ``running``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from dataclasses import replace
from datetime import datetime
from typing import Any

from loguru import logger

from qkt.daemon.connectivity import Connectivity
from qkt.daemon.deploying import Deployer, described
from qkt.daemon.deployment import Environment, LiveDeployment
from qkt.daemon.hostapi import DaemonContext, NotFound
from qkt.daemon.models import (
    BrokerOut,
    ChildIn,
    DeployIn,
    DeploymentOut,
    DeploymentsOut,
    DeployOut,
    StatusListOut,
)
from qkt.daemon.planning import no_quotes, plan_child
from qkt.daemon.records import (
    LIVE_STATES,
    Deployment,
    DeploymentRecord,
    DeploymentState,
    Replay,
)
from qkt.daemon.views import deployment_out, status_out
from qkt.dsl import parse_strategy
from qkt.routing import Route, plan_routes

INTERRUPTED_REPLAY = "interrupted replay is not replayed (paper fills would repeat)"


class Host:
    def __init__(self, context: DaemonContext) -> None:
        self.context = context
        self.journal = context.journal
        self.env = Environment(context, Connectivity(), self.set_state)
        self.live: dict[str, LiveDeployment] = {}
        self.records: dict[str, DeploymentRecord] = {}
        self._plans: dict[tuple[str, datetime], list[Route]] = {}
        self._busy: asyncio.Lock | None = None

    # ------------------------------------------------------------ records
    def _load(self) -> None:
        self.records = {r.name: _light(r) for r in self.journal.deployments()}

    def set_state(self, name: str, state: DeploymentState, reason: str | None) -> None:
        self.records[name] = _light(self.journal.set_state(name, state, reason))

    def refresh(self, name: str) -> None:
        record = self.journal.deployment(name)
        if record is None:
            self.records.pop(name, None)
        else:
            self.records[name] = _light(record)

    @property
    def _lock(self) -> asyncio.Lock:
        if self._busy is None:
            self._busy = asyncio.Lock()
        return self._busy

    # ------------------------------------------------------------ deploy
    async def deploy(self, request: DeployIn) -> DeployOut:
        async with self._lock:
            return await Deployer(self).deploy(request)

    # ------------------------------------------------------------ what the API reads
    def deployments(self) -> DeploymentsOut:
        return DeploymentsOut(deployments=[self.out(r) for _, r in sorted(self.records.items())])

    def status(self, name: str) -> StatusListOut:
        found = []
        for child in self._names(name):
            record = self.records[child]
            dep = self.live.get(child)
            session = dep.session if dep is not None and dep.started else None
            routes = self._routes(record)
            brokers = self.env.connectivity.brokers(r.profile for r in routes if r.type != "paper")
            found.append(
                status_out(
                    self.out(record),
                    self.journal,
                    session,
                    brokers if record.state in LIVE_STATES else [],
                    dep.warmup() if dep is not None and record.state in LIVE_STATES else None,
                    list(dep.notes) if dep is not None else [],
                )
            )
        return StatusListOut(deployments=found)

    def log_path(self, name: str) -> Any:
        if name not in self.records:
            raise NotFound(name, self._known())
        return self.context.state.deployment_log(name)

    def brokers(self) -> list[BrokerOut]:
        return self.env.connectivity.brokers()

    def _names(self, name: str) -> list[str]:
        if name in self.records:
            return [name]
        children = [n for n, r in sorted(self.records.items()) if r.deployment.portfolio == name]
        if not children:
            raise NotFound(name, self._known())
        return children

    def _known(self) -> list[str]:
        portfolios = {r.deployment.portfolio for r in self.records.values()}
        return [*self.records, *(p for p in portfolios if p)]

    def out(self, record: DeploymentRecord) -> DeploymentOut:
        return deployment_out(
            record.deployment, record.state, record.reason, record.since, self._routes(record)
        )

    def _routes(self, record: DeploymentRecord) -> list[Route]:
        dep = self.live.get(record.name)
        if dep is not None and dep.session is not None and dep.spec is not None:
            return list(dep.session.plan.routes)
        key = (record.name, record.created)
        if key not in self._plans:
            self._plans[key] = _plan_of(record.deployment, self.context)
        return self._plans[key]

    # ------------------------------------------------------------ stop
    async def stop(self, name: str, flatten: bool) -> DeploymentsOut:
        names = self._names(name)
        async with self._lock:
            outs = []
            for child in names:
                record = self.records[child]
                if record.state in LIVE_STATES:
                    await self._stop_one(child, flatten)
                outs.append(self.out(self.records[child]))
        return DeploymentsOut(deployments=outs)

    async def _stop_one(self, name: str, flatten: bool) -> None:
        dep = self.live.get(name)
        reason = "stopped by qkt stop"
        if dep is not None and dep.task is not None and not dep.task.done():
            reason = await dep.stop(flatten)
        self.set_state(name, "stopped", reason)
        if dep is not None:
            dep.log.info(f"stopped: {reason}")
            dep.forget()
        logger.info(f"stopped {name}: {reason}")

    # ------------------------------------------------------------ restart and shutdown
    async def restore(self) -> None:
        self._load()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.env.replays)
        market = self.context.config.market_data
        for name, record in sorted(self.records.items()):
            if record.state not in LIVE_STATES:
                continue
            spec = self.journal.deployment(name)
            assert spec is not None
            if spec.deployment.replay is not None or market.source == "replay":
                self.set_state(name, "stopped", INTERRUPTED_REPLAY)
                _said(self.context, name, f"stopped at the restart: {INTERRUPTED_REPLAY}")
                continue
            self._restore_one(spec.deployment)

    def _restore_one(self, spec: Deployment) -> None:
        dep = LiveDeployment(self.env, spec.name, spec.file, None, "realtime")
        dep.spec = spec
        dep.open_log()
        child = ChildIn(
            name=spec.name,
            portfolio=spec.portfolio,
            file=spec.file,
            source=spec.source,
            params=dict(spec.params),
            strict=spec.strict,
        )
        request = DeployIn(children=[child], strict=spec.strict)
        planned = plan_child(
            child, request, self.context.strict, self.context.config, dep.make_session
        )
        if not planned.ok:
            reason = "; ".join(d.message for d in planned.diagnostics if d.is_error)[:500]
            dep.log.error(f"cannot be restored: {reason}")
            self.set_state(spec.name, "failed", f"cannot be restored: {reason}")
            dep.forget()
            return
        for d in planned.diagnostics:
            dep.log.warning(d.format())
        if dep.live:
            dep.notes.extend(d.message for d in no_quotes(planned, self.context.config))
        dep.log.info(f"restoring after a restart: {described(dep, planned)}")
        self.set_state(spec.name, "running", None)
        self.live[spec.name] = dep
        dep.launch(restored=True)
        logger.info(f"restoring {spec.name}")

    async def shutdown(self) -> None:
        active = [d for d in self.live.values() if d.task is not None and not d.task.done()]
        await asyncio.gather(*(dep.shutdown() for dep in active), return_exceptions=True)


# ---------------------------------------------------------------- helpers
def _light(record: DeploymentRecord) -> DeploymentRecord:
    """A record without its replay's rows (kept in the journal; a list need not carry them)."""
    replay = record.deployment.replay
    if replay is None:
        return record
    return replace(record, deployment=replace(record.deployment, replay=Replay("", replay.speed)))


def _plan_of(spec: Deployment, context: DaemonContext) -> list[Route]:
    """The routes of a deployment not running, planned again (for display)."""
    parsed = parse_strategy(spec.source, spec.file)
    if parsed.strategy is None:
        return []
    try:
        plan = plan_routes(parsed.strategy, context.registry, spec.strict, params=spec.params)
    except Exception:  # a source this version cannot plan: shown without routes
        return []
    return list(plan.routes)


def _said(context: DaemonContext, name: str, message: str) -> None:
    from qkt.daemon import logs

    sink = logs.add_deployment_sink(context.state, name)
    try:
        logger.bind(deployment=name).warning(message)
    finally:
        logger.remove(sink)
