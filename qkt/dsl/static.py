"""What can be known about an expression before anything runs: its nodes, names and constant value."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, Overflow

from qkt.dsl import ast

ParamValue = Decimal | bool | str
_MAX_LET_HOPS = 16


def children(node: ast.Expr) -> tuple[ast.Expr, ...]:
    if isinstance(node, ast.Binary | ast.Crosses):
        return (node.left, node.right)
    if isinstance(node, ast.Call):
        return node.args
    if isinstance(node, ast.Not | ast.Unary):
        return (node.operand,)
    if isinstance(node, ast.Between):
        return (node.value, node.low, node.high)
    if isinstance(node, ast.In):
        return (node.value, *node.options)
    return ()


def start_of(expr: ast.Expr) -> tuple[int, int]:
    """Line and column where an expression's text starts (an infix node sits at its operator)."""
    node = expr
    while True:
        if isinstance(node, ast.Binary | ast.Crosses):
            node = node.left
        elif isinstance(node, ast.Between | ast.In):
            node = node.value
        else:
            return node.line, node.column


def walk(expr: ast.Expr) -> Iterator[ast.Expr]:
    """Every node of an expression, depth first (iterative: any depth is fine)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def names_in(expr: ast.Expr) -> Iterator[str]:
    """The bare names an expression uses (PARAMs, LETs and stream aliases)."""
    return (n.name for n in walk(expr) if isinstance(n, ast.Name))


def constant_value(
    expr: ast.Expr,
    params: Mapping[str, ParamValue],
    lets: Mapping[str, ast.Expr] | None = None,
    hops: int = 0,
) -> Decimal | None:
    """Evaluate literal arithmetic over numbers, number PARAMs and constant LETs.

    ``None`` when the value depends on market data, positions or the account, is not a number, or
    cannot be computed (division by zero, overflow: :func:`fold` tells those apart).
    """
    if type(expr) is ast.Number:  # the common case, without the folder
        return expr.value
    value = fold(expr, params, lets, hops)
    return None if isinstance(value, Undefined) else value


@dataclass(frozen=True, slots=True)
class Undefined:
    """An expression that can never have a value: ``node`` (a part of it) ``reason``."""

    node: ast.Expr
    reason: str  # "divides by zero", "overflows", "cannot be computed"


class _NoValue(Exception):
    def __init__(self, node: ast.Expr, reason: str) -> None:
        super().__init__(reason)
        self.found = Undefined(node, reason)


def fold(
    expr: ast.Expr,
    params: Mapping[str, ParamValue],
    lets: Mapping[str, ast.Expr] | None = None,
    hops: int = 0,
) -> Decimal | Undefined | None:
    """Like :func:`constant_value`, but an expression that is an error whatever the market does
    is an :class:`Undefined` saying where and why: a division by a constant zero (even of a value
    known only at run time, ``eur.close / (2 - 2)``), or constant arithmetic that overflows."""
    if type(expr) is ast.Number:
        return expr.value
    try:
        value = _Folder(params, lets or {}).value(expr, hops)
    except _NoValue as exc:
        return exc.found
    except ArithmeticError:  # a NaN PARAM given by a caller that did not check it
        return Undefined(expr, "cannot be computed")
    except RecursionError:  # long constant LETs through many others: known when it runs
        return None
    if value is not None and not value.is_finite():
        return Undefined(expr, "cannot be computed")
    return value


class _Folder:
    """Constant folding with each LET folded once (memoized), however often it is used."""

    def __init__(self, params: Mapping[str, ParamValue], lets: Mapping[str, ast.Expr]) -> None:
        self.params = params
        self.lets = lets
        self.memo: dict[str, Decimal | None] = {}

    def value(self, e: ast.Expr, hops: int) -> Decimal | None:
        if isinstance(e, ast.Number):
            return e.value
        if isinstance(e, ast.Name):
            return self.name(e.name, hops)
        if isinstance(e, ast.Unary):
            inner = self.value(e.operand, hops)
            return None if inner is None else -inner
        if isinstance(e, ast.Binary) and e.op in ast.ARITHMETIC:
            left = self.value(e.left, hops)
            right = self.value(e.right, hops)
            if e.op in ("/", "%") and right is not None and right.is_zero():
                raise _NoValue(e, "divides by zero")
            if left is None or right is None:
                return None
            try:
                if e.op == "+":
                    return left + right
                if e.op == "-":
                    return left - right
                if e.op == "*":
                    return left * right
                return left / right if e.op == "/" else left % right
            except Overflow:
                raise _NoValue(e, "overflows") from None
            except ArithmeticError:  # a remainder of numbers too far apart, and friends
                raise _NoValue(e, "cannot be computed") from None
        return None

    def name(self, name: str, hops: int) -> Decimal | None:
        if name in self.params:
            value = self.params[name]
            return value if isinstance(value, Decimal) else None
        let = self.lets.get(name)
        if let is None or hops >= _MAX_LET_HOPS:
            return None
        if name not in self.memo:
            self.memo[name] = None  # a LET cycle folds to None
            self.memo[name] = self.value(let, hops + 1)
        return self.memo[name]


# ---------------------------------------------------------------- showing an expression

_PRECEDENCE = {"or": 1, "and": 2, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}
_CMP_PRECEDENCE = 4
_MAX_SHOWN = 80
_MAX_NUMBER = 20


def render(expr: ast.Expr) -> str:
    """An expression as source text (normalised spacing, the parentheses it needs), shortened to
    80 characters, for messages: ``e.close / (e.high - e.low)``."""
    text = _render(expr)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _render(e: ast.Expr, depth: int = 0) -> str:
    if depth > 64:  # the parser caps nesting far below this
        return "..."
    d = depth + 1
    if isinstance(e, ast.Number):
        text = format(e.value, "f")
        return text if len(text) <= _MAX_NUMBER else text[:_MAX_NUMBER] + "..."
    if isinstance(e, ast.Bool):
        return "TRUE" if e.value else "FALSE"
    if isinstance(e, ast.String):
        return repr(e.value)
    if isinstance(e, ast.Name):
        return e.name
    if isinstance(e, ast.Field):
        return f"{e.alias}.{e.field}"
    if isinstance(e, ast.PositionRef):
        return f"POSITION.{e.alias}" + (f".{e.field}" if e.field else "")
    if isinstance(e, ast.AccountRef):
        return f"ACCOUNT.{e.field}"
    if isinstance(e, ast.Call):
        return f"{e.name}({', '.join(_render(a, d) for a in e.args)})"
    if isinstance(e, ast.Unary):
        return f"-{_operand(e.operand, 7, d)}"
    if isinstance(e, ast.Not):
        return f"NOT {_operand(e.operand, 3, d)}"
    if isinstance(e, ast.Binary):
        prec = _PRECEDENCE.get(e.op, _CMP_PRECEDENCE)
        op = e.op.upper() if e.op in ("and", "or") else e.op
        return f"{_operand(e.left, prec, d)} {op} {_operand(e.right, prec + 1, d)}"
    if isinstance(e, ast.Crosses):
        way = "ABOVE" if e.direction == "above" else "BELOW"
        return f"{_operand(e.left, 5, d)} CROSSES {way} {_operand(e.right, 5, d)}"
    if isinstance(e, ast.Between):
        parts = (_operand(p, 5, d) for p in (e.value, e.low, e.high))
        return "{} BETWEEN {} AND {}".format(*parts)
    options = ", ".join(_render(o, d) for o in e.options)
    return f"{_operand(e.value, 5, d)} IN [{options}]"


def _precedence(e: ast.Expr) -> int:
    if isinstance(e, ast.Binary):
        return _PRECEDENCE.get(e.op, _CMP_PRECEDENCE)
    if isinstance(e, ast.Crosses | ast.Between | ast.In):
        return _CMP_PRECEDENCE
    if isinstance(e, ast.Not):
        return 3
    if isinstance(e, ast.Unary):
        return 7
    return 8


def _operand(e: ast.Expr, least: int, depth: int) -> str:
    text = _render(e, depth)
    return f"({text})" if _precedence(e) < least else text
