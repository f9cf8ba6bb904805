"""``qkt validate`` as a library call: parse, check and plan routes for files, portfolios and folders.

Starts nothing and sends nothing. The CLI renders the :class:`ValidationReport` as text, JSON
(schema ``qkt.validate/1``) or GitHub annotations.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qkt.diagnostics import Diagnostic, apply_strict, error, has_errors, sort_key
from qkt.routing import (
    UNDECIDED,
    OrderSize,
    Route,
    RoutePlan,
    StrictMode,
    StrictSummary,
    check_shared_accounts,
    order_sizes,
    plan_routes,
    resolve_strict,
    strict_env_diagnostics,
    summarize_strict,
)

if TYPE_CHECKING:
    from qkt.brokers.registry import BrokerRegistry
    from qkt.config import ResolvedConfig
    from qkt.dsl import ParsedStrategy
    from qkt.portfolio import PortfolioEntry
    from qkt.probe import Probe

SCHEMA = "qkt.validate/1"
STRATEGY_SUFFIXES = (".qkt",)
PORTFOLIO_SUFFIXES = (".yaml", ".yml")
CONFIG_NAME = "qkt.config.yaml"  # as qkt.config.CONFIG_NAME, without importing the package
Kind = Literal["strategy", "portfolio", "config"]


@dataclass
class FileReport:
    path: str
    kind: Kind
    name: str | None = None
    as_name: str | None = None
    strict: bool = False
    strict_source: str | None = None  # what decided ``strict`` when not the run's own mode
    routes: list[Route] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    children: list[FileReport] = field(default_factory=list)
    orders: list[OrderSize] = field(default_factory=list)  # constant sizes, for --probe

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics) and all(c.ok for c in self.children)

    def all_diagnostics(self) -> list[Diagnostic]:
        out = list(self.diagnostics)
        for child in self.children:
            out.extend(child.all_diagnostics())
        return out

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "kind": self.kind, "name": self.name}
        if self.as_name is not None:
            data["as"] = self.as_name
        data["ok"] = self.ok
        data["strict"] = self.strict
        data["routes"] = [r.to_json() for r in self.routes]
        data["diagnostics"] = [d.to_json() for d in self.diagnostics]
        if self.kind == "portfolio":
            data["children"] = [c.to_json() for c in self.children]
        return data


@dataclass
class ValidationReport:
    strict: StrictMode
    config_path: str | None
    files: list[FileReport] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    probed: bool = False  # --probe: the JSON has "probes", even when no route reaches a venue

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics) and all(f.ok for f in self.files)

    def all_diagnostics(self) -> list[Diagnostic]:
        out = list(self.diagnostics)
        for f in self.files:
            out.extend(f.all_diagnostics())
        return out

    def counts(self) -> tuple[int, int]:
        diags = self.all_diagnostics()
        return (
            sum(d.severity == "error" for d in diags),
            sum(d.severity == "warning" for d in diags),
        )

    def strict_summary(self) -> StrictSummary:
        """What decided strictness: the run's mode, or a portfolio's ``strict_brokers``."""
        files = [
            (f.path, StrictMode(f.strict, f.strict_source) if f.strict_source else self.strict)
            for f in self.files
        ]
        return summarize_strict(self.strict, files)

    def to_json(self) -> dict[str, Any]:
        errors, warnings = self.counts()
        strict = self.strict_summary()
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "strict": strict.on,
            "strict_source": strict.source,
            "config": self.config_path,
            "summary": {"files": len(self.files), "errors": errors, "warnings": warnings},
            "files": [f.to_json() for f in self.files],
            "diagnostics": [d.to_json() for d in self.diagnostics],
            **({"probes": [p.to_json() for p in self.probes]} if self.probed else {}),
        }


def looks_like_portfolio(path: Path) -> bool:
    """Cheap sniff for directory scans: a YAML mapping with a ``strategies`` key at the top."""
    return _sniff(path, str(path)) == "portfolio"


def _sniff(path: Path, shown: str) -> Kind | Diagnostic | None:
    """A YAML file found in a directory: a portfolio, something else (None), or why it cannot
    be read (it might be a portfolio: not checking it must not pass for success)."""
    from qkt.textfile import read_bytes

    head = read_bytes(path, shown, limit=65536, head=True)
    if isinstance(head, Diagnostic):
        return head
    text = head.decode("utf-8", errors="replace")
    return "portfolio" if re.search(r"^strategies\s*:", text, re.MULTILINE) else None


def kind_of_path(path: Path) -> Kind:
    """What a file named on the command line is checked as."""
    if path.name == CONFIG_NAME:
        return "config"
    return "portfolio" if path.suffix in PORTFOLIO_SUFFIXES else "strategy"


def collect_files(paths: Iterable[Path]) -> tuple[list[tuple[Path, Kind]], list[Diagnostic]]:
    """Expand PATHs into (file, kind) pairs; directories are searched for strategies, portfolios
    and configuration files.

    A PATH that does not exist, cannot be read, or is a directory holding nothing to check is an
    error naming it, and so is every file or directory under a PATH that cannot be read.
    """
    from qkt.textfile import os_reason

    found: list[tuple[Path, Kind]] = []
    diags: list[Diagnostic] = []
    for path in paths:
        try:
            is_dir = path.is_dir()
            if not is_dir:
                path.stat()
        except OSError as exc:
            missing = exc.errno in (errno.ENOENT, errno.ENOTDIR)
            diags.append(
                error("path-not-found", "no such file or directory", path=str(path))
                if missing and not path.is_symlink()
                else error("file-unreadable", f"cannot read: {os_reason(exc)}", path=str(path))
            )
            continue
        if not is_dir:
            found.append((path, kind_of_path(path)))
            continue
        inside, problems = _scan(path)
        found.extend(inside)
        diags.extend(problems)
        if not inside and not problems:
            diags.append(
                error(
                    "nothing-to-check",
                    "this directory holds no .qkt strategy, portfolio or qkt.config.yaml",
                    path=str(path),
                    hint="a portfolio is a .yaml file with `strategies:`",
                )
            )
    seen: set[Path] = set()
    unique = []
    for p, kind in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((p, kind))
    return unique, diags


def _scan(root: Path) -> tuple[list[tuple[Path, Kind]], list[Diagnostic]]:
    """Every file to check under ``root`` (symlinked directories are not entered, so the scan
    stays inside it), in path order, and a diagnostic for each directory or candidate file that
    cannot be read."""
    from qkt.textfile import os_reason

    found: list[tuple[Path, Kind]] = []
    diags: list[Diagnostic] = []
    visited: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            info = directory.stat()
            if (info.st_dev, info.st_ino) in visited:
                continue  # a symlink loop, or a directory reached twice
            visited.add((info.st_dev, info.st_ino))
            with os.scandir(directory) as entries:
                names = [(entry.name, _is_dir(entry)) for entry in entries]
        except OSError as exc:
            diags.append(
                error("file-unreadable", f"cannot read: {os_reason(exc)}", path=str(directory))
            )
            continue
        for name, is_dir in names:
            child = directory / name
            if is_dir:
                pending.append(child)
            elif name == CONFIG_NAME:
                found.append((child, "config"))
            elif child.suffix in STRATEGY_SUFFIXES:
                found.append((child, "strategy"))
            elif child.suffix in PORTFOLIO_SUFFIXES:
                sniffed = _sniff(child, str(child))
                if isinstance(sniffed, Diagnostic):
                    diags.append(sniffed)
                elif sniffed is not None:
                    found.append((child, sniffed))
    found.sort(key=lambda item: item[0])
    diags.sort(key=lambda d: d.path or "")
    return found, diags


def _why_unreadable(path: Path) -> str | None:
    """None when ``path`` is a file qkt reads; "" when there is nothing there; else why not."""
    from qkt.textfile import check

    try:
        path.stat()
    except FileNotFoundError:
        return ""
    except OSError:
        pass
    problem = check(path, str(path))
    return None if problem is None else problem.message.removeprefix("cannot read: ")


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


class Validator:
    """Validates files against one configuration; reusable across many files (benchmarks, CI)."""

    def __init__(
        self,
        config: ResolvedConfig,
        *,
        strict_flag: bool | None = None,
        env: Mapping[str, str] | None = None,
        registry: BrokerRegistry | None = None,
    ) -> None:
        from qkt.brokers.registry import BrokerRegistry

        self.config = config
        self.env = dict(env or {})
        self.strict_flag = strict_flag
        self.strict = resolve_strict(
            strict_flag, self.env, config.strict_brokers, config.strict_brokers_source
        )
        self.registry = registry or BrokerRegistry.from_config(config)

    def global_diagnostics(self) -> list[Diagnostic]:
        diags = [*self.config.diagnostics, *strict_env_diagnostics(self.env)]
        return apply_strict(diags, self.strict.on)

    def strategy(
        self,
        path: Path,
        *,
        strict: bool | None = None,
        params: Mapping[str, Any] | None = None,
        as_name: str | None = None,
        extra: Sequence[Diagnostic] = (),
        parsed: ParsedStrategy | None = None,
        as_where: Mapping[str, Any] | None = None,
    ) -> FileReport:
        """One strategy; ``as_where`` is where its deployment name was written (a portfolio's
        ``as:``), when it is not the strategy's own name."""
        from qkt.dsl import parse_strategy_file

        on = self.strict.on if strict is None else strict
        if parsed is None:
            parsed = parse_strategy_file(path)
        report = FileReport(str(path), "strategy", as_name=as_name, strict=on)
        report.diagnostics.extend(parsed.diagnostics)
        report.diagnostics.extend(extra)
        if parsed.strategy is not None:
            strategy = parsed.strategy
            report.name = strategy.name
            plan = plan_routes(strategy, self.registry, on, path=str(path), params=params)
            report.routes = list(plan.routes)
            report.orders = list(order_sizes(strategy, params))
            report.diagnostics.extend(plan.diagnostics)
            own = {"path": str(path), "line": strategy.line, "column": strategy.column}
            if as_where is not None and as_name:
                report.diagnostics.extend(name_checks("deployment", as_name, as_where))
            else:
                report.diagnostics.extend(name_checks("strategy", strategy.name, own))
        report.diagnostics.sort(key=sort_key)
        return report

    def portfolio(self, path: Path) -> FileReport:
        from qkt.portfolio import load_portfolio

        portfolio, diags = load_portfolio(path)
        report = FileReport(str(path), "portfolio", strict=self.strict.on, diagnostics=list(diags))
        if portfolio is None:
            return report
        report.name = portfolio.name
        strict = resolve_strict(
            self.strict_flag,
            self.env,
            self.config.strict_brokers,
            self.config.strict_brokers_source,
            portfolio.strict_brokers,
            f"portfolio:{path}",
        )
        report.strict, report.strict_source = strict.on, strict.source
        names: dict[str, PortfolioEntry] = {}
        for entry in portfolio.entries:
            child = self._child(entry, strict.on)
            report.children.append(child)
            if child.as_name is None:
                continue
            first = names.setdefault(child.as_name, entry)
            if first is not entry and entry.as_name is None:
                report.diagnostics.append(
                    error(
                        "duplicate-name",
                        f"two strategies would deploy as `{child.as_name}` (first on line "
                        f"{first.line}); give this one a different `as:`",
                        path=str(path),
                        line=entry.line,
                        column=entry.column,
                    )
                )
        plans = [(c.as_name or c.name or c.path, _as_plan(c)) for c in report.children if c.ok]
        shared = check_shared_accounts(
            plans, allowed=portfolio.allow_shared_symbols, path=str(path), line=portfolio.line
        )
        report.diagnostics.extend(apply_strict(shared, strict.on))
        report.diagnostics.sort(key=sort_key)
        return report

    def _child(self, entry: PortfolioEntry, strict: bool) -> FileReport:
        from qkt.dsl import parse_strategy_file
        from qkt.portfolio import NAME_PATTERN, bind_params, default_as_name

        why = _why_unreadable(entry.path)
        if why is not None:
            problem = entry.missing_file_diagnostic()
            if why:
                problem = error(
                    "strategy-unreadable",
                    f"strategy file `{entry.file}` cannot be read: {why}",
                    path=entry.source,
                    line=entry.line,
                    column=entry.column,
                )
            return FileReport(
                str(entry.path),
                "strategy",
                as_name=entry.as_name,
                strict=strict,
                diagnostics=[problem],
            )
        parsed = parse_strategy_file(entry.path)
        params: Mapping[str, Any] = {}
        extra: list[Diagnostic] = []
        as_name = entry.as_name
        if parsed.strategy is not None:
            params, extra = bind_params(parsed.strategy, entry)
            if as_name is None:
                as_name = default_as_name(parsed.strategy.name)
                if NAME_PATTERN.fullmatch(as_name) is None:
                    extra.append(
                        error(
                            "bad-name",
                            f"strategy name `{parsed.strategy.name}` is not a valid deployment "
                            "name ([a-z0-9][a-z0-9_-]*)",
                            path=entry.source,
                            line=entry.line,
                            column=entry.column,
                            hint="give the entry an `as:`",
                        )
                    )
        given = None
        if entry.as_name is not None:
            given = {"path": entry.source, "line": entry.line, "column": entry.column}
        return self.strategy(
            entry.path,
            strict=strict,
            params=params,
            as_name=as_name,
            extra=extra,
            parsed=parsed,
            as_where=given,
        )

    def validate(self, paths: Iterable[Path]) -> ValidationReport:
        report = ValidationReport(
            self.strict,
            self.config.display,
            diagnostics=self.global_diagnostics(),
        )
        files, diags = collect_files(paths)
        report.diagnostics.extend(diags)
        for path, kind in files:
            if kind == "config":
                report.files.append(config_report(path, self.env, self.strict_flag, self.config))
            elif kind == "portfolio":
                report.files.append(self.portfolio(path))
            else:
                report.files.append(self.strategy(path))
        _report_once(report)
        return report


