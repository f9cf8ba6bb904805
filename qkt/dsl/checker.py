"""Semantic checks of a parsed strategy: names, indicators, argument kinds, periods, percents.

Every problem is an error diagnostic with a position and, where one is close, a suggestion.
Expression kinds are inferred as ``num``, ``bool`` or ``str`` (``None`` when unknown after an
earlier error, which silences follow-on errors).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from qkt.diagnostics import Diagnostic, did_you_mean, error
from qkt.dsl import ast

FIELDS = ("open", "high", "low", "close", "volume")
POSITION_FIELDS = ("entry_price", "pnl", "unrealized_pnl")
ACCOUNT_FIELDS = ("equity", "balance", "realized_pnl", "unrealized_pnl")

# name -> (argument roles, optional trailing roles); roles: value, period, stream, factor
INDICATORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sma": (("value", "period"), ()),
    "ema": (("value", "period"), ()),
    "wma": (("value", "period"), ()),
    "rsi": (("value", "period"), ()),
    "stdev": (("value", "period"), ()),
    "highest": (("value", "period"), ()),
    "lowest": (("value", "period"), ()),
    "atr": (("stream", "period"), ()),
    "macd": (("value", "fast", "slow", "signal"), ()),
    "macd_signal": (("value", "fast", "slow", "signal"), ()),
    "macd_hist": (("value", "fast", "slow", "signal"), ()),
    "bollinger_upper": (("value", "period"), ("k",)),
    "bollinger_middle": (("value", "period"), ("k",)),
    "bollinger_lower": (("value", "period"), ("k",)),
}
_PERIOD_ROLES = frozenset({"period", "fast", "slow", "signal"})
Kind = str | None


def signature(name: str) -> str:
    required, optional = INDICATORS[name]
    inner = ", ".join(required) + "".join(f"[, {o}]" for o in optional)
    return f"{name}({inner})"


class Checker:
    def __init__(self, strategy: ast.Strategy, path: str | None) -> None:
        self.s = strategy
        self.path = path
        self.diags: list[Diagnostic] = []
        self.aliases = {st.alias: st for st in strategy.streams}
        self.params = {p.name: p for p in strategy.params}
        self.lets = {let.name: let for let in strategy.lets}
        self._let_kinds: dict[str, Kind] = {}
        self._let_streams: dict[str, frozenset[str]] = {}

    def err(self, code: str, message: str, line: int, column: int, hint: str | None = None) -> None:
        self.diags.append(error(code, message, path=self.path, line=line, column=column, hint=hint))

    # ------------------------------------------------------------ top level
    def check(self) -> list[Diagnostic]:
        self.check_names()
        self.check_lets()
        for let in self.s.lets:
            self.kind(let.expr)
        for rule in self.s.rules:
            self.check_rule(rule)
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
        for what, items in (("PARAM", self.s.params), ("LET", self.s.lets)):
            for item in items:
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

    def check_lets(self) -> None:
        """A LET may use other LETs in any order, but never itself, directly or in a cycle."""
        deps = {let.name: {n for n in names_in(let.expr) if n in self.lets} for let in self.s.lets}
        reported: set[str] = set()
        for let in self.s.lets:
            if let.name in deps[let.name]:
                self.err(
                    "self-referencing-let",
                    f"LET `{let.name}` refers to itself",
                    let.line,
                    let.column,
                )
                reported.add(let.name)
        for let in self.s.lets:
            if let.name in reported:
                continue
            cycle = _find_cycle(let.name, deps)
            if cycle:
                self.err(
                    "let-cycle",
                    "LETs refer to each other in a cycle: " + " -> ".join(cycle),
                    let.line,
                    let.column,
                )
                reported.update(cycle)

    def check_rule(self, rule: ast.Rule) -> None:
        before = len(self.diags)
        kind = self.kind(rule.condition)
        if kind is not None and kind != "bool":
            self.err(
                "type-mismatch",
                f"a WHEN condition must be true or false, got {_kind_word(kind)}",
                rule.condition.line,
                rule.condition.column,
                "compare it, e.g. `x > 0`",
            )
        if len(self.diags) == before and not self.streams_of(rule.condition):
            self.err(
                "rule-without-stream",
                "this rule's condition references no stream: no bar close would ever evaluate it",
                rule.line,
                rule.column,
            )
        for action in rule.actions:
            self.check_action(action)

    # ------------------------------------------------------------ actions
    def check_action(self, action: ast.Action) -> None:
        if isinstance(action, ast.OrderAction | ast.Close):
            self.check_alias(action.alias, action.line, action.alias_column)
        if not isinstance(action, ast.OrderAction):
            return
        if action.sizing is not None:
            sizing = action.sizing
            self.expect_num(sizing.value, "SIZING")
            value = self.constant(sizing.value)
            if value is not None and value <= 0:
                what = "quantity" if sizing.kind == "qty" else "size"
                self.err(
                    "bad-size" if sizing.kind != "qty" else "bad-quantity",
                    f"order {what} must be positive, got {value}",
                    sizing.value.line,
                    sizing.value.column,
                )
        if action.bracket is not None:
            for leg in (action.bracket.stop_loss, action.bracket.take_profit):
                if leg is not None:
                    self.check_leg(leg)

    def check_leg(self, leg: ast.Leg) -> None:
        name = "STOP_LOSS" if leg.kind == "stop_loss" else "TAKE_PROFIT"
        self.expect_num(leg.value, name)
        value = self.constant(leg.value)
        if value is None:
            return
        if leg.mode == "by_pct":
            too_high = leg.kind == "stop_loss" and value >= 100
            if value <= 0 or too_high:
                allowed = "between 0 and 100 (exclusive)" if leg.kind == "stop_loss" else "above 0"
                self.err(
                    "bad-percent",
                    f"{name} BY {value} PCT: the percent must be {allowed}",
                    leg.value.line,
                    leg.value.column,
                )
        elif value <= 0:
            what = "distance" if leg.mode == "by" else "price"
            self.err(
                "bad-price",
                f"{name} {what} must be positive, got {value}",
                leg.value.line,
                leg.value.column,
            )

    def check_alias(self, alias: str, line: int, column: int) -> bool:
        if alias in self.aliases:
            return True
        self.err(
            "unknown-alias",
            f"unknown stream alias `{alias}`",
            line,
            column,
            did_you_mean(alias, list(self.aliases)),
        )
        return False

    # ------------------------------------------------------------ expressions
    def expect_num(self, expr: ast.Expr, where: str) -> None:
        kind = self.kind(expr)
        if kind is not None and kind != "num":
            self.err(
                "type-mismatch",
                f"{where} needs a number, got {_kind_word(kind)}",
                expr.line,
                expr.column,
            )

    def kind(self, e: ast.Expr) -> Kind:
        if isinstance(e, ast.Binary):
            left, right = self.kind(e.left), self.kind(e.right)
            if e.op in ast.LOGIC:
                self._want(e.left, left, "bool", e.op.upper())
                self._want(e.right, right, "bool", e.op.upper())
                return "bool"
            if e.op in ("=", "!=") and left == right:
                return "bool"  # equality works on any two values of one kind
            self._want(e.left, left, "num", f"`{e.op}`")
            self._want(e.right, right, "num", f"`{e.op}`")
            return "bool" if e.op in ast.COMPARISON else "num"
        if isinstance(e, ast.Call):
            return self.call(e)
        if isinstance(e, ast.Name):
            return self.name(e)
        if isinstance(e, ast.Number):
            return "num"
        if isinstance(e, ast.Field):
            if self.check_alias(e.alias, e.line, e.column) and e.field not in FIELDS:
                self.err(
                    "unknown-field",
                    f"a stream has no field `{e.field}` (fields: {', '.join(FIELDS)})",
                    e.line,
                    e.field_column,
                    did_you_mean(e.field, FIELDS),
                )
            return "num"
        if isinstance(e, ast.Crosses):
            self._want(e.left, self.kind(e.left), "num", "CROSSES")
            self._want(e.right, self.kind(e.right), "num", "CROSSES")
            return "bool"
        if isinstance(e, ast.Not):
            self._want(e.operand, self.kind(e.operand), "bool", "NOT")
            return "bool"
        if isinstance(e, ast.Between):
            for part in (e.value, e.low, e.high):
                self._want(part, self.kind(part), "num", "BETWEEN")
            return "bool"
        if isinstance(e, ast.In):
            for part in (e.value, *e.options):
                self._want(part, self.kind(part), "num", "IN")
            return "bool"
        if isinstance(e, ast.Unary):
            self._want(e.operand, self.kind(e.operand), "num", "`-`")
            return "num"
        if isinstance(e, ast.Bool):
            return "bool"
        if isinstance(e, ast.String):
            return "str"
        if isinstance(e, ast.PositionRef):
            if self.check_alias(e.alias, e.line, e.alias_column) and (
                e.field is not None and e.field not in POSITION_FIELDS
            ):
                self.err(
                    "unknown-field",
                    f"POSITION has no field `{e.field}` (fields: {', '.join(POSITION_FIELDS)})",
                    e.line,
                    e.alias_column,
                    did_you_mean(e.field, POSITION_FIELDS),
                )
            return "num"
        if isinstance(e, ast.AccountRef):
            if e.field not in ACCOUNT_FIELDS:
                self.err(
                    "unknown-field",
                    f"ACCOUNT has no field `{e.field}` (fields: {', '.join(ACCOUNT_FIELDS)})",
                    e.line,
                    e.field_column,
                    did_you_mean(e.field, ACCOUNT_FIELDS),
                )
            return "num"
        return None  # pragma: no cover - every node type is handled above

    def _want(self, e: ast.Expr, got: Kind, want: str, where: str) -> None:
        if got is None or got == want:
            return
        self.err(
            "type-mismatch",
            f"{where} needs {_kind_word(want)}, got {_kind_word(got)}",
            e.line,
            e.column,
        )

    def name(self, e: ast.Name) -> Kind:
        name = e.name
        if name in self.aliases:
            return "num"
        param = self.params.get(name)
        if param is not None:
            return {"number": "num", "bool": "bool", "string": "str"}[param.kind]
        if name in self.lets:
            return self.let_kind(name)
        pool = [*self.aliases, *self.params, *self.lets]
        hint = did_you_mean(name, pool)
        if hint is None and name.lower() in INDICATORS:
            hint = f"`{name.lower()}` is an indicator: call it, e.g. `{name.lower()}(x, 14)`"
        self.err("unknown-name", f"unknown name `{name}`", e.line, e.column, hint)
        return None

    def let_kind(self, name: str) -> Kind:
        if name not in self._let_kinds:
            self._let_kinds[name] = None  # guards cycles (reported by check_lets)
            self._let_kinds[name] = _quiet_kind(self, self.lets[name].expr)
        return self._let_kinds[name]

    def call(self, e: ast.Call) -> Kind:
        spec = INDICATORS.get(e.name)
        if spec is None:
            self.err(
                "unknown-indicator",
                f"unknown indicator `{e.name}`",
                e.line,
                e.column,
                did_you_mean(e.name, list(INDICATORS)),
            )
            for arg in e.args:
                self.kind(arg)
            return "num"
        required, optional = spec
        if not len(required) <= len(e.args) <= len(required) + len(optional):
            count = str(len(required))
            if optional:
                count += f" or {len(required) + len(optional)}"
            self.err(
                "wrong-arity",
                f"`{e.name}` takes {count} arguments ({signature(e.name)}), got {len(e.args)}",
                e.line,
                e.column,
            )
            return "num"
        periods: dict[str, Decimal] = {}
        for role, arg in zip((*required, *optional), e.args, strict=False):
            if role == "stream":
                if not (isinstance(arg, ast.Name) and arg.name in self.aliases):
                    got = _describe_arg(arg, self)
                    hint = None
                    if isinstance(arg, ast.Field):
                        hint = f"pass the stream itself: `{arg.alias}`"
                    elif isinstance(arg, ast.Name):
                        hint = did_you_mean(arg.name, list(self.aliases))
                    self.err(
                        "wrong-argument",
                        f"`{e.name}` needs a stream as its first argument, got {got}",
                        arg.line,
                        arg.column,
                        hint,
                    )
            elif role in _PERIOD_ROLES:
                value = self.period(e.name, role, arg)
                if value is not None:
                    periods[role] = value
            elif role == "k":
                self.expect_num(arg, f"`{e.name}` k")
                k = self.constant(arg)
                if k is not None and k <= 0:
                    self.err(
                        "bad-value", f"`{e.name}` k must be positive, got {k}", arg.line, arg.column
                    )
            else:
                self.expect_num(arg, f"`{e.name}`")
        fast, slow = periods.get("fast"), periods.get("slow")
        if fast is not None and slow is not None and fast >= slow:
            self.err(
                "bad-period",
                f"`{e.name}` fast period ({fast}) must be shorter than the slow one ({slow})",
                e.line,
                e.column,
            )
        return "num"

    def period(self, fn: str, role: str, arg: ast.Expr) -> Decimal | None:
        if not isinstance(arg, ast.Number | ast.Name | ast.Unary):
            self.kind(arg)
            self.err(
                "bad-period",
                f"`{fn}` {role} must be a whole number of bars (a literal or a PARAM)",
                arg.line,
                arg.column,
            )
            return None
        if isinstance(arg, ast.Name) and arg.name not in self.params:
            if self.kind(arg) is not None:
                self.err(
                    "bad-period",
                    f"`{fn}` {role} must be a literal or a PARAM, not `{arg.name}`",
                    arg.line,
                    arg.column,
                )
            return None
        value = self.constant(arg)
        if value is None or value <= 0 or value != value.to_integral_value():
            shown = value if value is not None else "that value"
            self.err(
                "bad-period",
                f"`{fn}` {role} must be a positive whole number of bars, got {shown}",
                arg.line,
                arg.column,
            )
            return None
        return value

    def constant(self, e: ast.Expr) -> Decimal | None:
        return constant_value(e, {p.name: p.value for p in self.s.params})

    # ------------------------------------------------------------ stream references
    def streams_of(self, e: ast.Expr) -> frozenset[str]:
        found: set[str] = set()
        for node in walk(e):
            if isinstance(node, ast.Field | ast.PositionRef):
                found.add(node.alias)
            elif isinstance(node, ast.Name):
                if node.name in self.aliases:
                    found.add(node.name)
                elif node.name in self.lets:
                    found |= self.let_streams(node.name)
        return frozenset(found & set(self.aliases))

    def let_streams(self, name: str) -> frozenset[str]:
        if name not in self._let_streams:
            self._let_streams[name] = frozenset()
            self._let_streams[name] = self.streams_of(self.lets[name].expr)
        return self._let_streams[name]


def _quiet_kind(checker: Checker, e: ast.Expr) -> Kind:
    """A LET's kind without re-reporting its errors (they are reported once, at the LET)."""
    saved = len(checker.diags)
    kind = checker.kind(e)
    del checker.diags[saved:]
    return kind


