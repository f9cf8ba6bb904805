"""Profiles while they are being resolved, and positioned diagnostics about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qkt.diagnostics import Diagnostic, error, warning
from qkt.yamlsrc import KeyPath, YamlDoc

Where = KeyPath | str
"""Where a value was set: a key path in the config file, or ``env:<VAR>`` / ``flag``."""

FLAG = "flag"


def env_where(var: str) -> str:
    return f"env:{var}"


@dataclass
class Layer:
    """One profile's merged values, with the source and position of every field set."""

    name: str
    type: str
    at: Where
    """Where the profile is defined: ``("brokers", name)``, ``env:<VAR>`` or ``()`` (built-in)."""
    origin: str
    fresh: bool
    """Neither a built-in's name nor ``extends``: must set every required field itself."""
    parents: tuple[str, ...] = ()
    """The profiles it inherits from, nearest first (a built-in it overrides counts)."""
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    where: dict[str, Where] = field(default_factory=dict)

    def set(self, key: str, value: Any, source: str, where: Where) -> None:
        self.values[key] = value
        self.sources[key] = source
        self.where[key] = where

    def own(self, key: str) -> bool:
        """Whether this profile set ``key`` itself (not inherited, not a default)."""
        source = self.sources.get(key, "default")
        return source != "builtin" and source != "default" and not source.startswith("extends:")


class Reporter:
    """Collects diagnostics positioned in the config file, or naming the variable or flag."""

    def __init__(self, doc: YamlDoc | None, display: str | None) -> None:
        self.doc = doc
        self.display = display
        self.diags: list[Diagnostic] = []

    def position(self, where: Where | None) -> dict[str, Any]:
        if isinstance(where, tuple) and self.doc is not None:
            line, column = self.doc.where(where)
            return {"path": self.display, "line": line, "column": column}
        return {}

    def source(self, keypath: KeyPath) -> str:
        line = self.doc.line(keypath) if self.doc is not None else None
        return f"config:{self.display}:{line}"

    @staticmethod
    def _suffix(message: str, where: Where | None) -> str:
        if where == FLAG:
            return f"{message} (from a command-line flag)"
        if isinstance(where, str):
            return f"{message} (from {where.removeprefix('env:')})"
        return message

    def fail(self, code: str, message: str, where: Where | None, hint: str | None = None) -> None:
        self.diags.append(
            error(code, self._suffix(message, where), hint=hint, **self.position(where))
        )

    def warn(self, code: str, message: str, where: Where | None, hint: str | None = None) -> None:
        """A warning strict mode turns into an error: every config warning is one (SPEC §4.2)."""
        self.diags.append(
            warning(
                code, self._suffix(message, where), hint=hint, strict=True, **self.position(where)
            )
        )
