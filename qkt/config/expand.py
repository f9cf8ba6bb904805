"""``${VAR}`` and ``${VAR:-default}`` expansion in configuration scalars (SPEC §3.2).

``$$`` writes a literal ``$``; any other ``$`` is kept as it is. An unset variable without a default
is reported (a strict-sensitive warning) and the key is treated as not set; so is a value that
expands to nothing (``${VAR:-}`` with the variable unset or empty). Only strings are expanded:
keys, numbers and booleans are taken as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from qkt.yamlsrc import KeyPath

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_SINGLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")

Unsets = list[tuple[KeyPath, tuple[str, ...]]]


@dataclass(frozen=True, slots=True)
class Unset:
    """An expansion that produced nothing; ``names`` are the variables found neither set nor
    defaulted (empty when a default or a set variable expanded to the empty string)."""

    names: tuple[str, ...]


def expand(value: str, env: Mapping[str, str]) -> str | Unset:
    """Expand one scalar; returns :class:`Unset` when it is missing or empty."""
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


def single_reference(value: str) -> str | None:
    """``NAME`` when ``value`` is exactly one variable: ``${NAME}`` or ``${NAME:-default}``."""
    m = _SINGLE.fullmatch(value)
    return m.group(1) if m else None


def expand_tree(data: Any, env: Mapping[str, str], keypath: KeyPath = ()) -> tuple[Any, Unsets]:
    """Expand every string in a YAML tree; keys left unset are dropped and returned with their
    path and the variables that were missing."""
    unset: Unsets = []
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            expanded, problems = expand_tree(value, env, (*keypath, key))
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


def _strings(data: Any, keypath: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, (*keypath, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _strings(value, (*keypath, index))
    elif isinstance(data, str):
        yield keypath, data


def variable_usage(
    data: Any, is_secret: Callable[[KeyPath], bool]
) -> tuple[frozenset[str], frozenset[str]]:
    """The variables a YAML tree uses: ``(plain, secret_only)``.

    A variable is secret-only when every use is a whole secret value (``api_key: ${KEY}``): its
    value then never shows in anything but a secret, and the config cache keys it by presence
    alone, never by value.
    """
    plain: set[str] = set()
    secret: set[str] = set()
    for keypath, value in _strings(data):
        names = _REFERENCE.findall(value)
        if not names:
            continue
        if is_secret(keypath) and single_reference(value) is not None:
            secret.update(names)
        else:
            plain.update(names)
    return frozenset(plain), frozenset(secret - plain)
