"""A deploy, all or nothing (SPEC §5.4, §6.1).

Every child is planned again with the daemon's registry (:mod:`qkt.daemon.planning`); a plan
error in strict mode, a name held by a ``starting`` or ``running`` deployment, a netting conflict
with another portfolio in strict mode, a replay that fails its check — any of them refuses the
whole deploy before anything starts (the answer is ``ok: false`` with the diagnostics). Otherwise
each child is recorded ``starting`` (with the strategy source it runs, its params and
strictness) and the brokers of every child start side by side; if one refuses (a gateway that is
not ready, an account other than its ``expected_*`` fields), the others are closed again and the
records are taken back — the name's earlier record, if this deploy replaced one, is put back with
its paper state: no trace of the refused deploy remains (its lines in ``logs/daemon.log`` say
why). Then every child is ``running`` and trades as its own task. ``dry_run`` plans only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from qkt.daemon.deployment import LiveDeployment, first_line
from qkt.daemon.models import DeployIn, DeploymentOut, DeployOut, DiagnosticOut
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
from qkt.daemon.views import deployment_out
from qkt.diagnostics import Diagnostic, error, has_errors
from qkt.feeds.replaycheck import check_replay_text

if TYPE_CHECKING:
    from qkt.daemon.host import Host


class Deployer:
    """One deploy request, over the host's deployments."""

    def __init__(self, host: Host) -> None:
        self.host = host

    async def deploy(self, request: DeployIn) -> DeployOut:
        config = self.host.context.config
        replay = request.replay
        csv, speed = (replay.csv, replay.speed) if replay is not None else (None, "realtime")
        top: list[Diagnostic] = duplicate_names(request.children)
        bad_speed = speed_problem(speed) if replay is not None else None
        if bad_speed is not None:
            top.append(bad_speed)
        made: list[tuple[LiveDeployment, Planned]] = []
        for child in request.children:
            dep = LiveDeployment(self.host.env, child.name, child.file, csv, speed)
            made.append(
                (
                    dep,
                    plan_child(child, request, self.host.context.strict, config, dep.make_session),
                )
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
                quoteless = no_quotes(planned, config)
                planned.diagnostics.extend(quoteless)
                dep.notes.extend(d.message for d in quoteless)
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
        journal = self.host.journal
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
            log_existed = self.host.context.state.deployment_log(child.name).exists()
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
            self.host.refresh(child.name)
            dep.open_log()
            dep.log.info(described(dep, planned))
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
            self.host.set_state(dep.name, "running", None)
            old = self.host.live.get(dep.name)
            if old is not None:
                old.forget()
            self.host.live[dep.name] = dep
            dep.launch()
            dep.log.info("running")
            outs.append(self.host.out(self.host.records[dep.name]))
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
        journal = self.host.journal
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
                    _unlink_log(
                        self.host.context.state.logs, self.host.context.state.deployment_log(name)
                    )
            self.host.refresh(name)
        reason = why[0].message if why else "refused"
        logger.warning(f"deploy of {', '.join(kept)} refused: {reason}")
        outs = [self._planned_out(p, None) for _, p in made]
        return _answer(False, False, outs, diagnostics, differences)

    def _name_in_use(self, name: str) -> list[Diagnostic]:
        record = self.host.records.get(name)
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
        for name, dep in self.host.live.items():
            record = self.host.records.get(name)
            if record is None or record.state not in LIVE_STATES or dep.session is None:
                continue
            found.append(Running(name, record.deployment.portfolio, tuple(dep.session.plan.routes)))
        return found

    def _hedging(self, profile: str) -> bool:
        for dep in self.host.live.values():
            broker = dep.session.venues.get(profile) if dep.session is not None else None
            if broker is not None and getattr(broker, "hedging", False):
                return True
        return False

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


def described(dep: LiveDeployment, planned: Planned) -> str:
    routes = ", ".join(
        f"{r.alias} -> {r.profile}" + (" (fallback)" if r.fallback else "") for r in planned.routes
    )
    strategy = planned.strategy.name if planned.strategy is not None else "?"
    strict = "strict" if planned.strict else "not strict"
    return f"strategy {strategy} ({dep.file}), {strict}; routes: {routes or 'none'}"


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


def _unlink_log(logs: Path, path: Path) -> None:
    """Remove a log a refused deploy wrote, and the portfolio folder it made if now empty."""
    with contextlib.suppress(OSError):
        path.unlink()
    if path.parent != logs:
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only when empty
