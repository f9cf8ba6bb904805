"""Validate merged profiles with their pydantic models, and the checks across profiles.

An error is reported once, where the value was written: a field a profile inherits is checked by
the profile that set it, and a required field missing from a profile whose parent is broken is the
parent's problem. Cross-profile checks: duplicate ``magic`` on one gateway, ``quotes_from``.
Top-level checks beyond the model: a ``market_data`` replay source names a file that exists.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from qkt.config.builtins import complete
from qkt.config.layers import Layer, Reporter, Where
from qkt.config.messages import Problem, problems
from qkt.config.models import PROFILE_MODELS, ConfigFile, ProfileModel, gateway_key
from qkt.config.resolved import ResolvedProfile, Secret
from qkt.diagnostics import did_you_mean


def check_top(data: dict[str, Any], report: Reporter) -> ConfigFile:
    """The top-level keys; defaults stand in for anything wrong (already reported)."""
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        found = problems(exc.errors(), ConfigFile)
    for problem in found:
        report.fail(problem.code, problem.message, problem.loc, hint=problem.hint)
    wrong = {p.loc[0] for p in found if p.loc}
    try:
        return ConfigFile.model_validate({k: v for k, v in data.items() if k not in wrong})
    except ValidationError:
        return ConfigFile()


def check_market_data(
    data: dict[str, Any], top: ConfigFile, path_of: Callable[[str], Path], report: Reporter
) -> None:
    """``source: replay`` needs ``replay.path`` naming a file that exists (``path_of`` resolves
    it as the loader does: ``~`` is $HOME, relative to the config file)."""
    market = top.market_data
    given = data.get("market_data")
    if market.source != "replay" or not isinstance(given, dict) or given.get("source") is None:
        return
    if market.replay is None:
        report.fail(
            "replay-not-found",
            "market_data.source is replay but no replay file is given",
            ("market_data", "source"),
            hint="add `replay: {path: bars.csv}` beside it",
        )
        return
    path = path_of(market.replay.path)
    shown = str(path)
    try:
        what = None if path.is_file() else "is not a file" if path.exists() else "does not exist"
    except OSError as exc:  # a name the system refuses to look up (too long)
        from qkt.textfile import os_reason

        what = f"cannot be used: {os_reason(exc)}"
        shown = shown if len(shown) <= 80 else f"{shown[:56]}...{shown[-12:]}"
    if what is not None:
        report.fail(
            "replay-not-found",
            f"market_data.replay.path {shown} {what}",
            ("market_data", "replay", "path"),
        )


def _validate(layer: Layer) -> tuple[ProfileModel | None, list[Problem]]:
    data = {k: (v.reveal() if isinstance(v, Secret) else v) for k, v in layer.values.items()}
    model = PROFILE_MODELS[layer.type]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, problems(exc.errors(), model)


def _where(layer: Layer, loc: tuple[str, ...]) -> Where:
    """The position of a problem: the key in the file (nested keys too), or the variable."""
    where = layer.where.get(loc[0]) if loc else None
    if isinstance(where, tuple):
        return (*where, *loc[1:])
    return where if where is not None else layer.at


def check_profiles(layers: dict[str, Layer], report: Reporter) -> dict[str, ProfileModel]:
    """Validate every layer; report each problem once, where it was written."""
    models: dict[str, ProfileModel] = {}
    found: dict[str, list[Problem]] = {}
    for name, layer in layers.items():
        model, errs = _validate(layer)
        if model is not None:
            models[name] = model
        found[name] = errs
    for name, layer in layers.items():
        broken_parent = any(found.get(p) for p in layer.parents)
        for problem in found[name]:
            key = problem.loc[0] if problem.loc else ""
            hint: str | None
            if problem.code == "missing-field":
                if broken_parent and not layer.fresh:
                    continue
                hint = _missing_hint(layer, key)
            elif not layer.own(key):
                continue  # inherited: reported by the profile that set it
            else:
                hint = problem.hint
            report.fail(
                problem.code,
                f"profile `{name}`: {problem.message}",
                _where(layer, problem.loc),
                hint=hint,
            )
    return models


def _missing_hint(layer: Layer, key: str) -> str:
    if isinstance(layer.at, str):
        return f"set QKT_BROKER_{layer.name.upper().replace('-', '_')}_{key.upper()}"
    return f"a new {layer.type} profile must set it, or `extends:` a profile that does"


def _own_or_profile(layer: Layer, key: str) -> Where:
    """The line of ``key`` if this profile set it, else the profile's own line."""
    return layer.where[key] if layer.own(key) else layer.at


def cross_check(
    layers: dict[str, Layer], models: dict[str, ProfileModel], report: Reporter
) -> None:
    """Duplicate magic numbers on one gateway; ``quotes_from`` naming a venue profile."""
    seen: dict[tuple[str, int], str] = {}
    for name, model in models.items():
        layer = layers[name]
        if model.type == "mt5":
            other = seen.setdefault((gateway_key(model.gateway_url), model.magic), name)
            if other != name:
                report.fail(
                    "duplicate-magic",
                    f"profiles `{other}` and `{name}` share gateway {model.gateway_url} and "
                    f"magic {model.magic}: their orders could not be told apart",
                    _own_or_profile(layer, "magic"),
                    hint=f"give `{name}` its own `magic`",
                )
        elif model.type == "paper" and model.quotes_from is not None:
            target = model.quotes_from
            where = _own_or_profile(layer, "quotes_from")
            venue = layers.get(target)
            if venue is None or target == name:
                report.fail(
                    "unknown-profile",
                    f"profile `{name}`: quotes_from `{target}` is not another profile",
                    where,
                    hint=did_you_mean(target, [n for n in layers if n != name]),
                )
            elif venue.type == "paper":
                report.fail(
                    "bad-value",
                    f"profile `{name}`: quotes_from `{target}` is a paper profile, which has "
                    "no quotes of its own; name an mt5 or bybit profile",
                    where,
                )


def to_resolved(
    layer: Layer, model: BaseModel, balance: Decimal, balance_source: str
) -> ResolvedProfile:
    """The resolved profile: the model's values (secrets kept as :class:`Secret`) and sources."""
    values: dict[str, Any] = {}
    for key, value in model.model_dump().items():
        if isinstance(value, SecretStr):
            given = layer.values.get(key)
            value = given if isinstance(given, Secret) else Secret(value.get_secret_value())
        values[key] = value
    sources = {key: layer.sources.get(key, "default") for key in values}
    missing = {k for k, v in values.items() if v is None}
    complete(layer.type, values, balance)
    if "starting_balance" in missing and layer.type == "paper":
        sources["starting_balance"] = balance_source
    kind: Any = layer.type
    return ResolvedProfile(layer.name, kind, values, sources, layer.origin)
