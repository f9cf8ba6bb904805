"""``${VAR}`` and ``${VAR:-default}`` expansion in configuration scalars (SPEC §3.2).

``$$`` writes a literal ``$``. An unset variable without a default is reported (a strict-sensitive
warning) and the key is treated as not set; so is a value that expands to nothing (``${VAR:-}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class Unset:
    """An expansion that found neither the variable nor a default."""

    names: tuple[str, ...]


def expand(value: str, env: Mapping[str, str]) -> str | Unset:
    """Expand one scalar; returns :class:`Unset` naming the missing variables."""
    if "$" not in value:
        return value
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    out = _VAR.sub(sub, value)
    if missing:
        return Unset(tuple(missing))
    # `${VAR:-}` that expands to nothing means "not set", not "set to the empty string".
    return Unset(()) if out == "" else out


def referenced(text: str) -> set[str]:
    """Names of every variable a config text mentions (for cache keys)."""
    return set(REFERENCE.findall(text))


def expand_tree(
    data: Any, env: Mapping[str, str], keypath: tuple[str | int, ...] = ()
) -> tuple[Any, list[tuple[tuple[str | int, ...], tuple[str, ...]]]]:
    """Expand every string in a YAML tree; unset keys are dropped and returned with their path."""
    unset: list[tuple[tuple[str | int, ...], tuple[str, ...]]] = []
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            child = (*keypath, key)
            expanded, problems = expand_tree(value, env, child)
            unset.extend(problems)
            if not isinstance(expanded, Unset):
                out[key] = expanded
        return out, unset
    if isinstance(data, list):
        items = []
        for index, value in enumerate(data):
            expanded, problems = expand_tree(value, env, (*keypath, index))
            unset.extend(problems)
            if not isinstance(expanded, Unset):
                items.append(expanded)
        return items, unset
    if isinstance(data, str):
        result = expand(data, env)
        if isinstance(result, Unset) and result.names:
            unset.append((keypath, result.names))
        return result, unset
    return data, unset
