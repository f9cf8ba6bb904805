"""Load qkt.config.yaml: discovery, ``${VAR}``, built-ins, ``extends``, env overrides, provenance.

Resolution, lowest to highest precedence (SPEC §3.4): built-in profile → YAML profile (a same-named
YAML profile overrides the built-in field by field; ``extends: other`` inherits every field of
``other`` and chains) → ``QKT_BROKER_<NAME>_<FIELD>`` → command-line flags. Every field remembers
where it came from. Every error names the file and line; all of them are reported at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from qkt.config.builtins import BUILTIN_PROFILES
from qkt.config.expand import expand_tree
from qkt.config.models import PROFILE_MODELS, SECRET_FIELDS, ConfigFile
from qkt.config.resolved import ResolvedConfig, ResolvedProfile, Secret
from qkt.diagnostics import Diagnostic, did_you_mean, error, has_errors, sort_key, warning
from qkt.errors import ConfigError
from qkt.yamlsrc import KeyPath, YamlDoc, load_yaml

PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
ENV_PREFIX = "QKT_BROKER_"
_JSON_FIELDS = frozenset({"aliases", "instrument_overrides"})


@dataclass
class _Layer:
    """A profile while it is being resolved."""

    name: str
    type: str | None
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    where: dict[str, KeyPath | str] = field(default_factory=dict)  # keypath in file, or env var
    origin: str = "builtin"
    keypath: KeyPath | None = None


class Resolver:
    def __init__(
        self,
        doc: YamlDoc | None,
        display: str | None,
        env: Mapping[str, str],
        overrides: Mapping[str, Mapping[str, Any]] | None,
    ) -> None:
        self.doc = doc
        self.display = display or ""
        self.env = env
        self.overrides = overrides or {}
        self.diags: list[Diagnostic] = []
        self.yaml_profiles: dict[str, dict[str, Any]] = {}
        self.done: dict[str, _Layer | None] = {}
        self.in_progress: set[str] = set()

    # ------------------------------------------------------------ positions
    def at(self, keypath: KeyPath | str | None) -> dict[str, Any]:
        if self.doc is None or keypath is None or isinstance(keypath, str):
            return {"path": self.display or None}
        line, column = self.doc.where(keypath)
        return {"path": self.display, "line": line, "column": column}

    def source(self, keypath: KeyPath) -> str:
        line = self.doc.line(keypath) if self.doc is not None else None
        return f"config:{self.display}:{line}"

    def fail(self, code: str, message: str, keypath: KeyPath | str | None, **kw: Any) -> None:
        if isinstance(keypath, str):  # an environment variable
            message = f"{message} (from {keypath})"
        self.diags.append(error(code, message, **self.at(keypath), **kw))

    # ------------------------------------------------------------ top level
    def resolve(self) -> ResolvedConfig:
        data: Any = self.doc.data if self.doc is not None else None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.fail("bad-config", "the config file must be a mapping of keys to values", ())
            raise ConfigError(self.diags)
        data, unset = expand_tree(data, self.env)
        for keypath, names in unset:
            missing = ", ".join(f"${{{n}}}" for n in names)
            self.diags.append(
                warning(
                    "unset-variable",
                    f"{missing} is not set: `{_dotted(keypath)}` is left unset",
                    strict=True,
                    hint="set it, or give a default with ${VAR:-default}",
                    **self.at(keypath),
                )
            )
        brokers = data.pop("brokers", None)
        top = self.validate_top(data)
        profiles = self.resolve_profiles(brokers if brokers is not None else {})
        self.cross_checks(profiles)
        self.diags.sort(key=sort_key)
        if has_errors(self.diags):
            raise ConfigError(self.diags)
        return self.build(top, profiles)

    def validate_top(self, data: dict[str, Any]) -> ConfigFile:
        try:
            return ConfigFile.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                self.report_pydantic(err, loc, loc, ConfigFile)
            return ConfigFile.model_validate({})

    # ------------------------------------------------------------ profiles
    def resolve_profiles(self, brokers: Any) -> dict[str, _Layer]:
        if not isinstance(brokers, dict):
            self.fail(
                "bad-value", "`brokers` must be a mapping of profile name to profile", ("brokers",)
            )
            brokers = {}
        for name, body in brokers.items():
            keypath: KeyPath = ("brokers", name)
            if PROFILE_NAME.fullmatch(name) is None:
                hint = (
                    f"did you mean `{name.lower()}`?"
                    if PROFILE_NAME.fullmatch(name.lower())
                    else None
                )
                self.fail(
                    "bad-profile-name",
                    f"profile name `{name}` must match [a-z0-9][a-z0-9_-]* (it is the lowercased label)",
                    keypath,
                    hint=hint,
                )
                continue
            if body is None:
                body = {}
            if not isinstance(body, dict):
                self.fail("bad-value", f"profile `{name}` must be a mapping of fields", keypath)
                continue
            self.yaml_profiles[name] = body
        names = list(dict.fromkeys([*BUILTIN_PROFILES, *self.yaml_profiles]))
        layers: dict[str, _Layer] = {}
        for name in names:
            layer = self.layer(name, ())
            if layer is not None:
                layers[name] = layer
        self.apply_env(layers)
        self.apply_flags(layers)
        return layers

    def layer(self, name: str, stack: tuple[str, ...]) -> _Layer | None:
        """The merged layer of ``name`` (None when it cannot be resolved: already reported)."""
        if name in self.done:
            return self.done[name]
        self.in_progress.add(name)
        try:
            result = self.merge(name, stack)
        finally:
            self.in_progress.discard(name)
        self.done[name] = result
        return result

    def merge(self, name: str, stack: tuple[str, ...]) -> _Layer | None:
        body = self.yaml_profiles.get(name)
        builtin = BUILTIN_PROFILES.get(name)
        if body is None:
            return self.layer_of_builtin(name) if builtin is not None else None
        keypath: KeyPath = ("brokers", name)
        base: _Layer | None = None
        parent = body.get("extends")
        if parent is not None:
            base = self.parent_layer(name, parent, stack)
            if base is None:
                return None
        elif builtin is not None:
            base = self.layer_of_builtin(name)
        declared = body.get("type")
        kind = declared if declared is not None else (base.type if base else None)
        if kind is None:
            self.fail(
                "missing-type",
                f"profile `{name}` needs `type:` (mt5, bybit or paper) or `extends:` a profile",
                keypath,
            )
            return None
        if not isinstance(kind, str) or kind not in PROFILE_MODELS:
            self.fail(
                "bad-type",
                f"profile `{name}` has unknown type `{kind}` (mt5, bybit or paper)",
                (*keypath, "type"),
                hint=did_you_mean(str(kind), list(PROFILE_MODELS)),
            )
            return None
        if base is not None and base.type != kind:
            what = (
                f"extends `{parent}`" if parent is not None else f"overrides the built-in `{name}`"
            )
            self.fail(
                "extends-type-mismatch",
                f"profile `{name}` is type {kind} but {what} of type {base.type}",
                (*keypath, "type") if declared is not None else keypath,
                hint=None if parent is not None else "choose another profile name",
            )
            return None
        layer = _Layer(name, kind, origin=self.source(keypath), keypath=keypath)
        if base is not None:
            layer.values.update(base.values)
            for key, src in base.sources.items():
                # Inherited fields name the profile that defined them: extends:<profile>.
                if parent is not None and not src.startswith("extends:"):
                    src = f"extends:{base.name}"
                layer.sources[key] = src
                layer.where[key] = base.where.get(key, keypath)
        for key, value in body.items():
            if key == "extends":
                continue
            layer.values[key] = value
            layer.sources[key] = self.source((*keypath, key))
            layer.where[key] = (*keypath, key)
        layer.values["type"] = kind
        return layer

    def parent_layer(self, name: str, parent: Any, stack: tuple[str, ...]) -> _Layer | None:
        keypath: KeyPath = ("brokers", name, "extends")
        if not isinstance(parent, str):
            self.fail("bad-value", f"`extends` of `{name}` must be a profile name", keypath)
            return None
        if parent in self.in_progress:
            chain = (*stack, name)
            cycle = [*chain[chain.index(parent) :], parent] if parent in chain else [name, parent]
            self.fail("extends-cycle", f"`extends` chain loops: {' -> '.join(cycle)}", keypath)
            return None
        if parent not in self.yaml_profiles and parent not in BUILTIN_PROFILES:
            known = sorted({*self.yaml_profiles, *BUILTIN_PROFILES})
            self.fail(
                "unknown-extends",
                f"profile `{name}` extends `{parent}`, which is not a profile",
                keypath,
                hint=did_you_mean(parent, known),
            )
            return None
        return self.layer(parent, (*stack, name))

    def layer_of_builtin(self, name: str) -> _Layer:
        values = dict(BUILTIN_PROFILES[name])
        return _Layer(name, values["type"], values, dict.fromkeys(values, "builtin"))

    # ------------------------------------------------------------ environment and flags
    def apply_env(self, layers: dict[str, _Layer]) -> None:
        items = sorted((k, v) for k, v in self.env.items() if k.startswith(ENV_PREFIX))
        keys = {name.upper().replace("-", "_"): name for name in layers}
        for var, value in items:
            rest = var[len(ENV_PREFIX) :]
            if rest.endswith("_TYPE") and rest[:-5] not in keys and rest[:-5]:
                name = rest[:-5].lower().replace("_", "-")
                kind = value.strip().lower()
                if kind not in PROFILE_MODELS:
                    self.fail(
                        "bad-type",
                        f"unknown profile type `{value}` (mt5, bybit or paper)",
                        var,
                        hint=did_you_mean(kind, list(PROFILE_MODELS)),
                    )
                    continue
                layers[name] = _Layer(
                    name, kind, {"type": kind}, {"type": f"env:{var}"}, origin=f"env:{var}"
                )
                keys[rest[:-5]] = name
        for var, value in items:
            rest = var[len(ENV_PREFIX) :]
            key = next(
                (k for k in sorted(keys, key=len, reverse=True) if rest.startswith(k + "_")), None
            )
            if key is None:
                guess = did_you_mean(rest.rsplit("_", 1)[0], list(keys))
                self.diags.append(
                    warning(
                        "env-unknown-profile",
                        f"{var} names no broker profile; it is ignored",
                        strict=True,
                        hint=guess.replace("`", "`QKT_BROKER_", 1) if guess else None,
                    )
                )
                continue
            layer = layers[keys[key]]
            name = rest[len(key) + 1 :].lower()
            assert layer.type is not None
            fields = PROFILE_MODELS[layer.type].model_fields
            if name == "type":
                if value.strip().lower() != layer.type:
                    self.fail(
                        "extends-type-mismatch",
                        f"{var}={value} but profile `{layer.name}` is type {layer.type}",
                        var,
                    )
                continue
            if name not in fields:
                self.diags.append(
                    warning(
                        "env-unknown-field",
                        f"{var}: profile `{layer.name}` ({layer.type}) has no field `{name}`; ignored",
                        strict=True,
                        hint=did_you_mean(name, list(fields)),
                    )
                )
                continue
            parsed: Any = value
            if name in _JSON_FIELDS:
                try:
                    parsed = json.loads(value)
                except ValueError:
                    self.fail("bad-value", f"`{name}` must be a JSON object", var)
                    continue
            layer.values[name] = parsed
            layer.sources[name] = f"env:{var}"
            layer.where[name] = var

    def apply_flags(self, layers: dict[str, _Layer]) -> None:
        for name, fields in self.overrides.items():
            layer = layers.get(name.lower())
            if layer is None:
                self.fail("unknown-profile", f"no broker profile named `{name}`", None)
                continue
            for key, value in fields.items():
                layer.values[key] = value
                layer.sources[key] = "flag"
                layer.where[key] = "a command-line flag"

    # ------------------------------------------------------------ validation
    def validate(self, layer: _Layer) -> BaseModel | None:
        assert layer.type is not None
        model = PROFILE_MODELS[layer.type]
        try:
            return model.model_validate(layer.values)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                where = layer.where.get(str(loc[0])) if loc else None
                keypath: KeyPath | str | None
                if isinstance(where, tuple):
                    keypath = (*where, *loc[1:])
                else:
                    keypath = where if where is not None else layer.keypath
                self.report_pydantic(err, loc, keypath, model, profile=layer.name)
            return None

    def report_pydantic(
        self,
        err: Any,
        loc: tuple[Any, ...],
        keypath: KeyPath | str | None,
        model: type[BaseModel],
        profile: str | None = None,
    ) -> None:
        kind = err["type"]
        dotted = ".".join(str(p) for p in loc)
        owner = f"profile `{profile}`: " if profile else ""
        if kind == "extra_forbidden":
            fields = list(model.model_fields)
            if len(loc) > 1 and profile is not None:
                fields = ["min_volume", "max_volume", "volume_step", "digits"]
            self.fail(
                "unknown-key",
                f"{owner}unknown key `{loc[-1]}`",
                keypath,
                hint=did_you_mean(str(loc[-1]), fields),
            )
            return
        if kind == "missing":
            fresh = " (a new profile: set it, or `extends:` an existing profile)" if profile else ""
            self.fail("missing-field", f"{owner}`{dotted}` is required{fresh}", keypath)
            return
        message = str(err["msg"]).removeprefix("Value error, ")
        shown = ""
        if str(loc[0]) not in SECRET_FIELDS and isinstance(err.get("input"), str | int | float):
            shown = f", got {err['input']!r}"
        code = "bad-url" if str(loc[0]) in ("gateway_url", "base_url") else "bad-value"
        message = message[:1].lower() + message[1:]
        self.fail(code, f"{owner}`{dotted}`: {message}{shown}", keypath)

    def cross_checks(self, layers: dict[str, _Layer]) -> None:
        self.models: dict[str, BaseModel] = {}
        for name, layer in layers.items():
            model = self.validate(layer)
            if model is not None:
                self.models[name] = model
        seen: dict[tuple[str, int], str] = {}
        for name, model in self.models.items():
            data = model.model_dump()
            if data["type"] == "mt5":
                key = (data["gateway_url"], data["magic"])
                other = seen.setdefault(key, name)
                if other != name:
                    self.fail(
                        "duplicate-magic",
                        f"profiles `{other}` and `{name}` share gateway {key[0]} and magic {key[1]}: "
                        "their orders could not be told apart",
                        layers[name].where.get("magic", layers[name].keypath),
                    )
            elif data["type"] == "paper" and data.get("quotes_from") is not None:
                target = data["quotes_from"]
                if target not in layers or target == name:
                    self.fail(
                        "unknown-profile",
                        f"profile `{name}` takes quotes from `{target}`, which is not another profile",
                        layers[name].where.get("quotes_from", layers[name].keypath),
                        hint=did_you_mean(target, [n for n in layers if n != name]),
                    )

    # ------------------------------------------------------------ result
    def build(self, top: ConfigFile, layers: dict[str, _Layer]) -> ResolvedConfig:
        balance_source = (
            self.source(("paper", "starting_balance"))
            if self.has(("paper", "starting_balance"))
            else "default"
        )
        profiles: dict[str, ResolvedProfile] = {}
        for name, model in self.models.items():
            layer = layers[name]
            values = {k: _plain(v) for k, v in model.model_dump().items()}
            sources = {k: layer.sources.get(k, "default") for k in values}
            if values.get("type") == "paper" and values.get("starting_balance") is None:
                values["starting_balance"] = top.paper.starting_balance
                sources["starting_balance"] = balance_source
            profiles[name] = ResolvedProfile(name, model.type, values, sources, layer.origin)  # type: ignore[attr-defined]
        strict_source = "default"
        if self.has(("strict_brokers",)):
            strict_source = self.source(("strict_brokers",))
        state_dir = self.env.get("QKT_STATE_DIR") or top.state_dir
        return ResolvedConfig(
            path=None,
            display=self.display or None,
            strict_brokers=top.strict_brokers,
            strict_brokers_source=strict_source,
            state_dir=_expand_home(state_dir, self.env) if state_dir else None,
            market_data=top.market_data.model_dump(),
            paper={k: _plain(v) for k, v in top.paper.model_dump().items()},
            profiles=profiles,
            diagnostics=tuple(self.diags),
        )

    def has(self, keypath: KeyPath) -> bool:
        return self.doc is not None and keypath in self.doc.positions


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return Secret(value.get_secret_value())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Decimal | str | int | float | bool) or value is None:
        return value
    return value


def _expand_home(path: str, env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    if home and (path == "~" or path.startswith("~/")):
        return Path(home) / path[2:]
    return Path(path).expanduser()


def _dotted(keypath: KeyPath) -> str:
    return ".".join(str(p) for p in keypath)


def resolve_text(
    text: str,
    display: str | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> ResolvedConfig:
    """Resolve a configuration from its text (``display`` names the file in diagnostics)."""
    doc: YamlDoc | None = None
    if display is not None:
        doc, diags = load_yaml(text, display)
        if doc is None or any(d.severity == "error" for d in diags):
            raise ConfigError(diags)
    return Resolver(doc, display, env, overrides).resolve()
