"""Portfolio files (SPEC §6.2): many strategies deployed together under one name.

```yaml
name: fx-book
strict_brokers: true
allow_shared_symbols: false
strategies:
  - file: momentum.qkt
    as: eur-momentum
    params: {fast: 9, slow: 21}
```

The file is read with key positions so every error names its YAML line; ``file`` is relative to the
portfolio. Nothing here starts anything: the deployer (daemon) consumes a loaded :class:`Portfolio`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qkt.diagnostics import Diagnostic, did_you_mean, error
from qkt.yamlsrc import KeyPath, YamlDoc, read_yaml

if TYPE_CHECKING:
    from qkt.dsl.ast import Strategy
    from qkt.params import Override

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
MAX_STRATEGIES = 1000
"""The most strategies one portfolio deploys: checking each costs a parse and a route plan."""
TOP_KEYS = ("name", "strict_brokers", "allow_shared_symbols", "strategies")
ENTRY_KEYS = ("file", "as", "params")
ParamValue = Decimal | bool | str


@dataclass(frozen=True, slots=True)
class PortfolioEntry:
    """One strategy of a portfolio, as written (``file`` relative to the portfolio)."""

    file: str
    path: Path
    as_name: str | None
    params: Mapping[str, Any]
    source: str
    line: int | None
    column: int | None
    param_positions: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def missing_file_diagnostic(self) -> Diagnostic:
        return error(
            "strategy-not-found",
            f"strategy file `{self.file}` does not exist (looked for {self.path})",
            path=self.source,
            line=self.line,
            column=self.column,
        )


@dataclass(frozen=True, slots=True)
class Portfolio:
    name: str
    path: Path
    strict_brokers: bool | None
    allow_shared_symbols: bool
    entries: tuple[PortfolioEntry, ...]
    line: int | None = None

    def deployment_name(self, as_name: str) -> str:
        """The daemon-wide name of one child: ``<portfolio>/<as>``."""
        return f"{self.name}/{as_name}"


class _Reader:
    """Checks the plain YAML data field by field, collecting positioned diagnostics."""

    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.diags: list[Diagnostic] = []

    def fail(self, code: str, message: str, keypath: KeyPath, hint: str | None = None) -> None:
        self.diags.append(self.doc.diag(code, message, keypath, hint=hint))

    def unknown_keys(self, data: Mapping[str, Any], allowed: tuple[str, ...], at: KeyPath) -> None:
        for key in data:
            if key not in allowed:
                where = "portfolio" if not at else "strategy entry"
                self.fail(
                    "unknown-key",
                    f"unknown {where} key `{key}` (allowed: {', '.join(allowed)})",
                    (*at, key),
                    did_you_mean(str(key), allowed),
                )

    def boolean(self, data: Mapping[str, Any], key: str) -> bool | None:
        value = data.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.fail("bad-value", f"`{key}` must be true or false, got {value!r}", (key,))
        return None

    def deployment_name(self, value: Any, keypath: KeyPath, what: str) -> str | None:
        if not isinstance(value, str) or NAME_PATTERN.fullmatch(value) is None:
            self.fail(
                "bad-name",
                f"{what} {value!r} must match [a-z0-9][a-z0-9_-]* (lowercase, digits, - and _)",
                keypath,
            )
            return None
        return value

    def entry(self, raw: Any, index: int, base: Path) -> PortfolioEntry | None:
        at: KeyPath = ("strategies", index)
        if not isinstance(raw, dict):
            self.fail("bad-value", "a strategy entry must be a mapping with `file:`", at)
            return None
        self.unknown_keys(raw, ENTRY_KEYS, at)
        file = raw.get("file")
        if not isinstance(file, str) or not file.strip():
            self.fail("missing-field", "strategy entry needs `file:` (a .qkt path)", at)
            return None
        as_name = None
        if raw.get("as") is not None:
            as_name = self.deployment_name(raw["as"], (*at, "as"), "deployment name")
        params = raw.get("params") or {}
        positions: dict[str, tuple[int | None, int | None]] = {}
        if not isinstance(params, dict):
            self.fail(
                "bad-value", "`params` must be a mapping of PARAM name to value", (*at, "params")
            )
            params = {}
        for name, value in params.items():
            positions[name] = self.doc.where((*at, "params", name))
            if not isinstance(value, (bool, int, float, str)):
                self.fail(
                    "bad-value",
                    f"param `{name}` must be a number, true/false or a string",
                    (*at, "params", name),
                )
        line, column = self.doc.where(("strategies", index))
        return PortfolioEntry(
            file=file,
            path=(base / file) if not Path(file).is_absolute() else Path(file),
            as_name=as_name,
            params=params,
            source=self.doc.path,
            line=line,
            column=column,
            param_positions=positions,
        )


def load_portfolio(path: Path) -> tuple[Portfolio | None, list[Diagnostic]]:
    """Read a portfolio file; ``None`` when it is too broken to describe a deployment."""
    doc, diags = read_yaml(str(path))
    if doc is None:
        return None, diags
    reader = _Reader(doc)
    reader.diags.extend(diags)
    data = doc.data
    if not isinstance(data, dict):
        reader.fail(
            "bad-portfolio", "a portfolio file is a mapping with `name:` and `strategies:`", ()
        )
        return None, reader.diags
    reader.unknown_keys(data, TOP_KEYS, ())
    name = None
    if "name" not in data:
        reader.fail("missing-field", "portfolio needs `name:` (its deployment name)", ())
    else:
        name = reader.deployment_name(data["name"], ("name",), "portfolio name")
    strict = reader.boolean(data, "strict_brokers")
    shared = reader.boolean(data, "allow_shared_symbols")
    raw_entries = data.get("strategies")
    entries: list[PortfolioEntry] = []
    if not isinstance(raw_entries, list) or not raw_entries:
        reader.fail(
            "missing-field", "portfolio needs `strategies:`, a list of strategy entries", ()
        )
    elif len(raw_entries) > MAX_STRATEGIES:
        reader.fail(
            "too-many-strategies",
            f"a portfolio deploys at most {MAX_STRATEGIES:,} strategies, this one lists "
            f"{len(raw_entries):,}",
            ("strategies",),
            hint="split it into several portfolios",
        )
        return None, reader.diags
    else:
        for index, raw in enumerate(raw_entries):
            entry = reader.entry(raw, index, path.parent)
            if entry is not None:
                entries.append(entry)
    _check_unique_as(reader, entries)
    portfolio = Portfolio(
        name=name or "",
        path=path,
        strict_brokers=strict,
        allow_shared_symbols=bool(shared),
        entries=tuple(entries),
        line=doc.line(("strategies",)),
    )
    return portfolio, reader.diags


def _check_unique_as(reader: _Reader, entries: list[PortfolioEntry]) -> None:
    seen: dict[str, PortfolioEntry] = {}
    for index, entry in enumerate(entries):
        if entry.as_name is None:
            continue
        first = seen.setdefault(entry.as_name, entry)
        if first is not entry:
            reader.fail(
                "duplicate-name",
                f"deployment name `{entry.as_name}` is used twice (first on line {first.line})",
                ("strategies", index, "as"),
            )


def default_as_name(strategy_name: str) -> str:
    """A strategy deployed without ``as:`` is named after the strategy, lowercased."""
    return strategy_name.lower()


def entry_overrides(entry: PortfolioEntry) -> list[Override]:
    """An entry's ``params:`` as overrides, each positioned at its YAML line."""
    from qkt.params import Override

    out = []
    for name, raw in entry.params.items():
        line, column = entry.param_positions.get(name, (entry.line, entry.column))
        origin = f"{entry.source}:{line}" if line is not None else entry.source
        out.append(Override(str(name), raw, origin, entry.source, line, column))
    return out


def bind_params(
    strategy: Strategy, entry: PortfolioEntry
) -> tuple[dict[str, ParamValue], list[Diagnostic]]:
    """Apply an entry's PARAM overrides with :func:`qkt.params.apply_params`, the checks every
    override gets (``qkt run --param`` and ``qkt deploy`` too): unknown names and wrong types are
    errors at their YAML line, and what the values break in the strategy at its use there."""
    from qkt.params import apply_params

    return apply_params(strategy, entry_overrides(entry), path=str(entry.path))
