"""What ``qkt deploy`` checks here and sends to the daemon (SPEC §5.4), as a library.

First exactly the checks of ``qkt validate FILE`` (:class:`~qkt.validation.Validator`), with a
``.qkt``'s ``--param`` overrides bound and checked again by :func:`qkt.params.apply_params` and a
``--replay`` file judged whole as ``qkt run`` judges it. Then the body of ``POST /v1/deploy``
(the shape of :class:`qkt.daemon.models.DeployIn`): every child's strategy source itself (never
only its path), its params as written, its portfolio's ``strict_brokers``; the deploy's
strictness (``--strict-brokers/--no-strict-brokers``, else ``$QKT_STRICT_BROKERS`` of this
shell); the replay's rows; and this shell's resolution of each routed profile without secrets
(:mod:`qkt.daemon.wire`), for the daemon to say which fields it resolves otherwise.

Bodies are plain JSON values: a deploy's cold start loads neither pydantic nor the daemon's
models.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qkt.diagnostics import Diagnostic

if TYPE_CHECKING:
    from qkt.config import ResolvedConfig
    from qkt.params import Override
    from qkt.validation import FileReport, ValidationReport, Validator

Json = dict[str, Any]
MAX_REPLAY_BYTES = 200 * 1024 * 1024
"""The largest replay a deploy sends (the daemon takes request bodies up to 256 MiB)."""


def strategy_report(
    validator: Validator, file: Path, as_name: str | None, overrides: Sequence[Override]
) -> tuple[ValidationReport, Json]:
    """``qkt validate FILE`` of one ``.qkt``, with ``overrides`` bound and checked again by
    :func:`qkt.params.apply_params` (the checks ``qkt run --param`` makes) and the deployment
    name ``as_name`` checked; and the overrides as given."""
    from qkt.dsl import parse_strategy_file
    from qkt.params import apply_params

    report = validator.validate([file])
    if not report.files or (not overrides and as_name is None):
        return report, {}
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


def replay_problems(path: Path, report: ValidationReport) -> list[Diagnostic]:
    """The replay file judged whole, as ``qkt run --replay`` judges it."""
    from qkt.errors import QktError
    from qkt.feeds.replay import ReplaySource

    symbols = sorted({r.symbol for f in strategies(report) for r in f.routes})
    try:
        return list(ReplaySource(path).check(symbols).diagnostics)
    except QktError as exc:
        return list(exc.diagnostics)


def strategies(report: ValidationReport) -> list[FileReport]:
    found = []
    for f in report.files:
        found.extend(f.children if f.kind == "portfolio" else [f])
    return found


def request(
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
    routed = {r.profile for f in strategies(report) for r in f.routes}
    profiles = {
        name: profile_fields(config.profiles[name])
        for name in sorted(routed)
        if name in config.profiles
    }
    rows = None
    if replay is not None:
        rows = {"csv": read(replay, MAX_REPLAY_BYTES), "name": str(replay), "speed": pace}
    return {
        "children": children,
        "strict": strict,
        "replay": rows,
        "dry_run": dry_run,
        "profiles": profiles,
    }


def children(file: Path, kind: str, report: ValidationReport, params: Json) -> list[Json]:
    from qkt.portfolio import default_as_name, load_portfolio

    if kind != "portfolio":
        f = report.files[0]
        name = f.as_name or default_as_name(f.name or file.stem)
        return [_child(name, None, str(file), read(file), params, None)]
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
                read(entry.path),
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


def read(path: Path, limit: int | None = None) -> str:
    """A strategy (at most 1 MiB, as everywhere) or a replay (``limit``) as text."""
    from qkt.errors import QktError
    from qkt.textfile import MAX_FILE_BYTES, decode, read_bytes

    data = read_bytes(path, str(path), limit=limit or MAX_FILE_BYTES)
    text = data if isinstance(data, Diagnostic) else decode(data, str(path))
    if not isinstance(text, str):
        raise QktError(text)
    return text.removeprefix("\ufeff")