def config_report(
    path: Path,
    env: Mapping[str, str],
    strict_flag: bool | None,
    active: ResolvedConfig | None = None,
) -> FileReport:
    """A configuration file given as a PATH, validated as a configuration (``kind: config``):
    its errors, and its warnings (errors when strict). ``active`` is the loaded configuration,
    reused when ``path`` is that file."""
    from qkt.config import load_config
    from qkt.errors import ConfigError
    from qkt.textfile import check

    report = FileReport(str(path), "config")
    if active is not None and active.path is not None and _same_file(active.path, path):
        config = active
    else:
        refused = check(path, str(path))  # a FIFO, a device, too large: before anything reads
        if refused is not None:
            report.diagnostics = [refused]
            return report
        try:
            config = load_config(path, env=env)
        except ConfigError as exc:
            report.diagnostics = sorted(exc.diagnostics, key=sort_key)
            return report
    try:
        strict = resolve_strict(
            strict_flag, env, config.strict_brokers, config.strict_brokers_source
        ).on
    except ConfigError:  # a bad $QKT_STRICT_BROKERS: reported once, for the whole run
        strict = bool(strict_flag)
    report.strict = strict
    report.diagnostics = sorted(apply_strict(config.diagnostics, strict), key=sort_key)
    return report


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _report_once(report: ValidationReport) -> None:
    """A problem a config file's own report shows (the loaded config given as a PATH) is not
    repeated among the run's diagnostics."""
    shown = {d for f in report.files if f.kind == "config" for d in f.diagnostics}
    if shown:
        report.diagnostics = [d for d in report.diagnostics if d not in shown]


