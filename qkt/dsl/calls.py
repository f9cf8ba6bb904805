"""Checks of indicator calls: the indicator exists, the argument count, and each argument's kind
(a value, a stream alias, a period, Bollinger's k)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from qkt.diagnostics import did_you_mean
from qkt.dsl import ast
from qkt.dsl.indicators import INDICATORS, MAX_PERIOD, PERIOD_ROLES
from qkt.dsl.static import Undefined, fold, render, start_of

if TYPE_CHECKING:
    from qkt.dsl.checker import Checker, Kind


def check_call(c: Checker, e: ast.Call) -> Kind:
    spec = INDICATORS.get(e.name)
    if spec is None:
        hint = did_you_mean(e.name, list(INDICATORS))
        c.err("unknown-indicator", f"unknown indicator `{e.name}`", e.line, e.column, hint)
        for arg in e.args:
            c.kind(arg)
        return "num"
    if not spec.accepts(len(e.args)):
        c.err(
            "wrong-arity",
            f"`{e.name}` takes {spec.arity()}, got {len(e.args)}",
            e.line,
            e.column,
        )
        for arg in e.args:
            c.kind(arg)
        return "num"
    periods: dict[str, Decimal] = {}
    for role, arg in zip(spec.roles, e.args, strict=False):
        if role == "value":
            c.want(arg, "num", f"`{e.name}`")
        elif role == "stream":
            _stream_arg(c, e.name, arg)
        elif role in PERIOD_ROLES:
            value = _period(c, e.name, role, arg)
            if value is not None:
                periods[role] = value
        else:
            k = c.number(arg, f"`{e.name}` k")
            if k is not None and k <= 0:
                c.err("bad-value", f"`{e.name}` k must be positive, got {k}", *start_of(arg))
    fast, slow = periods.get("fast"), periods.get("slow")
    if fast is not None and slow is not None and fast >= slow:
        c.err(
            "bad-period",
            f"`{e.name}` fast period ({fast}) must be shorter than the slow one ({slow})",
            e.line,
            e.column,
        )
    return "num"


def _stream_arg(c: Checker, fn: str, arg: ast.Expr) -> None:
    if isinstance(arg, ast.Name):
        name = arg.name
        if name in c.aliases:
            c.refs.add(name)
            return
        if name not in c.params and name not in c.lets:
            c.check_alias(name, arg.line, arg.column)
            return
    hint = None
    if isinstance(arg, ast.Field):
        c.kind(arg)
        hint = f"pass the stream itself: `{fn}({arg.alias}, ...)`"
    got = f"the number {arg.value}" if isinstance(arg, ast.Number) else describe(arg)
    c.err(
        "wrong-argument",
        f"`{fn}` needs a stream alias as its first argument, got {got}",
        *start_of(arg),
        hint,
    )


def _period(c: Checker, fn: str, role: str, arg: ast.Expr) -> Decimal | None:
    if type(arg) is ast.Number:
        value: Decimal | None = arg.value
    else:
        kind = c.kind(arg)
        if kind is None:
            return None
        folded = fold(arg, c.values, c.let_exprs) if kind == "num" else None
        if isinstance(folded, Undefined):  # `ema(eur, 1/0)`: no value, whatever the market
            c.err(
                "undefined-value",
                f"`{fn}` {role} has no value: `{render(folded.node)}` {folded.reason}",
                *start_of(folded.node),
            )
            return None
        value = folded
    if value is None:
        c.err(
            "bad-period",
            f"`{fn}` {role} must be a whole number of bars known before the run "
            f"(a literal or a PARAM), got {describe(arg)}",
            *start_of(arg),
        )
        return None
    if value <= 0 or value != value.to_integral_value() or value > MAX_PERIOD:
        c.err(
            "bad-period",
            f"`{fn}` {role} must be a whole number of bars from 1 to {MAX_PERIOD:,}, got {value}",
            *start_of(arg),
        )
        return None
    return value


def describe(arg: ast.Expr) -> str:
    if isinstance(arg, ast.Number):
        return str(arg.value)
    if isinstance(arg, ast.Field):
        return f"the field `{arg.alias}.{arg.field}`"
    if isinstance(arg, ast.Name):
        return f"`{arg.name}`"
    if isinstance(arg, ast.String):
        return "a string"
    return "an expression"
