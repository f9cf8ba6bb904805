"""``qkt deploy FILE``: put a portfolio or one strategy live on the daemon (SPEC §5.4).

First exactly the checks of ``qkt validate FILE`` run here (with ``--param`` applied by
:func:`qkt.params.apply_params`, and the ``--replay`` file judged as ``qkt run`` judges it): on a
failure, its diagnostics and exit 1, nothing sent. Then the daemon gets the strategy sources (not
paths), params, strictness (``--strict-brokers/--no-strict-brokers``, else ``$QKT_STRICT_BROKERS``
of this shell), the replay's rows, and this shell's resolution of each routed profile without
secrets (a secret field is ``***`` when set); it plans again with its own registry and starts
every child or none. Printed: each deployment with its routes as the daemon planned them, its
warnings, and the profiles whose fields the daemon resolves otherwise.

``--dry-run`` asks the daemon to plan; with no daemon it prints the local plan and says so. No
daemon otherwise: exit 1, ``start one with: qkt daemon --detach``. ``--json``: ``qkt.deploy/1``.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import output
from cli.common import globals_of
from qkt.diagnostics import Diagnostic

if TYPE_CHECKING:
    from qkt.config import ResolvedConfig
    from qkt.validation import FileReport, ValidationReport

SCHEMA = "qkt.deploy/1"
MAX_REPLAY_BYTES = 200 * 1024 * 1024
"""The largest replay a deploy sends (the daemon takes request bodies up to 256 MiB)."""
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
        report, params = _strategy_report(validator, file, as_name, param or [])
    problems = list(report.all_diagnostics())
    if report.ok and replay is not None:
        problems += _replay_problems(replay, report)
    from qkt.diagnostics import has_errors

    if has_errors(problems):
        _refused_locally(problems, as_json, dry_run)
    children = _children(file, kind, report, params)
    request = _request(children, report, strict_brokers, env, replay, pace, dry_run, config)
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


def _strategy_report(
    validator: Any, file: Path, as_name: str | None, items: list[str]
) -> tuple[ValidationReport, dict[str, Any]]:
    """``qkt validate FILE``, with the ``--param`` overrides bound and checked again (the checks
    ``qkt run --param`` makes) and the deployment name ``--as`` gives; and the overrides."""
    from qkt.dsl import parse_strategy_file
    from qkt.params import apply_params, cli_override

    report: ValidationReport = validator.validate([file])
    if not report.files or (not items and as_name is None):
        return report, {}
    overrides = []
    for item in items:
        override = cli_override(item)
        if override is None:
            raise typer.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="--param")
        overrides.append(override)
    parsed = parse_strategy_file(file)
    if parsed.strategy is None:
        return report, {}
    values, problems = apply_params(parsed.strategy, overrides, path=str(file))
    report.files[0] = validator.strategy(
        file,
        params=values,
        as_name=as_name,
        extra=problems,
        parsed=parsed,
        as_where={} if as_name else None,
    )
    return report, {o.name: o.value for o in overrides}


def _replay_problems(path: Path, report: ValidationReport) -> list[Diagnostic]:
    """The replay file judged whole, as ``qkt run --replay`` judges it."""
    from qkt.errors import QktError
    from qkt.feeds.replay import ReplaySource

    symbols = sorted({r.symbol for f in _strategies(report) for r in f.routes})
    try:
        return list(ReplaySource(path).check(symbols).diagnostics)
    except QktError as exc:
        return list(exc.diagnostics)


def _strategies(report: ValidationReport) -> list[FileReport]:
    found = []
    for f in report.files:
        found.extend(f.children if f.kind == "portfolio" else [f])
    return found


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


# ---------------------------------------------------------------- the request
Json = dict[str, Any]
"""A body as JSON carries it: the CLI builds and reads the daemon's shapes (``DeployIn``,
``qkt.deploy/1``) as plain values, so a deploy's cold start loads no pydantic."""


def _request(
    children: list[Json],
    report: ValidationReport,
    flag: bool | None,
    env: dict[str, str],
    replay: Path | None,
    pace: str,
    dry_run: bool,
    config: ResolvedConfig,
) -> Json:
    from qkt.daemon.wire import profile_fields
    from qkt.routing import resolve_strict

    strict = flag
    if strict is None and env.get("QKT_STRICT_BROKERS", "").strip():
        strict = resolve_strict(None, env, False, "default").on  # this shell's $QKT_STRICT_BROKERS
    routed = {r.profile for f in _strategies(report) for r in f.routes}
    profiles = {
        name: profile_fields(config.profiles[name])
        for name in sorted(routed)
        if name in config.profiles
    }
    rows = None
    if replay is not None:
        rows = {"csv": _read(replay, MAX_REPLAY_BYTES), "name": str(replay), "speed": pace}
    return {
        "children": children,
        "strict": strict,
        "replay": rows,
        "dry_run": dry_run,
        "profiles": profiles,
    }


def _children(file: Path, kind: str, report: ValidationReport, params: Json) -> list[Json]:
    from qkt.portfolio import default_as_name, load_portfolio

    if kind != "portfolio":
        f = report.files[0]
        name = f.as_name or default_as_name(f.name or file.stem)
        return [_child(name, None, str(file), _read(file), params, None)]
    portfolio, _ = load_portfolio(file)
    assert portfolio is not None  # it validated
    children = []
    for entry, f in zip(portfolio.entries, report.files[0].children, strict=True):
        as_name = f.as_name or default_as_name(f.name or entry.path.stem)
        children.append(
            _child(
                portfolio.deployment_name(as_name),
                portfolio.name,
                str(entry.path),
                _read(entry.path),
                dict(entry.params),
                portfolio.strict_brokers,
            )
        )
    return children


def _child(
    name: str, portfolio: str | None, file: str, source: str, params: Json, strict: bool | None
) -> Json:
    return {
        "name": name,
        "portfolio": portfolio,
        "file": file,
        "source": source,
        "params": _jsonable(params),
        "strict": strict,
    }


def _jsonable(params: Json) -> Json:
    """Values as JSON carries them: a decimal number as a JSON number."""
    out: Json = {}
    for name, value in params.items():
        if isinstance(value, Decimal):
            out[name] = int(value) if value == value.to_integral_value() else float(value)
        else:
            out[name] = value
    return out


def _read(path: Path, limit: int | None = None) -> str:
    """A strategy (at most 1 MiB, as everywhere) or a replay (``limit``) as text."""
    from qkt.errors import QktError
    from qkt.textfile import MAX_FILE_BYTES, decode, read_bytes

    data = read_bytes(path, str(path), limit=limit or MAX_FILE_BYTES)
    text = data if isinstance(data, Diagnostic) else decode(data, str(path))
    if not isinstance(text, str):
        raise QktError(text)
    return text.removeprefix("\ufeff")


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
        for child, f in zip(request["children"], _strategies(report), strict=True)
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
