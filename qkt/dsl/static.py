"""What can be known about an expression before anything runs: its nodes, names and constant value."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal

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
    cannot be computed (division by zero, overflow).
    """
    if type(expr) is ast.Number:  # the common case, without the folder
        return expr.value
    try:
        value = _Folder(params, lets or {}).value(expr, hops)
    except ArithmeticError:  # decimal overflow and friends on absurd literals
        return None
    return value if value is None or value.is_finite() else None


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
            right = self.value(e.right, hops) if left is not None else None
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
