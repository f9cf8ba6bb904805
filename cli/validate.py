"""``qkt validate``: parse, check and preview routes, starting nothing and sending nothing."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import output
from cli.common import globals_of

if TYPE_CHECKING:
    from qkt.probe import Probe
    from qkt.validation import FileReport, ValidationReport, Validator


class Format(StrEnum):
    text = "text"
    json = "json"
    github = "github"


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            help=".qkt strategies, portfolio YAML files, qkt.config.yaml files, or directories "
            "to search for them (a directory with nothing to check, or a file under it that "
            "cannot be read, is an error).",
            exists=True,
        ),
    ],
    strict_brokers: Annotated[
        bool | None,
        typer.Option(
            "--strict-brokers/--no-strict-brokers",
            help="Refuse labels with no broker profile instead of falling back to paper "
            "(default: $QKT_STRICT_BROKERS, the portfolio's or the config's strict_brokers).",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)
    ] = Format.text,
    probe: Annotated[
        bool,
        typer.Option(
            "--probe",
            help="Also ask each routed MT5 gateway, read-only, for its readiness, its account "
            "and every routed symbol (unreachable: a warning, an error in strict mode; a refused "
            "api_key, a missing or untradable symbol, an order size outside the live volume "
            "limits: errors).",
        ),
    ] = False,
) -> None:
    """Check strategies and portfolios and show exactly how each label will route.

    Exit code 0 when everything is valid (warnings allowed), 1 when any file has an error.
    """
    from qkt.errors import ConfigError
    from qkt.validation import Validator, failed_config_report

    env = dict(os.environ)
    try:
        from qkt.config import load_config

        config = load_config(globals_of(ctx).config, env=env)
        validator = Validator(config, strict_flag=strict_brokers, env=env)  # reads the env's
    except ConfigError as exc:  # QKT_STRICT_BROKERS: a value that is no boolean is an error
        report = failed_config_report(exc.diagnostics, strict_brokers, paths, env)
    else:
        report = validator.validate(paths)
        if probe:
            _probe(report, validator)
    _render(report, fmt)
    if not report.ok:
        raise typer.Exit(1)


def _probe(report: ValidationReport, validator: Validator) -> None:
    from qkt.probe import probe_report

    probe_report(report, validator.registry)


def _render(report: ValidationReport, fmt: Format) -> None:
    if fmt is Format.json:
        output.print_json(report.to_json())
        return
    if fmt is Format.github:
        for d in report.all_diagnostics():
            output.echo(output.github_line(d))
        output.echo(_summary(report))
        return
    output.print_diagnostics(report.diagnostics)
    for f in report.files:
        _render_file(f)
    if report.probes:
        _render_probes(report.probes)
    output.echo(_summary(report))


def _render_probes(probes: list[Probe]) -> None:
    rows = []
    for p in probes:
        account = p.account
        rows.append(
            [
                p.profile,
                p.type,
                p.target,
                p.status_text,
                "-" if account is None else str(account.login),
                "-" if account is None else account.server or "-",
                "-" if account is None else account.trade_mode,
                "-" if account is None else account.margin_mode,
            ]
        )
    output.table(
        ["PROFILE", "TYPE", "GATEWAY", "STATUS", "LOGIN", "SERVER", "MODE", "POSITIONS"],
        rows,
        title="probe:",
    )
    symbols = [
        [
            p.profile,
            s.symbol,
            s.broker_symbol,
            "-" if s.tradable is None else "yes" if s.tradable else "NO",
            *("-" if v is None else str(v) for v in (s.min_volume, s.volume_step, s.max_volume)),
            "-" if s.digits is None else str(s.digits),
        ]
        for p in probes
        for s in p.symbols
    ]
    if symbols:
        output.table(
            ["PROFILE", "SYMBOL", "BROKER SYMBOL", "TRADABLE", "MIN", "STEP", "MAX", "DIGITS"],
            symbols,
            title="probed symbols:",
        )


def _render_file(f: FileReport, indent: str = "") -> None:
    status = "ok" if f.ok else "FAILED"
    label = f"{f.kind} {f.name}" if f.name else f.kind
    if f.as_name and f.as_name != f.name:
        label += f" as {f.as_name}"
    output.echo(f"{indent}{f.path}: {label} [{status}]")
    if f.routes:
        rows = [
            [
                r.alias,
                f"{r.label}:{r.symbol}",
                r.timeframe,
                r.profile,
                r.type,
                r.target,
                r.broker_symbol,
                "-" if r.magic is None else str(r.magic),
                r.status,
            ]
            for r in f.routes
        ]
        output.table(
            [
                "ALIAS",
                "STREAM",
                "TF",
                "PROFILE",
                "TYPE",
                "TARGET",
                "BROKER SYMBOL",
                "MAGIC",
                "STATUS",
            ],
            rows,
        )
    output.print_diagnostics(f.diagnostics)
    for child in f.children:
        _render_file(child, indent + "  ")


def _summary(report: ValidationReport) -> str:
    errors, warnings = report.counts()
    n = len(report.files)
    strict = f"strict brokers: {report.strict_summary().text}"
    verdict = "ok" if report.ok else "failed"
    return (
        f"{verdict}: {n} file{'s' if n != 1 else ''}, {errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}; {strict}"
    )