def _find_cycle(start: str, deps: dict[str, set[str]]) -> list[str] | None:
    stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(deps.get(start, ()))))]
    path = [start]
    on_path = {start}
    while stack:
        _, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            on_path.discard(path.pop())
            continue
        if child == start:
            return [*path, start]
        if child in on_path or child not in deps:
            continue
        path.append(child)
        on_path.add(child)
        stack.append((child, iter(sorted(deps[child]))))
    return None


def walk(e: ast.Expr) -> Iterator[ast.Expr]:
    """Every node of an expression, depth first."""
    stack: list[ast.Expr] = [e]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.Binary):
            stack += (node.left, node.right)
        elif isinstance(node, ast.Call):
            stack.extend(node.args)
        elif isinstance(node, ast.Crosses):
            stack += (node.left, node.right)
        elif isinstance(node, ast.Not | ast.Unary):
            stack.append(node.operand)
        elif isinstance(node, ast.Between):
            stack += (node.value, node.low, node.high)
        elif isinstance(node, ast.In):
            stack.append(node.value)
            stack.extend(node.options)


def names_in(e: ast.Expr) -> Iterable[str]:
    return (n.name for n in walk(e) if isinstance(n, ast.Name))


def constant_value(e: ast.Expr, params: dict[str, Any]) -> Decimal | None:
    """Evaluate literal arithmetic over numbers and numeric PARAMs; None when not constant."""
    if isinstance(e, ast.Number):
        return e.value
    if isinstance(e, ast.Name):
        value = params.get(e.name)
        return value if isinstance(value, Decimal) else None
    if isinstance(e, ast.Unary):
        inner = constant_value(e.operand, params)
        return None if inner is None else -inner
    if isinstance(e, ast.Binary) and e.op in ast.ARITHMETIC:
        left, right = constant_value(e.left, params), constant_value(e.right, params)
        if left is None or right is None:
            return None
        if e.op == "+":
            return left + right
        if e.op == "-":
            return left - right
        if e.op == "*":
            return left * right
        if right == 0:
            return None
        return left / right if e.op == "/" else left % right
    return None


def _kind_word(kind: str) -> str:
    return {"num": "a number", "bool": "true/false", "str": "a string"}.get(kind, kind)


def _describe_arg(arg: ast.Expr, checker: Checker) -> str:
    if isinstance(arg, ast.Number):
        return f"the number {arg.value}"
    if isinstance(arg, ast.Field):
        return f"the field `{arg.alias}.{arg.field}`"
    if isinstance(arg, ast.Name):
        return f"`{arg.name}`"
    return "an expression"
