"""The daemon's deployments (SPEC §5.4, §5.5, §6.1): the :class:`~qkt.daemon.hostapi.HostLike`
the control API calls, on the daemon's one asyncio loop.

**Deploy, all or nothing.** Every child is planned again with the daemon's registry
(:mod:`qkt.daemon.planning`); a plan error in strict mode, a name held by a ``starting`` or
``running`` deployment, a netting conflict with another portfolio in strict mode, a replay that
fails its check — any of them refuses the whole deploy before anything starts (the answer is
``ok: false`` with the diagnostics). Otherwise each child is recorded ``starting`` (with the
strategy source it runs, its params and strictness) and its brokers start side by side; if one
refuses (a gateway that is not ready, an account other than ``expected_*``), the others are
closed again and the records are taken back — the name's earlier record, if one was replaced,
is put back as it was: no trace of the refused deploy remains. Then they are ``running`` and
trade, each as its own task (:mod:`qkt.daemon.deployment`). ``dry_run`` plans only.

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
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from qkt.daemon.connectivity import Connectivity
from qkt.daemon.deployment import Environment, LiveDeployment, first_line
from qkt.daemon.hostapi import DaemonContext, NotFound
from qkt.daemon.models import (
    BrokerOut,
    ChildIn,
    DeployIn,
    DeploymentOut,
    DeploymentsOut,
    DeployOut,
    DiagnosticOut,
    StatusListOut,
)
from qkt.daemon.planning import (
    Planned,
    Running,
    duplicate_names,
    netting_conflicts,
    no_quotes,
    plan_child,
    profile_differences,
    speed_problem,
)
from qkt.daemon.records import (
    LIVE_STATES,
    Deployment,
    DeploymentRecord,
    DeploymentState,
    JournalError,
    Replay,
)
from qkt.daemon.views import deployment_out, status_out
from qkt.diagnostics import Diagnostic, error, has_errors
from qkt.dsl import parse_strategy
from qkt.feeds.replaycheck import check_replay_text
from qkt.routing import Route, plan_routes

INTERRUPTED_REPLAY = "interrupted replay is not replayed (paper fills would repeat)"


class Host:
    def __init__(self, context: DaemonContext) -> None:
        self.context = context
        self.journal = context.journal
        self.env = Environment(context, Connectivity(), self._set_state)
        self.live: dict[str, LiveDeployment] = {}
        self.records: dict[str, DeploymentRecord] = {}
        self._plans: dict[tuple[str, datetime], list[Route]] = {}
        self._busy: asyncio.Lock | None = None

    # ------------------------------------------------------------ records
    def _load(self) -> None:
        self.records = {r.name: _light(r) for r in self.journal.deployments()}

    def _set_state(self, name: str, state: DeploymentState, reason: str | None) -> None:
        self.records[name] = _light(self.journal.set_state(name, state, reason))

    def _refresh(self, name: str) -> None:
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
            return await self._deploy(request)

    async def _deploy(self, request: DeployIn) -> DeployOut:
        config = self.context.config
        replay = request.replay
        csv, speed = (replay.csv, replay.speed) if replay is not None else (None, "realtime")
        top: list[Diagnostic] = duplicate_names(request.children)
        bad_speed = speed_problem(speed) if replay is not None else None
        if bad_speed is not None:
            top.append(bad_speed)
        made: list[tuple[LiveDeployment, Planned]] = []
        for child in request.children:
            dep = LiveDeployment(self.env, child.name, child.file, csv, speed)
            made.append(
                (dep, plan_child(child, request, self.context.strict, config, dep.make_session))
            )
        running = self._running()
        symbols: set[str] = set()
        for dep, planned in made:
            if not planned.ok:
                continue
            assert planned.strategy is not None
            symbols.update(s.symbol for s in planned.strategy.streams)
            planned.diagnostics.extend(self._name_in_use(planned.name))
            planned.diagnostics.extend(netting_conflicts(planned, running, self._hedging))
            if dep.live:
                planned.diagnostics.extend(no_quotes(planned, config))
        if replay is not None and csv is not None and bad_speed is None:
            top.extend(check_replay_text(csv, replay.name, sorted(symbols)).diagnostics)
        profiles = [r.profile for _, p in made for r in p.routes]
        differences = profile_differences(request.profiles, profiles, config)
        diagnostics = top + [d for _, p in made for d in p.diagnostics]
        refused = has_errors(diagnostics)
        if refused or request.dry_run:
            for dep, _ in made:
                dep.forget()
            reason = "dry run: nothing started" if not refused else None
            outs = [self._planned_out(p, reason) for _, p in made]
            return _answer(not refused, request.dry_run, outs, diagnostics, differences)
        return await self._start(made, diagnostics, differences, csv, speed)

    async def _start(
        self,
        made: list[tuple[LiveDeployment, Planned]],
        diagnostics: list[Diagnostic],
        differences: dict[str, list[str]],
        csv: str | None,
        speed: str,
    ) -> DeployOut:
        journal = self.journal
        kept: dict[str, tuple[DeploymentRecord | None, list[Any], bool]] = {}
        for dep, planned in made:
            assert planned.strategy is not None
            child = planned.child
            dep.spec = Deployment(
                name=child.name,
                strategy=planned.strategy.name,
                file=child.file,
                source=child.source,
                params=planned.overrides,
                strict=planned.strict,
                portfolio=child.portfolio,
                replay=Replay(csv, speed) if csv is not None else None,
            )
            log_existed = self.context.state.deployment_log(child.name).exists()
            kept[child.name] = (
                journal.deployment(child.name),
                journal.load_paper(child.name),
                log_existed,
            )
            try:
                journal.put_deployment(dep.spec, "starting")
            except JournalError as exc:
                diagnostics.extend(exc.diagnostics)
                return await self._refuse(made, kept, diagnostics, differences, exc.diagnostics)
            journal.clear_paper(child.name)  # a replaced deployment's money is not the new one's
            self._refresh(child.name)
            dep.open_log()
            dep.log.info(_deployed(dep, planned))
            dep.seed(paper=False)
        results = await asyncio.gather(*(dep.start() for dep, _ in made), return_exceptions=True)
        failures: list[Diagnostic] = []
        for (dep, _), result in zip(made, results, strict=True):
            if isinstance(result, BaseException):
                found = getattr(result, "diagnostics", None) or [
                    error("refused", first_line(result))
                ]
                failures.extend(found)
                dep.log.error(f"refused: {first_line(result)}")
        if failures:
            diagnostics.extend(failures)
            return await self._refuse(made, kept, diagnostics, differences, failures)
        outs = []
        for dep, _ in made:
            self._set_state(dep.name, "running", None)
            old = self.live.get(dep.name)
            if old is not None:
                old.forget()
            self.live[dep.name] = dep
            dep.launch()
            dep.log.info("running")
            outs.append(self._out(self.records[dep.name]))
        logger.info(f"deployed {', '.join(dep.name for dep, _ in made)}")
        return _answer(True, False, outs, diagnostics, differences)

    async def _refuse(
        self,
        made: list[tuple[LiveDeployment, Planned]],
        kept: dict[str, tuple[DeploymentRecord | None, list[Any], bool]],
        diagnostics: list[Diagnostic],
        differences: dict[str, list[str]],
        why: list[Diagnostic],
    ) -> DeployOut:
        """Close what started and take every record back as it was."""
        await asyncio.gather(*(dep.abandon() for dep, _ in made))
        journal = self.journal
        for name, (before, paper, log_existed) in kept.items():
            record = journal.deployment(name)
            if (
                record is not None
                and record.state == "starting"
                and (before is None or record.created != before.created)
            ):
                if before is None:
                    journal.remove_deployment(name)
                else:
                    journal.set_state(name, "stopped")
                    journal.put_deployment(before.deployment, before.state)
                    journal.set_state(name, before.state, before.reason)
                    journal.save_paper(name, paper)
                if not log_existed:
                    with contextlib.suppress(OSError):
                        self.context.state.deployment_log(name).unlink()
            self._refresh(name)
        reason = why[0].message if why else "refused"
        logger.warning(f"deploy of {', '.join(kept)} refused: {reason}")
        outs = [self._planned_out(p, None) for _, p in made]
        return _answer(False, False, outs, diagnostics, differences)

    def _name_in_use(self, name: str) -> list[Diagnostic]:
        record = self.records.get(name)
        if record is None or record.state not in LIVE_STATES:
            return []
        return [
            error(
                "name-in-use",
                f"deployment `{name}` is {record.state}",
                hint=f"stop it first: qkt stop {name}",
            )
        ]

    def _running(self) -> list[Running]:
        found = []
        for name, dep in self.live.items():
            record = self.records.get(name)
            if record is None or record.state not in LIVE_STATES or dep.session is None:
                continue
            found.append(Running(name, record.deployment.portfolio, tuple(dep.session.plan.routes)))
        return found

    def _hedging(self, profile: str) -> bool:
        for dep in self.live.values():
            broker = dep.session.venues.get(profile) if dep.session is not None else None
            if broker is not None and getattr(broker, "hedging", False):
                return True
        return False

    # ------------------------------------------------------------ what the API reads
    def deployments(self) -> DeploymentsOut:
        return DeploymentsOut(deployments=[self._out(r) for _, r in sorted(self.records.items())])

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
                    self._out(record),
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

    def _out(self, record: DeploymentRecord) -> DeploymentOut:
        return deployment_out(
            record.deployment, record.state, record.reason, record.since, self._routes(record)
        )

    def _planned_out(self, planned: Planned, reason: str | None) -> DeploymentOut:
        child = planned.child
        refused = has_errors(planned.diagnostics)
        spec = Deployment(
            child.name,
            planned.strategy.name if planned.strategy is not None else "",
            child.file,
            child.source,
            planned.overrides,
            planned.strict,
            child.portfolio,
        )
        if reason is None:
            first = next((d for d in planned.diagnostics if d.is_error), None)
            reason = (
                f"refused: {first.message}" if first else "not started: another child was refused"
            )
        state: DeploymentState = "failed" if refused else "stopped"
        return deployment_out(spec, state, reason, datetime.now(UTC), planned.routes)

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
                outs.append(self._out(self.records[child]))
        return DeploymentsOut(deployments=outs)

    async def _stop_one(self, name: str, flatten: bool) -> None:
        dep = self.live.get(name)
        reason = "stopped by qkt stop"
        if dep is not None and dep.task is not None and not dep.task.done():
            reason = await dep.stop(flatten)
        self._set_state(name, "stopped", reason)
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
                self._set_state(name, "stopped", INTERRUPTED_REPLAY)
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
            self._set_state(spec.name, "failed", f"cannot be restored: {reason}")
            dep.forget()
            return
        for d in planned.diagnostics:
            dep.log.warning(d.format())
        dep.log.info(f"restoring after a restart: {_deployed(dep, planned)}")
        self._set_state(spec.name, "running", None)
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


def _deployed(dep: LiveDeployment, planned: Planned) -> str:
    routes = ", ".join(
        f"{r.alias} -> {r.profile}" + (" (fallback)" if r.fallback else "") for r in planned.routes
    )
    strategy = planned.strategy.name if planned.strategy is not None else "?"
    strict = "strict" if planned.strict else "not strict"
    return f"strategy {strategy} ({dep.file}), {strict}; routes: {routes or 'none'}"


def _said(context: DaemonContext, name: str, message: str) -> None:
    from qkt.daemon import logs

    sink = logs.add_deployment_sink(context.state, name)
    try:
        logger.bind(deployment=name).warning(message)
    finally:
        logger.remove(sink)


def _answer(
    ok: bool,
    dry_run: bool,
    deployments: list[DeploymentOut],
    diagnostics: Iterable[Diagnostic],
    differences: dict[str, list[str]],
) -> DeployOut:
    return DeployOut(
        ok=ok,
        dry_run=dry_run,
        deployments=deployments,
        diagnostics=[_diag(d) for d in diagnostics],
        differences=differences,
    )


def _diag(d: Diagnostic) -> DiagnosticOut:
    return DiagnosticOut(
        severity=d.severity,
        code=d.code,
        message=d.message,
        path=d.path,
        line=d.line,
        column=d.column,
        hint=d.hint,
    )
