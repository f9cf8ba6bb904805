"""Why an order's size or bracket leg has no usable value when the order fires.

Used only when an order is refused, never per bar: the parts of the expression are compiled on
demand (sharing the runtime's indicators and LET values, so nothing is evaluated twice per bar or
changes state) and the innermost part that has no value names the cause:
``atr(eur, 14) is not ready``, ``e.close / (e.high - e.low) divides by zero``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from qkt.dsl import ast
from qkt.dsl.static import render

Fn = Callable[[], Any]


class Explainer:
    def __init__(
        self,
        compile: Callable[[ast.Expr], Fn],
        lets: Mapping[str, ast.Expr],
        streams: Mapping[str, Any],
    ) -> None:
        self._compile = compile
        self._lets = lets
        self._streams = streams
        self._fns: dict[int, tuple[ast.Expr, Fn]] = {}  # id(node) -> (node, fn): node kept alive

    def _value(self, node: ast.Expr) -> Any:
        found = self._fns.get(id(node))
        if found is None:
            found = (node, self._compile(node))
            self._fns[id(node)] = found
        return found[1]()

    def why(self, expr: ast.Expr) -> str:
        """The reason ``expr`` has no finite value now (iterative: any depth is fine)."""
        node = expr
        seen: set[str] = set()
        for _ in range(10_000):
            inner = self._culprit(node, seen)
            if inner is None:
                return self._reason(node)
            node = inner
        return self._reason(node)  # pragma: no cover - expressions are far smaller

    def _culprit(self, node: ast.Expr, seen: set[str]) -> ast.Expr | None:
        """The part of ``node`` that has no value, if the cause lies deeper."""
        if isinstance(node, ast.Name) and node.name in self._lets and node.name not in seen:
            if node.name in self._streams:
                return None
            seen.add(node.name)
            return self._lets[node.name]
        parts: tuple[ast.Expr, ...] = ()
        if isinstance(node, ast.Binary):
            parts = (node.left, node.right)
        elif isinstance(node, ast.Unary):
            parts = (node.operand,)
        for part in parts:
            if not _finite(self._value(part)):
                return part
        return None

    def _reason(self, node: ast.Expr) -> str:
        text = render(node)
        value = self._value(node)
        if isinstance(node, ast.Call):
            return f"{text} is not ready" if value is None else f"{text} is not a finite number"
        if isinstance(node, ast.Field | ast.Name) and _stream_of(node) in self._streams:
            alias = _stream_of(node)
            if self._streams[alias].bar is None:
                return f"{alias} has no bar yet"
        if isinstance(node, ast.PositionRef) and value is None:
            return f"{text} is unknown while {node.alias} is flat"
        if isinstance(node, ast.Number):
            return f"{text} is too large"
        if isinstance(node, ast.Binary) and node.op in ("/", "%") and self._value(node.right) == 0:
            return f"{text} divides by zero"
        if value is None:
            return f"{text} has no value"
        return f"{text} is not a finite number"


def _stream_of(node: ast.Field | ast.Name) -> str:
    return node.alias if isinstance(node, ast.Field) else node.name


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)
