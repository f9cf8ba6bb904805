"""Diagnostics: the one shape every user-facing problem takes.

A diagnostic names a severity, a stable code, a message and, where there is one, the file, line and
column it is about. ``strict`` marks a warning that strict-broker mode turns into an error (SPEC §4.2),
so producers never need to know whether strict mode is on: consumers call :func:`apply_strict`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    code: str
    message: str
    path: str | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None
    strict: bool = False  # a warning that strict mode promotes to an error

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def location(self) -> str:
        """``path:line:col`` with whatever parts are known (empty when nothing is)."""
        parts: list[str] = []
        if self.path is not None:
            parts.append(self.path)
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def format(self) -> str:
        """One line: ``path:line:col: error[code]: message (hint)``."""
        loc = self.location()
        text = f"{self.severity}[{self.code}]: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return f"{loc}: {text}" if loc else text

    def to_json(self) -> dict[str, Any]:
        message = self.message if not self.hint else f"{self.message} ({self.hint})"
        return {
            "severity": self.severity,
            "code": self.code,
            "message": message,
            "path": self.path,
            "line": self.line,
            "column": self.column,
        }

    def with_path(self, path: str) -> Diagnostic:
        return replace(self, path=path)


def error(code: str, message: str, **where: Any) -> Diagnostic:
    return Diagnostic("error", code, message, **where)


def warning(code: str, message: str, **where: Any) -> Diagnostic:
    return Diagnostic("warning", code, message, **where)


def apply_strict(diags: Iterable[Diagnostic], strict: bool) -> list[Diagnostic]:
    """Promote strict-sensitive warnings to errors when strict mode is on."""
    if not strict:
        return list(diags)
    return [
        replace(d, severity="error") if d.strict and d.severity == "warning" else d for d in diags
    ]


def has_errors(diags: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diags)


def sort_key(d: Diagnostic) -> tuple[str, int, int]:
    return (d.path or "", d.line or 0, d.column or 0)


def did_you_mean(name: str, candidates: Sequence[str] | Iterable[str]) -> str | None:
    """``did you mean `x`?`` for the closest candidate, comparing case-insensitively.

    Bounded work: a name of more than 100 characters gets no suggestion, and among more than
    256 candidates only 256 of a length close to the name's are compared."""
    key = name.lower()
    if len(key) > _MAX_SUGGESTED:
        return None
    pool = list(candidates)
    if len(pool) > _MAX_POOL:
        pool = [c for c in pool if abs(len(c) - len(key)) <= 2][:_MAX_POOL]
    lowered = {c.lower(): c for c in pool}
    match = difflib.get_close_matches(key, list(lowered), n=1, cutoff=0.6)
    if not match:
        return None
    return f"did you mean `{lowered[match[0]]}`?"


_MAX_SUGGESTED = 100
_MAX_POOL = 256
