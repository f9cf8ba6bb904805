"""``qkt validate`` as a library call: parse, check and plan routes for files, portfolios and folders.

Starts nothing and sends nothing. The CLI renders the :class:`ValidationReport` as text, JSON
(schema ``qkt.validate/1``) or GitHub annotations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qkt.diagnostics import Diagnostic, apply_strict, error, has_errors, sort_key
from qkt.routing import (
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


@dataclass
class FileReport:
    path: str
    kind: Literal["strategy", "portfolio"]
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
    try:
        with path.open(encoding="utf-8") as fh:
            head = fh.read(65536)
    except (OSError, UnicodeDecodeError):
        return False
    return re.search(r"^strategies\s*:", head, re.MULTILINE) is not None


def collect_files(paths: Iterable[Path]) -> tuple[list[tuple[Path, str]], list[Diagnostic]]:
    """Expand PATHs into (file, kind) pairs; directories are searched for strategies and portfolios."""
    found: list[tuple[Path, str]] = []
    diags: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.suffix in STRATEGY_SUFFIXES:
                    found.append((child, "strategy"))
                elif child.suffix in PORTFOLIO_SUFFIXES and looks_like_portfolio(child):
                    found.append((child, "portfolio"))
        elif path.suffix in PORTFOLIO_SUFFIXES:
            found.append((path, "portfolio"))
        elif path.exists():
            found.append((path, "strategy"))
        else:
            diags.append(error("path-not-found", f"{path}: no such file or directory"))
    seen: set[Path] = set()
    unique = []
    for p, kind in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((p, kind))
    return unique, diags


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

        if not entry.path.is_file():
            return FileReport(
                str(entry.path),
                "strategy",
                as_name=entry.as_name,
                strict=strict,
                diagnostics=[entry.missing_file_diagnostic()],
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
            report.files.append(
                self.portfolio(path) if kind == "portfolio" else self.strategy(path)
            )
        return report


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


def failed_config_report(diags: Sequence[Diagnostic], strict_flag: bool | None) -> ValidationReport:
    """The report when the configuration itself does not load: nothing else can be checked."""
    mode = StrictMode(bool(strict_flag), "--strict-brokers" if strict_flag else "default")
    return ValidationReport(mode, None, diagnostics=list(diags))
