"""The kind (``num``, ``bool``, ``str``) of each expression node, checking its parts on the way."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qkt.diagnostics import did_you_mean
from qkt.dsl import ast
from qkt.dsl.calls import check_call
from qkt.dsl.indicators import ACCOUNT_FIELDS, FIELDS, POSITION_FIELDS

if TYPE_CHECKING:
    from qkt.dsl.checker import Checker, Kind

WORDS = {"num": "a number", "bool": "true/false", "str": "a string"}


def _binary(c: Checker, e: ast.Binary) -> Kind:
    op = e.op
    if op == "and" or op == "or":
        c.want(e.left, "bool", op.upper())
        c.want(e.right, "bool", op.upper())
        return "bool"
    if op == "=" or op == "!=":
        left, right = c.kind(e.left), c.kind(e.right)
        if left is not None and right is not None and left != right:
            c.err(
                "type-mismatch",
                f"`{op}` compares {WORDS[left]} with {WORDS[right]}",
                e.line,
                e.column,
            )
        return "bool"
    c.want(e.left, "num", f"`{op}`")
    c.want(e.right, "num", f"`{op}`")
    return "num" if op in ast.ARITHMETIC else "bool"


def _field(c: Checker, e: ast.Field) -> Kind:
    if c.check_alias(e.alias, e.line, e.column) and e.field not in FIELDS:
        c.err(
            "unknown-field",
            f"a stream has no field `{e.field}` (fields: {', '.join(FIELDS)})",
            e.line,
            e.field_column,
            did_you_mean(e.field, FIELDS),
        )
    return "num"


def _position(c: Checker, e: ast.PositionRef) -> Kind:
    known = c.check_alias(e.alias, e.line, e.alias_column)
    if known and e.field is not None and e.field not in POSITION_FIELDS:
        c.err(
            "unknown-field",
            f"POSITION has no field `{e.field}` (fields: {', '.join(POSITION_FIELDS)})",
            e.line,
            e.alias_column + len(e.alias) + 1,
            did_you_mean(e.field, POSITION_FIELDS),
        )
    return "num"


def _account(c: Checker, e: ast.AccountRef) -> Kind:
    if e.field not in ACCOUNT_FIELDS:
        c.err(
            "unknown-field",
            f"ACCOUNT has no field `{e.field}` (fields: {', '.join(ACCOUNT_FIELDS)})",
            e.line,
            e.field_column,
            did_you_mean(e.field, ACCOUNT_FIELDS),
        )
    return "num"


def _crosses(c: Checker, e: ast.Crosses) -> Kind:
    c.want(e.left, "num", "CROSSES")
    c.want(e.right, "num", "CROSSES")
    return "bool"


def _between(c: Checker, e: ast.Between) -> Kind:
    for part in (e.value, e.low, e.high):
        c.want(part, "num", "BETWEEN")
    return "bool"


def _in(c: Checker, e: ast.In) -> Kind:
    kind = c.kind(e.value)
    for option in e.options:
        if kind is None:
            kind = c.kind(option)
        else:
            c.want(option, kind, "IN")
    return "bool"


def _not(c: Checker, e: ast.Not) -> Kind:
    c.want(e.operand, "bool", "NOT")
    return "bool"


def _unary(c: Checker, e: ast.Unary) -> Kind:
    c.want(e.operand, "num", "`-`")
    return "num"


KINDS: dict[type, Callable[[Checker, Any], Kind]] = {
    ast.Number: lambda c, e: "num",
    ast.Bool: lambda c, e: "bool",
    ast.String: lambda c, e: "str",
    ast.Name: lambda c, e: c.name(e),
    ast.Field: _field,
    ast.PositionRef: _position,
    ast.AccountRef: _account,
    ast.Call: check_call,
    ast.Unary: _unary,
    ast.Binary: _binary,
    ast.Not: _not,
    ast.Crosses: _crosses,
    ast.Between: _between,
    ast.In: _in,
}
