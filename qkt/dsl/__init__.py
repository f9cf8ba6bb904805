"""The `.qkt` strategy language: ``text -> (Strategy AST, diagnostics)``.

>>> parsed = parse_strategy(open("examples/momentum.qkt").read(), "momentum.qkt")
>>> parsed.ok, parsed.strategy.streams[0].label
(True, 'EXNESS')

Nothing here raises on bad input: every problem is a positioned
:class:`~qkt.diagnostics.Diagnostic`. The language is described in ``docs/language.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from qkt.diagnostics import Diagnostic, Severity, error, has_errors, sort_key
from qkt.dsl import ast
from qkt.dsl.ast import OrderAction, Strategy
from qkt.dsl.checker import Checker
from qkt.dsl.lexer import tokenize
from qkt.dsl.parser import MAX_DIAGNOSTICS, Parser
from qkt.dsl.static import ParamValue, constant_value

__all__ = [
    "ParsedStrategy",
    "order_actions",
    "parse_strategy",
    "parse_strategy_file",
    "static_quantity",
]


@dataclass(frozen=True, slots=True)
class ParsedStrategy:
    """The best-effort syntax tree (None when the file is too broken) and every diagnostic."""

    strategy: Strategy | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.strategy is not None and not has_errors(self.diagnostics)


def parse_strategy(text: str, path: str | None = None) -> ParsedStrategy:
    """Tokenize, parse and check one strategy. Never raises."""
    try:
        tokens, diags = tokenize(text, path)
        parser = Parser(text, tokens, path)
        strategy = parser.parse()
        diags.extend(parser.diags)
        if strategy is not None:
            diags.extend(Checker(strategy, path, frozenset(parser.broken)).check())
    except RecursionError:  # pragma: no cover - the parser caps nesting well below the limit
        return _failed(path, "too-deep", "the file nests too deeply to be read")
    except Exception as exc:  # pragma: no cover - a bug: still report it as a diagnostic
        return _failed(path, "internal-error", f"qkt could not read this file ({exc!r})")
    if len(diags) > 1:
        diags.sort(key=sort_key)
    if len(diags) > MAX_DIAGNOSTICS:
        note: Severity = "info"
        diags = [
            *diags[:MAX_DIAGNOSTICS],
            Diagnostic(note, "too-many-errors", f"stopped after {MAX_DIAGNOSTICS} errors", path),
        ]
    return ParsedStrategy(strategy, tuple(diags))


def _failed(path: str | None, code: str, message: str) -> ParsedStrategy:
    return ParsedStrategy(None, (error(code, message, path=path, line=1, column=1),))


def parse_strategy_file(path: Path | str) -> ParsedStrategy:
    """Read a `.qkt` file (UTF-8) and parse it; unreadable files become a diagnostic.

    Only a regular file of at most 1 MiB is read (:mod:`qkt.textfile`): a FIFO or a device is
    refused before reading, and text that is not UTF-8 is an error at its first bad byte."""
    from qkt.textfile import read_text

    shown = str(path)
    text = read_text(path, shown)
    if isinstance(text, Diagnostic):
        return ParsedStrategy(None, (text,))
    return parse_strategy(text, shown)


def order_actions(strategy: Strategy) -> tuple[OrderAction, ...]:
    """Every BUY/SELL of the strategy, in file order."""
    return tuple(
        action
        for rule in strategy.rules
        for action in rule.actions
        if isinstance(action, ast.OrderAction)
    )


def static_quantity(
    strategy: Strategy,
    action: OrderAction,
    params: Mapping[str, Decimal | bool | str] | None = None,
) -> Decimal | None:
    """The order quantity when it is known before anything runs, else None.

    Known: a quantity sizing (not PCT or USD) that is a literal, a PARAM, a constant LET, or
    arithmetic of those. ``params`` overrides PARAM defaults by name.
    """
    sizing = action.sizing
    if sizing is None or sizing.kind != "qty":
        return None
    values: dict[str, ParamValue] = {p.name: p.value for p in reversed(strategy.params)}
    for name, value in (params or {}).items():
        values[name] = _as_param_value(value)
    lets = {let.name: let.expr for let in reversed(strategy.lets)}
    return constant_value(sizing.value, values, lets)


def _as_param_value(value: object) -> ParamValue:
    """Portfolio overrides may arrive as int/float from YAML: numbers become exact Decimals."""
    if isinstance(value, bool | str | Decimal):
        return value
    if isinstance(value, int | float):
        try:
            return Decimal(str(value))
        except InvalidOperation:  # pragma: no cover - str() of an int/float always parses
            return str(value)
    return str(value)
