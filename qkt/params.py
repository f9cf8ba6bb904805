"""PARAM overrides, checked the same way wherever they enter: a portfolio's ``params:``, ``qkt run
--param NAME=VALUE`` and ``qkt deploy --param``.

:func:`apply_params` is the one entry point:

1. **bind** each override to a declared PARAM: an unknown name is ``unknown-param`` (with a
   suggestion); a value must have the type of the PARAM's default (``param-type``: a number,
   true/false or a string), and a number must be finite (``param-value``);
2. **check again**: the strategy goes through the checker ``qkt validate`` uses, with the bound
   values, so whatever the overrides break (a period of 0 or 2.5, a negative or absurd size, a
   stop-loss percent of 100) is a diagnostic at the PARAM's use in the ``.qkt`` file, with a hint
   naming the override.

Nothing here reads files or starts anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from qkt.diagnostics import Diagnostic, did_you_mean, error
from qkt.dsl import ast
from qkt.dsl.checker import Checker
from qkt.dsl.static import ParamValue, walk
from qkt.limits import shown

__all__ = ["Override", "ParamValue", "apply_params", "bind_params", "check_params", "cli_override"]

_KIND_WORDS = {"number": "a number", "bool": "true/false", "string": "a string"}


@dataclass(frozen=True, slots=True)
class Override:
    """One PARAM override as written: ``value`` is a bool, int, float, Decimal or str; ``origin``
    names it in messages (``--param fast=0``, ``book.yaml:5``); ``path``/``line``/``column`` is
    where it was written, when that is a file."""

    name: str
    value: Any
    origin: str
    path: str | None = None
    line: int | None = None
    column: int | None = None


def cli_override(item: str) -> Override | None:
    """``NAME=VALUE`` from a command line, or None when it is not of that shape.

    The value is read as YAML would read a plain scalar, so a portfolio and the command line agree:
    ``true``/``false`` (any case) are booleans, a decimal number is a number, anything else is a
    string; quotes (``mode="5"``) make a string of anything."""
    name, sep, raw = item.partition("=")
    name = name.strip()
    if not sep or not name:
        return None
    return Override(name, _cli_value(raw), f"--param {item}")


def _cli_value(raw: str) -> bool | Decimal | str:
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return Decimal(text)
    except InvalidOperation:
        return raw


def apply_params(
    strategy: ast.Strategy, overrides: Sequence[Override], *, path: str | None
) -> tuple[dict[str, ParamValue], list[Diagnostic]]:
    """Every PARAM's value with ``overrides`` applied, and every problem they cause (errors
    only): the binding's, then the checker's at the PARAMs' uses in ``path``."""
    values, diags = bind_params(strategy, overrides)
    diags.extend(check_params(strategy, values, overrides, path=path))
    return values, diags


def bind_params(
    strategy: ast.Strategy, overrides: Iterable[Override]
) -> tuple[dict[str, ParamValue], list[Diagnostic]]:
    """Bind overrides to the declared PARAMs by name and type; a bad one keeps the default."""
    declared = {p.name: p for p in strategy.params}
    values: dict[str, ParamValue] = {p.name: p.value for p in strategy.params}
    diags: list[Diagnostic] = []
    for override in overrides:
        name, raw = override.name, override.value
        where = {"path": override.path, "line": override.line, "column": override.column}
        said = f"{override.origin}: " if override.line is None else ""
        param = declared.get(name)
        if param is None:
            known = ", ".join(f"`{p}`" for p in declared) or "none"
            diags.append(
                error(
                    "unknown-param",
                    f"{said}`{strategy.name}` has no PARAM `{name}` (declared: {known})",
                    hint=did_you_mean(str(name), list(declared)),
                    **where,
                )
            )
            continue
        value = _coerce(raw, param.kind)
        if value is None:
            diags.append(
                error(
                    "param-type",
                    f"{said}PARAM `{name}` of `{strategy.name}` is {_KIND_WORDS[param.kind]} "
                    f"(default {_show(param.value)}), got {_given(raw)}",
                    **where,
                )
            )
            continue
        if isinstance(value, Decimal) and not value.is_finite():
            diags.append(
                error(
                    "param-value",
                    f"{said}PARAM `{name}` of `{strategy.name}` must be a finite number, "
                    f"got {shown(value)}",
                    **where,
                )
            )
            continue
        values[name] = value
    return values, diags


def check_params(
    strategy: ast.Strategy,
    values: Mapping[str, ParamValue],
    overrides: Sequence[Override] = (),
    *,
    path: str | None,
) -> list[Diagnostic]:
    """The diagnostics the checker gives with ``values`` that it does not give with the
    defaults, each with a hint naming the overrides used on its line."""
    defaults = {p.name: p.value for p in strategy.params}
    changed = {n for n, v in values.items() if n in defaults and not _same(v, defaults[n])}
    if not changed:
        return []
    before = {_key(d) for d in Checker(strategy, path).check()}
    found = [d for d in Checker(strategy, path, params=values).check() if _key(d) not in before]
    if not found:
        return []
    origins = {o.name: o.origin for o in overrides}
    uses = _uses(strategy, changed)
    out = []
    for d in found:
        # The override used where the diagnostic points, else those used on its line, else all.
        names = (
            [n for n in sorted(changed) if (d.line, d.column) in uses.get(n, ())]
            or [n for n in sorted(changed) if any(d.line == u[0] for u in uses.get(n, ()))]
            or sorted(changed)
        )
        said = "; ".join(
            f"`{n}` is {_show(values[n])} here, from {origins.get(n, 'an override')}" for n in names
        )
        out.append(replace(d, hint=f"{d.hint}; {said}" if d.hint else said))
    return out


def _key(d: Diagnostic) -> tuple[str, int | None, int | None, str]:
    return (d.code, d.line, d.column, d.message)


def _same(a: ParamValue, b: ParamValue) -> bool:
    return type(a) is type(b) and a == b


def _uses(strategy: ast.Strategy, names: set[str]) -> dict[str, set[tuple[int, int]]]:
    """Where each of ``names`` is used (in LETs, conditions, sizes and legs): line, column."""
    exprs: list[ast.Expr] = [let.expr for let in strategy.lets]
    for rule in strategy.rules:
        exprs.append(rule.condition)
        for action in rule.actions:
            if isinstance(action, ast.OrderAction):
                if action.sizing is not None:
                    exprs.append(action.sizing.value)
                bracket = action.bracket
                for leg in (bracket.stop_loss, bracket.take_profit) if bracket else ():
                    if leg is not None:
                        exprs.append(leg.value)
    found: dict[str, set[tuple[int, int]]] = {}
    for expr in exprs:
        for node in walk(expr):
            if isinstance(node, ast.Name) and node.name in names:
                found.setdefault(node.name, set()).add((node.line, node.column))
    return found


def _coerce(value: Any, kind: str) -> ParamValue | None:
    """``value`` as a PARAM of ``kind``, or None when the types differ (bool is not a number)."""
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if kind == "string":
        return value if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:  # pragma: no cover - str() of an int/float always parses
        return None


def _show(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return shown(value) if isinstance(value, Decimal) else repr(value)


def _given(value: Any) -> str:
    if isinstance(value, bool | Decimal | str):
        return _show(value)
    return repr(value)
