"""``qkt deploy FILE``: put a portfolio or one strategy live on the daemon (SPEC §5.4).

The command parses its flags, runs the local checks and builds the request with
:mod:`qkt.daemon.request` (exactly ``qkt validate FILE``'s checks first: on a failure, its
diagnostics and exit 1, nothing sent), sends it over the socket and prints the answer: each
deployment with its routes as the daemon planned them, the warnings, and the profiles whose
fields the daemon resolves otherwise than this shell. The daemon starts every child or none.

``--dry-run`` asks the daemon to plan; with no daemon it prints the local plan and says so. No
daemon otherwise: exit 1, ``start one with: qkt daemon --detach``. ``--json``: ``qkt.deploy/1``.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import output
from cli.common import globals_of
from qkt.diagnostics import Diagnostic

if TYPE_CHECKING:
    from qkt.validation import ValidationReport

SCHEMA = "qkt.deploy/1"
Json = dict[str, Any]
LOCAL = "no daemon: local plan"


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)


def deploy(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="A portfolio YAML file or one .qkt strategy.", exists=True, dir_okay=False
        ),
    ],
    as_name: Annotated[
        str | None,
        typer.Option("--as", help="Deployment name of a .qkt (default: its strategy's name)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Override a PARAM of a .qkt: NAME=VALUE (repeatable)."),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(
            "--replay",
            help="Trade this CSV of bars or ticks instead of the daemon's market data.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    speed: Annotated[
        str | None,
        typer.Option(
            "--speed",
            help="Replay speed: max, realtime or a multiple such as 10 (default realtime).",
        ),
    ] = None,
    strict_brokers: Annotated[
        bool | None,
        typer.Option(
            "--strict-brokers/--no-strict-brokers",
            help="Refuse labels with no broker profile (and the other strict checks) instead of "
            "warning (default: $QKT_STRICT_BROKERS, the portfolio's, then the daemon's config).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Ask the daemon to plan; start nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help=f"Print JSON ({SCHEMA}).")] = False,
) -> None:
    """Validate FILE here, then have the daemon plan it with its own configuration and start
    every deployment or none. Prints each deployment with its routes as the daemon planned them.
    Exit 1 when anything is refused (nothing then runs) or no daemon answers."""
    from qkt.config import load_config
    from qkt.daemon import request as deployreq
    from qkt.validation import Validator, kind_of_path

    kind = kind_of_path(file)
    if kind == "config":
        raise typer.BadParameter("a configuration file is not deployable", param_hint="FILE")
    if kind == "portfolio" and (as_name or param):
        raise typer.BadParameter(
            "--as and --param apply to one .qkt; a portfolio names its children and their "
            "params itself",
            param_hint="'--as' / '--param'",
        )
    if speed is not None and replay is None:
        raise typer.BadParameter("--speed needs --replay", param_hint="'--speed'")
    pace = _speed(speed or "realtime")
    _check_name(as_name)
    env = dict(os.environ)
    config = load_config(globals_of(ctx).config, env=env)
    validator = Validator(config, strict_flag=strict_brokers, env=env)
    params: dict[str, Any] = {}
    if kind == "portfolio":
        report = validator.validate([file])
    else:
        report, params = deployreq.strategy_report(validator, file, as_name, _overrides(param))
    problems = list(report.all_diagnostics())
    if report.ok and replay is not None:
        problems += deployreq.replay_problems(replay, report)
    from qkt.diagnostics import has_errors

    if has_errors(problems):
        _refused_locally(problems, as_json, dry_run)
    children = deployreq.children(file, kind, report, params)
    request = deployreq.request(
        children, report, strict_brokers, env, replay, pace, dry_run, config
    )
    from cli.daemon import state_of
    from qkt.daemon.client import DaemonClient, DaemonUnreachable

    state = state_of(ctx)
    try:
        with DaemonClient(state) as client:
            answer = _send(client, request)
    except DaemonUnreachable:
        if not dry_run:
            raise
        _local_plan(request, report, problems, as_json)
        return
    if not _render(answer, problems, as_json):
        raise typer.Exit(1)


# ---------------------------------------------------------------- local checks
def _speed(value: str) -> str:
    if value in ("max", "realtime"):
        return value
    try:
        factor = float(value)
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and factor > 0):
        raise typer.BadParameter(
            f"{value!r} is not max, realtime or a positive finite multiplier such as 10",
            param_hint="'--speed'",
        )
    return value


def _check_name(name: str | None) -> None:
    from qkt.portfolio import NAME_PATTERN

    if name is not None and NAME_PATTERN.fullmatch(name) is None:
        raise typer.BadParameter(
            f"{name!r} must match [a-z0-9][a-z0-9_-]* (lowercase, digits, - and _)",
            param_hint="'--as'",
        )


def _overrides(items: list[str] | None) -> list[Any]:
    """``--param NAME=VALUE`` items as overrides; a malformed one is a command-line error."""
    from qkt.params import cli_override

    overrides = []
    for item in items or ():
        override = cli_override(item)
        if override is None:
            raise typer.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="--param")
        overrides.append(override)
    return overrides


def _refused_locally(problems: list[Diagnostic], as_json: bool, dry_run: bool) -> None:
    if as_json:
        output.print_json(
            {
                "schema": SCHEMA,
                "ok": False,
                "dry_run": dry_run,
                "deployments": [],
                "diagnostics": [d.to_json() for d in problems],
            }
        )
    else:
        output.print_diagnostics(problems, err=True)
        errors = sum(d.is_error for d in problems)
        output.echo(
            f"not deployed: {errors} error{'s' if errors != 1 else ''}; nothing sent", err=True
        )
    raise typer.Exit(1)


def _send(client: Any, request: Json) -> Json:
    import json

    from qkt.daemon.client import DEPLOY_TIMEOUT_S

    body = json.dumps(request).encode()
    answer: Json = client.request("POST", "/v1/deploy", body, timeout=DEPLOY_TIMEOUT_S)
    return answer


# ---------------------------------------------------------------- output
def _render(answer: Json, local: list[Diagnostic], as_json: bool) -> bool:
    """Print the daemon's answer, and the local checks' warnings it does not repeat (a
    portfolio's own, the configuration's); whether the deploy went through."""
    from qkt.diagnostics import warning

    said = [_diagnostic(d) for d in answer.get("diagnostics") or ()]
    seen = {(d.code, d.message) for d in said}
    said += [d for d in local if (d.code, d.message) not in seen]
    for profile, fields in (answer.get("differences") or {}).items():
        said.append(
            warning(
                "profile-differs",
                f"the daemon resolves profile `{profile}` otherwise than this shell: "
                f"{', '.join(fields)}",
                hint="the daemon uses its own configuration and environment (qkt brokers show "
                f"{profile})",
            )
        )
    ok = bool(answer.get("ok"))
    if as_json:
        output.print_json({**answer, "diagnostics": [d.to_json() for d in said]})
        return ok
    output.print_diagnostics(said, err=True)
    for d in answer.get("deployments") or ():
        _deployment(d, bool(answer.get("dry_run")))
    if not ok:
        errors = sum(d.is_error for d in said)
        output.echo(
            f"deploy refused: {errors} error{'s' if errors != 1 else ''}; nothing runs", err=True
        )
    return ok


def _diagnostic(d: Json) -> Diagnostic:
    severity = d.get("severity")
    return Diagnostic(
        severity if severity in ("error", "warning", "info") else "error",
        str(d.get("code") or "daemon"),
        str(d.get("message") or ""),
        d.get("path"),
        d.get("line"),
        d.get("column"),
        d.get("hint"),
    )


def _deployment(d: Json, dry_run: bool) -> None:
    from cli.lifecycle import route_table

    what = "planned" if dry_run else d["state"]
    reason = f" ({d['reason']})" if d.get("reason") and not dry_run else ""
    output.echo(f"{d['name']}: {what}{reason}, strategy {d['strategy']} ({d['file']})")
    route_table(d.get("routes") or [])


def _local_plan(
    request: Json, report: ValidationReport, problems: list[Diagnostic], as_json: bool
) -> None:
    from qkt.daemon.request import strategies

    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    outs = [
        {
            "name": child["name"],
            "portfolio": child["portfolio"],
            "strategy": f.name or "",
            "file": child["file"],
            "state": "stopped",
            "reason": LOCAL,
            "since": since,
            "strict": f.strict,
            "params": child["params"],
            "routes": [r.to_json() for r in f.routes],
        }
        for child, f in zip(request["children"], strategies(report), strict=True)
    ]
    if as_json:
        output.print_json(
            {
                "schema": SCHEMA,
                "ok": True,
                "dry_run": True,
                "local": True,
                "deployments": outs,
                "diagnostics": [d.to_json() for d in problems],
            }
        )
        return
    output.echo(LOCAL, err=True)
    output.print_diagnostics(problems, err=True)
    for out in outs:
        _deployment(out, True)
