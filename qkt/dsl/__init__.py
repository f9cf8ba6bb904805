"""The `.qkt` strategy language: ``text -> (Strategy AST, diagnostics)``.

>>> parsed = parse_strategy(open("examples/momentum.qkt").read(), "momentum.qkt")
>>> parsed.ok, parsed.strategy.streams[0].label
(True, 'EXNESS')

Nothing here raises on bad input: every problem is a positioned
:class:`~qkt.diagnostics.Diagnostic`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from qkt.diagnostics import Diagnostic, error, has_errors, sort_key
from qkt.dsl import ast
from qkt.dsl.ast import OrderAction, Strategy

__all__ = [
    "ParsedStrategy",
    "order_actions",
    "parse_strategy",
    "parse_strategy_file",
    "static_quantity",
]


@dataclass(frozen=True, slots=True)
class ParsedStrategy:
    strategy: Strategy | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.strategy is not None and not has_errors(self.diagnostics)


def parse_strategy(text: str, path: str | None = None) -> ParsedStrategy:
    """Tokenize, parse and check one strategy."""
    from qkt.dsl.checker import Checker
    from qkt.dsl.lexer import tokenize
    from qkt.dsl.parser import MAX_DIAGNOSTICS, Parser

    tokens, diags = tokenize(text, path)
    parser = Parser(text, tokens, path)
    strategy = parser.parse()
    diags.extend(parser.diags)
    if strategy is not None:
        try:
            diags.extend(Checker(strategy, path).check())
        except RecursionError:  # e.g. ten thousand terms chained with `+`: refuse, don't crash
            where = {"path": path, "line": strategy.line, "column": strategy.column}
            diags.append(error("too-deep", "expressions are too long or deeply nested", **where))
    if len(diags) > 1:
        diags.sort(key=sort_key)
    if len(diags) > MAX_DIAGNOSTICS:
        diags = [
            *diags[:MAX_DIAGNOSTICS],
            error("too-many-errors", f"stopped after {MAX_DIAGNOSTICS} errors", path=path),
        ]
    return ParsedStrategy(strategy, tuple(diags))


def parse_strategy_file(path: Path | str) -> ParsedStrategy:
    """Read a `.qkt` file (UTF-8) and parse it; unreadable files become a diagnostic."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return ParsedStrategy(
            None, (error("encoding", f"file is not UTF-8 text (byte {exc.start})", path=shown),)
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return ParsedStrategy(
            None, (error("file-unreadable", f"cannot read: {reason}", path=shown),)
        )
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
    """The order quantity when it is known before anything runs (a literal or PARAM arithmetic)."""
    from qkt.dsl.checker import constant_value

    sizing = action.sizing
    if sizing is None or sizing.kind != "qty":
        return None
    values: dict[str, Decimal | bool | str] = {p.name: p.value for p in strategy.params}
    if params:
        values.update(params)
    try:
        return constant_value(sizing.value, values)
    except RecursionError:  # absurdly long arithmetic: not a static size
        return None
