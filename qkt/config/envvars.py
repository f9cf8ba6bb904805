"""``QKT_BROKER_<NAME>_<FIELD>`` overrides and command-line flags: the top two layers (SPEC §3.4).

``<NAME>`` is a profile name upper-cased with ``-`` written as ``_``; names and fields both hold
underscores (``QKT_BROKER_EXNESS_PERSONAL_GATEWAY_URL``), so a variable is matched against the known
profile names longest first, and the rest must be a field of that profile.
``QKT_BROKER_<NAME>_TYPE`` naming no profile creates one that lives only in the environment: its
name is ``<NAME>`` lower-cased with ``_`` written as ``-`` (``MY_BYBIT`` → ``my-bybit``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from qkt.config.builtins import FIELDS, JSON_FIELDS, PROFILE_TYPES, SECRET_FIELDS
from qkt.config.layers import FLAG, Layer, Reporter, env_where
from qkt.config.resolved import Secret
from qkt.diagnostics import did_you_mean

ENV_PREFIX = "QKT_BROKER_"
PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def env_key(name: str) -> str:
    return name.upper().replace("-", "_")


def _parse(layer: Layer, key: str, raw: str, var: str, report: Reporter) -> tuple[bool, Any]:
    """The value of ``var`` for ``key``: JSON for mappings, ``None`` for an empty optional field,
    the text otherwise (pydantic then parses it with the field's type)."""
    if key in JSON_FIELDS:
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            example = '{"NAS100": "USTEC"}' if key == "aliases" else '{"EURUSD": {"digits": 5}}'
            report.fail(
                "bad-value",
                f"profile `{layer.name}`: `{key}` must be a JSON object such as {example}",
                env_where(var),
            )
            return False, None
        return True, value
    if raw.strip() == "" and FIELDS[layer.type][key] is None:
        return True, None
    if key in SECRET_FIELDS:
        return True, Secret(raw, ref=var)
    return True, raw


def _create(name_key: str, var: str, raw: str, report: Reporter) -> Layer | None:
    name = name_key.lower().replace("_", "-")
    where = env_where(var)
    if PROFILE_NAME.fullmatch(name) is None:
        report.fail(
            "bad-profile-name",
            f"`{name}` is not a profile name: [a-z0-9][a-z0-9_-]*",
            where,
        )
        return None
    kind = raw.strip().lower()
    if kind not in PROFILE_TYPES:
        report.fail(
            "bad-type",
            f"profile `{name}` has unknown type `{raw}` (mt5, bybit or paper)",
            where,
            hint=did_you_mean(kind, PROFILE_TYPES),
        )
        return None
    layer = Layer(name, kind, at=where, origin=where, fresh=True)
    layer.set("type", kind, where, where)
    return layer


def apply_env(
    layers: dict[str, Layer], failed: set[str], env: Mapping[str, str], report: Reporter
) -> set[str]:
    """Apply every ``QKT_BROKER_*`` variable; returns those whose *value* the result depends on
    (not the ignored ones, nor those holding a secret: for those only their presence matters)."""
    items = sorted((k, v) for k, v in env.items() if k.startswith(ENV_PREFIX))
    keys: dict[str, str] = {}
    for name in [*layers, *sorted(failed)]:
        keys.setdefault(env_key(name), name)  # `a-b` and `a_b`: the first defined wins
    for var, raw in items:
        rest = var[len(ENV_PREFIX) :]
        if rest.endswith("_TYPE") and rest[:-5] not in keys:
            layer = _create(rest[:-5], var, raw, report)
            keys[rest[:-5]] = layer.name if layer is not None else rest[:-5].lower()
            if layer is not None:
                layers[layer.name] = layer
            else:
                failed.add(keys[rest[:-5]])
    by_length = sorted(keys, key=len, reverse=True)
    read: set[str] = set()
    for var, raw in items:
        rest = var[len(ENV_PREFIX) :]
        candidates = [k for k in by_length if rest.startswith(k + "_") and len(rest) > len(k) + 1]
        if not candidates:
            guess = did_you_mean(rest.rsplit("_", 1)[0], list(keys))
            report.warn(
                "env-unknown-profile",
                f"{var} names no broker profile; it is ignored",
                None,
                hint=guess.replace("`", f"`{ENV_PREFIX}", 1) if guess else None,
            )
            continue
        chosen = next(
            (
                k
                for k in candidates
                if keys[k] in layers and rest[len(k) + 1 :].lower() in FIELDS[layers[keys[k]].type]
            ),
            candidates[0],
        )
        name, key = keys[chosen], rest[len(chosen) + 1 :].lower()
        layer = layers.get(name)
        if layer is None:
            continue  # the profile has errors of its own, already reported
        if key == "type":
            read.add(var)
            if raw.strip().lower() != layer.type and layer.origin != env_where(var):
                report.fail(
                    "bad-type",
                    f"{var}={raw} but profile `{name}` is type {layer.type}: "
                    "a profile's type cannot change",
                    None,
                )
            continue
        if key not in FIELDS[layer.type]:
            report.warn(
                "env-unknown-field",
                f"{var}: profile `{name}` ({layer.type}) has no field `{key}`; it is ignored",
                None,
                hint=did_you_mean(key, [f for f in FIELDS[layer.type] if f != "type"]),
            )
            continue
        ok, value = _parse(layer, key, raw, var, report)
        if ok:
            layer.set(key, value, env_where(var), env_where(var))
            if key not in SECRET_FIELDS:
                read.add(var)
    return read


def apply_flags(
    layers: dict[str, Layer],
    overrides: Mapping[str, Mapping[str, Any]],
    report: Reporter,
) -> None:
    """Command-line flags: ``{profile: {field: value}}``, already typed by the command line."""
    for name, fields in overrides.items():
        layer = layers.get(name.lower())
        if layer is None:
            report.fail(
                "unknown-profile",
                f"no broker profile named `{name}`",
                FLAG,
                hint=did_you_mean(name, list(layers)),
            )
            continue
        for key, value in fields.items():
            if key == "type" or key not in FIELDS[layer.type]:
                report.fail(
                    "unknown-key",
                    f"profile `{layer.name}` ({layer.type}) has no field `{key}`",
                    FLAG,
                    hint=did_you_mean(key, [f for f in FIELDS[layer.type] if f != "type"]),
                )
                continue
            if key in SECRET_FIELDS and isinstance(value, str):
                value = Secret(value)
            layer.set(key, value, FLAG, FLAG)
