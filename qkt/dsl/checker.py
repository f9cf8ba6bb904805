"""Semantic checks of a parsed strategy: names, indicators, argument kinds, periods, percents.

Every problem is an error diagnostic with a position and, where one is close, a suggestion.
Expression kinds are inferred as ``num``, ``bool`` or ``str``; ``None`` means unknown after an
earlier error and silences follow-on errors about the same expression.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal

from qkt.diagnostics import Diagnostic, did_you_mean, error, sort_key
from qkt.dsl import ast
from qkt.dsl.indicators import INDICATORS
from qkt.dsl.kinds import KINDS, WORDS
from qkt.dsl.lets import let_order
from qkt.dsl.static import ParamValue, Undefined, fold, render, start_of
from qkt.limits import (
    MAX_NOTIONAL,
    MAX_PERCENT,
    MAX_PRICE,
    MAX_QUANTITY,
    MIN_QUANTITY,
    amount,
    shown,
)

Kind = str | None
_MAX_SUGGESTIONS = 50  # as many as a file's diagnostics are cut at
_PARAM_KINDS = {"number": "num", "bool": "bool", "string": "str"}


class Checker:
    """``params`` overrides PARAM defaults by name (values already bound to the PARAMs' types):
    every check that uses a value known before the run then judges the overridden one."""

    def __init__(
        self,
        strategy: ast.Strategy,
        path: str | None,
        broken: frozenset[str] = frozenset(),
        params: Mapping[str, ParamValue] | None = None,
    ) -> None:
        self.s = strategy
        self.path = path
        self.broken = broken  # declared with a syntax error (reported): uses are not errors
        self.diags: list[Diagnostic] = []
        self.aliases: dict[str, ast.Stream] = {}
        for stream in strategy.streams:
            self.aliases.setdefault(stream.alias, stream)
        self.params: dict[str, ast.Param] = {}
        for param in strategy.params:
            self.params.setdefault(param.name, param)
        self.lets: dict[str, ast.Let] = {}
        for let in strategy.lets:
            self.lets.setdefault(let.name, let)
        self.values: dict[str, ParamValue] = {n: p.value for n, p in self.params.items()}
        if params:
            self.values.update((n, v) for n, v in params.items() if n in self.params)
        self.let_exprs = {name: let.expr for name, let in self.lets.items()}
        self.let_kinds: dict[str, Kind] = {}
        self.let_streams: dict[str, frozenset[str]] = {}
        self.refs: set[str] = set()  # stream aliases the expression being checked depends on
        # diagnostic index -> (name, pools, hint without a match): see suggest()
        self.pending: dict[int, tuple[str, tuple[Iterable[str], ...], str | None]] = {}

    def err(self, code: str, message: str, line: int, column: int, hint: str | None = None) -> None:
        self.diags.append(error(code, message, path=self.path, line=line, column=column, hint=hint))

    # ------------------------------------------------------------ top level
    def check(self) -> list[Diagnostic]:
        s = self.s
        if not s.streams and not self.broken:
            self.err(
                "missing-symbols",
                "the strategy declares no streams",
                s.line,
                s.column,
                "add `SYMBOLS` and a line such as `eur = EXNESS:EURUSD EVERY 1m`",
            )
        self.check_names()
        shadowed = self.aliases.keys() | self.params.keys()
        order, cyclic = let_order(s.lets, shadowed, self.err)
        for name in order:
            self.refs = set()
            self.let_kinds[name] = self.kind(self.lets[name].expr)
            self.let_streams[name] = frozenset(self.refs)
        for let in s.lets:  # LETs in cycles and duplicates: their other mistakes still count
            if let.name in cyclic or self.lets[let.name] is not let:
                self.kind(let.expr)
        for rule in s.rules:
            self.check_rule(rule)
        self._suggestions()
        return self.diags

    def check_names(self) -> None:
        seen: dict[str, tuple[str, int]] = {}
        for st in self.s.streams:
            if st.alias in seen:
                self.err(
                    "duplicate-alias",
                    f"stream alias `{st.alias}` is already declared on line {seen[st.alias][1]}",
                    st.line,
                    st.column,
                )
            else:
                seen[st.alias] = ("stream", st.line)
        items: list[ast.Param | ast.Let] = [*self.s.params, *self.s.lets]
        for item in sorted(items, key=lambda x: (x.line, x.column)):
            what = "PARAM" if isinstance(item, ast.Param) else "LET"
            if item.name in seen:
                kind, line = seen[item.name]
                self.err(
                    "duplicate-name",
                    f"{what} `{item.name}` reuses the name of the {kind} on line {line}",
                    item.line,
                    item.column,
                )
            else:
                seen[item.name] = (what, item.line)

    def check_rule(self, rule: ast.Rule) -> None:
        before = len(self.diags)
        self.refs = set()
        cond = rule.condition
        kind = self.kind(cond)
        if kind is not None and kind != "bool":
            self.err(
                "type-mismatch",
                f"a WHEN condition must be true or false, got {WORDS[kind]}",
                *start_of(cond),
                "compare it, e.g. `x > 0`",
            )
        elif len(self.diags) == before and not self.refs:
            self.err(
                "rule-without-stream",
                "this rule's condition references no stream, so no bar close would evaluate it",
                rule.line,
                rule.column,
                "use a stream in the condition, e.g. `eur.close > 0 AND ...`",
            )
        for action in rule.actions:
            if isinstance(action, ast.OrderAction):
                self.check_order(action)
            elif isinstance(action, ast.Close):
                self.check_alias(action.alias, action.line, action.alias_column)

    # ------------------------------------------------------------ actions
    def check_order(self, action: ast.OrderAction) -> None:
        self.check_alias(action.alias, action.line, action.alias_column)
        sizing = action.sizing
        if sizing is not None:
            value = self.number(sizing.value, "SIZING")
            if value is not None:
                self.check_size(sizing, value)
        if action.bracket is not None:
            for leg in (action.bracket.stop_loss, action.bracket.take_profit):
                if leg is not None:
                    self.check_leg(leg)

    def check_size(self, sizing: ast.Sizing, value: Decimal) -> None:
        where = start_of(sizing.value)
        if value <= 0:
            self.err("bad-size", f"SIZING must be positive, got {shown(value)}", *where)
        elif sizing.kind == "qty" and value < MIN_QUANTITY:
            self.err(
                "bad-size",
                f"SIZING {shown(value)} is below the smallest order size, {shown(MIN_QUANTITY)}",
                *where,
            )
        elif sizing.kind == "qty" and value > MAX_QUANTITY:
            self.err(
                "bad-size",
                f"SIZING {shown(value)} is above the largest order size, {amount(MAX_QUANTITY)}",
                *where,
            )
        elif sizing.kind == "usd" and value > MAX_NOTIONAL:
            self.err(
                "bad-size",
                f"SIZING {shown(value)} USD is above the largest notional, "
                f"{amount(MAX_NOTIONAL)} USD",
                *where,
            )
        elif sizing.kind in ("pct_equity", "pct_balance") and value > MAX_PERCENT:
            base = "EQUITY" if sizing.kind == "pct_equity" else "BALANCE"
            self.err(
                "bad-size",
                f"SIZING {shown(value)} PCT OF {base} is above {amount(MAX_PERCENT)} percent",
                *where,
            )

    def check_leg(self, leg: ast.Leg) -> None:
        name = "STOP_LOSS" if leg.kind == "stop_loss" else "TAKE_PROFIT"
        value = self.number(leg.value, name)
        if value is None:
            return
        where = start_of(leg.value)
        if leg.mode == "by_pct":
            stop = leg.kind == "stop_loss"
            if value <= 0 or (value >= 100 if stop else value > MAX_PERCENT):
                rule = (
                    "above 0 and below 100"
                    if stop
                    else f"above 0 and at most {amount(MAX_PERCENT)}"
                )
                what = "a stop-loss" if stop else "a take-profit"
                self.err(
                    "bad-percent",
                    f"{name} BY {shown(value)} PCT: {what} percent must be {rule}",
                    *where,
                )
            return
        what = "distance" if leg.mode == "by" else "price"
        if value <= 0:
            self.err("bad-price", f"{name} {what} must be positive, got {shown(value)}", *where)
        elif value > MAX_PRICE:
            self.err(
                "bad-price",
                f"{name} {what} {shown(value)} is above the largest price, {amount(MAX_PRICE)}",
                *where,
            )

    def number(self, e: ast.Expr, where: str) -> Decimal | None:
        """Check ``e`` is a number; its value when known before the run."""
        kind = self.kind(e)
        if kind is None:
            return None
        if kind != "num":
            self.err("type-mismatch", f"{where} needs a number, got {WORDS[kind]}", *start_of(e))
            return None
        value = fold(e, self.values, self.let_exprs)
        if isinstance(value, Undefined):
            self.err(
                "undefined-value",
                f"{where} has no value: `{render(value.node)}` {value.reason}",
                *start_of(value.node),
            )
            return None
        return value

    def check_alias(self, alias: str, line: int, column: int) -> bool:
        if alias in self.aliases:
            self.refs.add(alias)
            return True
        if alias in self.broken:
            self.refs.add(alias)
            return False
        self.suggest(alias, (self.aliases,))
        self.err("unknown-alias", f"unknown stream alias `{alias}`", line, column)
        return False

    def suggest(
        self, name: str, pools: tuple[Iterable[str], ...], otherwise: str | None = None
    ) -> None:
        """The next error gets ``did you mean`` among ``pools`` (else ``otherwise``) as its
        hint, found by :meth:`_suggestions` once every error is known."""
        self.pending[len(self.diags)] = (name, pools, otherwise)

    def _suggestions(self) -> None:
        """Fill in the suggestions of the first errors in file order only: a file's
        diagnostics are cut at 50, and thousands of unknown names among thousands of LETs
        would otherwise cost minutes of fuzzy matching."""
        if not self.pending:
            return
        first = sorted(range(len(self.diags)), key=lambda i: sort_key(self.diags[i]))
        for i in first[:_MAX_SUGGESTIONS]:
            if i in self.pending:
                name, pools, otherwise = self.pending[i]
                hint = did_you_mean(name, itertools.chain(*pools)) or otherwise
                self.diags[i] = replace(self.diags[i], hint=hint)
        self.pending.clear()

    # ------------------------------------------------------------ expressions
    def kind(self, e: ast.Expr) -> Kind:
        return KINDS[type(e)](self, e)

    def want(self, e: ast.Expr, want: str, where: str) -> None:
        got = KINDS[type(e)](self, e)
        if got is not None and got != want:
            self.err(
                "type-mismatch",
                f"{where} needs {WORDS[want]}, got {WORDS[got]}",
                *start_of(e),
            )

    def name(self, e: ast.Name) -> Kind:
        name = e.name
        if name in self.aliases:
            self.refs.add(name)
            return "num"
        param = self.params.get(name)
        if param is not None:
            return _PARAM_KINDS[param.kind]
        if name in self.lets:
            self.refs |= self.let_streams.get(name, frozenset())
            return self.let_kinds.get(name)
        if name in self.broken:
            self.refs.add(name)
            return None
        otherwise = None
        if name.lower() in INDICATORS:
            otherwise = f"`{name.lower()}` is an indicator: call it, e.g. `{name.lower()}(eur, 14)`"
        self.suggest(name, (self.aliases, self.params, self.lets), otherwise)
        self.err("unknown-name", f"unknown name `{name}`", e.line, e.column)
        return None