def name_checks(what: str, name: str, where: Mapping[str, Any]) -> list[Diagnostic]:
    """A session name too long to fit whole in the gateway's client ids (an ``info``: orders
    still go out, under a shortened name that stays unique)."""
    from qkt.brokers.tags import MAX_CLIENT_ID, shortened

    if not shortened(name):
        return []
    shown = name if len(name) <= 24 else name[:21] + "..."
    return [
        Diagnostic(
            "info",
            "name-shortened",
            f"{what} name `{shown}` ({len(name)} characters) does not fit whole in the gateway's "
            f"{MAX_CLIENT_ID}-character client ids: orders still trade, with a shortened, "
            "unique client id",
            hint="a shorter name keeps client ids readable",
            **where,
        )
    ]


def _as_plan(report: FileReport) -> RoutePlan:
    return RoutePlan(report.name or "", tuple(report.routes), (), report.strict)


def failed_config_report(
    diags: Sequence[Diagnostic],
    strict_flag: bool | None,
    paths: Iterable[Path] = (),
    env: Mapping[str, str] | None = None,
) -> ValidationReport:
    """The report when the configuration itself does not load: strategies and portfolios
    cannot be checked, but PATHs that are configuration files are (and missing, unreadable or
    empty PATHs are still errors)."""
    if strict_flag is None:  # what would decide (env, config) is what failed: nothing decided
        mode = StrictMode(False, UNDECIDED)
    else:
        mode = StrictMode(strict_flag, "--strict-brokers" if strict_flag else "--no-strict-brokers")
    report = ValidationReport(mode, None, diagnostics=list(diags))
    files, problems = collect_files(paths)
    report.diagnostics.extend(problems)
    for path, kind in files:
        if kind == "config":
            report.files.append(config_report(path, env or {}, strict_flag))
    _report_once(report)
    return report
