"""Resolve a configuration text: ``${VAR}``, built-ins, YAML profiles, ``extends``, env, flags.

Lowest to highest precedence (SPEC §3.4): built-in profile → YAML profile (a same-named YAML profile
overrides the built-in field by field; ``extends: other`` inherits every field of ``other``, built-in
or YAML, and chains) → ``QKT_BROKER_<NAME>_<FIELD>`` → command-line flags. Every field remembers
where it came from; every error names the file and line, and all of them are reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from qkt.config.builtins import BUILTIN_PROFILES, PROFILE_TYPES, SECRET_FIELDS
from qkt.config.check import (
    check_market_data,
    check_profiles,
    check_top,
    cross_check,
    to_resolved,
)
from qkt.config.envvars import ENV_PREFIX, PROFILE_NAME, apply_env, apply_flags
from qkt.config.expand import expand_tree, single_reference, variable_usage
from qkt.config.layers import Layer, Reporter
from qkt.config.models import ConfigFile, ProfileModel
from qkt.config.resolved import ResolvedConfig, Secret
from qkt.diagnostics import Diagnostic, did_you_mean, error, has_errors, sort_key
from qkt.errors import ConfigError
from qkt.yamlsrc import KeyPath, YamlDoc, load_yaml

MAX_EXTENDS = 64
"""The longest ``extends`` chain: a profile may be at most 64 ``extends`` away from its root."""

Usage = dict[str, Literal["value", "presence"]]
"""The variables a resolution read: by value, or only whether they are set (secret-only ones)."""


def _is_secret(keypath: KeyPath) -> bool:
    return len(keypath) == 3 and keypath[0] == "brokers" and keypath[2] in SECRET_FIELDS


def _dotted(keypath: KeyPath) -> str:
    return ".".join(str(p) for p in keypath)


def expand_home(path: str, env: Mapping[str, str]) -> Path:
    """``~`` and ``~/x`` with ``$HOME`` from ``env`` (falling back to the process's home)."""
    home = env.get("HOME")
    if home and (path == "~" or path.startswith("~/")):
        return Path(home) / path[2:]
    return Path(path).expanduser()


class Resolver:
    def __init__(
        self,
        doc: YamlDoc | None,
        display: str | None,
        env: Mapping[str, str],
        overrides: Mapping[str, Mapping[str, Any]] | None,
        base: Path | None = None,
    ) -> None:
        self.doc = doc
        self.base = base
        self.env = env
        self.overrides = overrides or {}
        self.report = Reporter(doc, display)
        self.raw: dict[str, Any] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        self.done: dict[str, Layer | None] = {}
        self.stack: list[str] = []

    # ------------------------------------------------------------ top level
    def resolve(self) -> tuple[ResolvedConfig, Usage]:
        raw: Any = self.doc.data if self.doc is not None else None
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            self.report.fail("bad-config", "the config file must be a mapping of keys", ())
            raise ConfigError(self.report.diags)
        self.raw = raw
        data, unset = expand_tree(raw, self.env)
        for keypath, names in unset:
            missing = ", ".join(f"${{{n}}}" for n in names)
            self.report.warn(
                "unset-variable",
                f"{missing} is not set: `{_dotted(keypath)}` is left unset",
                keypath,
                hint="set it, or give a default with ${VAR:-default}",
            )
        brokers = data.pop("brokers", None)
        top = check_top(data, self.report)
        check_market_data(data, top, self.path, self.report)
        layers, failed = self.layers({} if brokers is None else brokers)
        env_read = apply_env(layers, failed, self.env, self.report)
        apply_flags(layers, self.overrides, self.report)
        models = check_profiles(layers, self.report)
        cross_check(layers, models, self.report)
        diags = sorted(self.report.diags, key=sort_key)
        if has_errors(diags):
            raise ConfigError(diags)

        return self.build(data, top, layers, models, diags), self.usage(env_read)

    def build(
        self,
        data: dict[str, Any],
        top: ConfigFile,
        layers: dict[str, Layer],
        models: dict[str, ProfileModel],
        diags: list[Diagnostic],
    ) -> ResolvedConfig:
        balance = top.paper.starting_balance
        paper = data.get("paper")
        given = isinstance(paper, dict) and "starting_balance" in paper
        balance_source = self.report.source(("paper", "starting_balance")) if given else "default"
        profiles = {
            name: to_resolved(layers[name], model, balance, balance_source)
            for name, model in models.items()
        }
        strict_source = "default"
        if "strict_brokers" in data:
            strict_source = self.report.source(("strict_brokers",))
        market_data = top.market_data.model_dump()
        if market_data["replay"] is not None:
            market_data["replay"]["path"] = str(self.path(market_data["replay"]["path"]))
        return ResolvedConfig(
            path=None,
            display=self.report.display,
            strict_brokers=top.strict_brokers,
            strict_brokers_source=strict_source,
            state_dir=self.path(top.state_dir) if top.state_dir else None,
            profiles=profiles,
            diagnostics=tuple(diags),
            market_data_values=market_data,
            paper_values=top.paper.model_dump(),
        )

    def path(self, text: str) -> Path:
        """A path written in the file: ``~`` is ``$HOME``; relative to the file's directory."""
        path = expand_home(text, self.env)
        return self.base / path if self.base is not None and not path.is_absolute() else path

    def usage(self, env_read: set[str]) -> Usage:
        """What the cache must compare: the value of every variable the result shows, and only
        the presence of those used as whole secrets or ignored."""
        plain, secret = variable_usage(self.raw, _is_secret)
        usage: Usage = {"HOME": "value"}
        usage.update(dict.fromkeys(sorted(plain), "value"))
        usage.update(dict.fromkeys(sorted(secret), "presence"))
        for var in self.env:
            if var.startswith(ENV_PREFIX):
                usage[var] = "value" if var in env_read else "presence"
        return usage

    # ------------------------------------------------------------ profiles
    def layers(self, brokers: Any) -> tuple[dict[str, Layer], set[str]]:
        if not isinstance(brokers, dict):
            self.report.fail(
                "bad-value", "`brokers` must be a mapping of profile name to profile", ("brokers",)
            )
            brokers = {}
        for name, body in brokers.items():
            keypath: KeyPath = ("brokers", name)
            if PROFILE_NAME.fullmatch(name) is None:
                lower = name.lower()
                self.report.fail(
                    "bad-profile-name",
                    f"profile name `{name}` must match [a-z0-9][a-z0-9_-]* "
                    "(it is the lowercased label)",
                    keypath,
                    hint=f"did you mean `{lower}`?" if PROFILE_NAME.fullmatch(lower) else None,
                )
            elif body is not None and not isinstance(body, dict):
                self.report.fail("bad-value", f"profile `{name}` must be a mapping", keypath)
            else:
                self.bodies[name] = body or {}
        layers: dict[str, Layer] = {}
        failed: set[str] = set()
        for name in dict.fromkeys([*BUILTIN_PROFILES, *self.bodies]):
            layer = self.layer(name)
            if layer is not None:
                layers[name] = layer
            else:
                failed.add(name)
        return layers, failed

    def layer(self, name: str) -> Layer | None:
        """The merged layer of ``name``; None when it cannot be resolved (already reported).

        The YAML profiles it extends are merged first, deepest first, so a chain of any length
        resolves without recursion (and is refused past :data:`MAX_EXTENDS`).
        """
        if name not in self.done:
            chain = self.chain(name)
            outer = self.stack
            for index in range(len(chain) - 1, -1, -1):
                self.stack = [*outer, *chain[: index + 1]]  # what extends it, for cycles
                self.done[chain[index]] = self.merge(chain[index])
            self.stack = outer
        return self.done[name]

    def chain(self, name: str) -> list[str]:
        """``name`` and the YAML profiles it extends not resolved yet, nearest first; it ends
        before a built-in, a name that is no profile, or a profile already in the chain."""
        chain = [name]
        seen = {name}
        while True:
            body = self.bodies.get(chain[-1])
            parent = body.get("extends") if body is not None else None
            if not isinstance(parent, str) or parent in seen or parent not in self.bodies:
                return chain
            if parent in self.done:
                return chain
            chain.append(parent)
            seen.add(parent)

    def builtin(self, name: str) -> Layer:
        given = BUILTIN_PROFILES[name]
        layer = Layer(name, given["type"], at=(), origin="builtin", fresh=False)
        for key, value in given.items():
            layer.set(key, dict(value) if isinstance(value, dict) else value, "builtin", ())
        return layer

    def merge(self, name: str) -> Layer | None:
        body = self.bodies.get(name)
        if body is None:
            return self.builtin(name) if name in BUILTIN_PROFILES else None
        keypath: KeyPath = ("brokers", name)
        parent = body.get("extends")
        if parent == name and name in BUILTIN_PROFILES:
            parent = None  # `exness: {extends: exness}` is the plain override of the built-in
        base: Layer | None = None
        if parent is not None:
            base = self.parent(name, parent)
            if base is None:
                return None
            if len(base.parents) >= MAX_EXTENDS:
                self.report.fail(
                    "extends-too-deep",
                    f"profile `{name}` is more than {MAX_EXTENDS} `extends` away from the "
                    f"profile its chain starts at ({base.parents[-1]})",
                    (*keypath, "extends"),
                    hint="extend the profile that chain starts at directly",
                )
                return None
        elif name in BUILTIN_PROFILES:
            base = self.builtin(name)
        declared = body.get("type")
        kind = declared if declared is not None else (base.type if base else None)
        if kind is None:
            self.report.fail(
                "missing-type",
                f"profile `{name}` needs `type:` (mt5, bybit or paper), or `extends:` a profile",
                keypath,
            )
            return None
        if not isinstance(kind, str) or kind not in PROFILE_TYPES:
            self.report.fail(
                "bad-type",
                f"profile `{name}` has unknown type `{kind}` (mt5, bybit or paper)",
                (*keypath, "type"),
                hint=did_you_mean(str(kind), PROFILE_TYPES),
            )
            return None
        if base is not None and base.type != kind:
            what = f"extends `{parent}`" if parent is not None else f"overrides built-in `{name}`"
            self.report.fail(
                "extends-type-mismatch",
                f"profile `{name}` is type {kind} but {what}, which is type {base.type}",
                (*keypath, "type"),
                hint=None if parent is not None else "give the profile another name",
            )
            return None
        layer = Layer(
            name,
            kind,
            at=keypath,
            origin=self.report.source(keypath),
            fresh=base is None,
            parents=() if base is None else (base.name, *base.parents),
        )
        if base is not None:
            for key, value in base.values.items():
                source = base.sources[key]
                if parent is not None and not source.startswith("extends:"):
                    source = f"extends:{base.name}"  # inherited: name the profile it came from
                layer.set(key, value, source, base.where[key])
        for key, value in body.items():
            if key != "extends":
                layer.set(
                    key,
                    self.secret(name, key, value),
                    self.report.source((*keypath, key)),
                    (*keypath, key),
                )
        layer.values["type"] = kind
        return layer

    def secret(self, name: str, key: str, value: Any) -> Any:
        """Secret fields become :class:`Secret`, remembering the variable they are exactly."""
        if key not in SECRET_FIELDS or not isinstance(value, str):
            return value
        raw = self.raw.get("brokers", {}).get(name, {}).get(key)
        ref = single_reference(raw) if isinstance(raw, str) else None
        exact = ref is not None and self.env.get(ref) == value
        return Secret(value, ref=ref if exact else None)

    def parent(self, name: str, parent: Any) -> Layer | None:
        keypath: KeyPath = ("brokers", name, "extends")
        if not isinstance(parent, str):
            self.report.fail(
                "bad-value", f"profile `{name}`: `extends` must be a profile name", keypath
            )
            return None
        if parent in self.stack:
            cycle = [*self.stack[self.stack.index(parent) :], parent]
            if len(cycle) > 12:  # a long loop: its start and its end
                cycle = [*cycle[:5], f"... ({len(cycle) - 1} profiles) ...", *cycle[-3:]]
            self.report.fail("extends-cycle", f"`extends` loops: {' -> '.join(cycle)}", keypath)
            return None
        if parent not in self.bodies and parent not in BUILTIN_PROFILES:
            known = [*BUILTIN_PROFILES, *self.bodies]
            self.report.fail(
                "unknown-extends",
                f"profile `{name}` extends `{parent}`, which is not a profile",
                keypath,
                hint=did_you_mean(parent, known),
            )
            return None
        return self.layer(parent)


def resolve_text(
    text: str,
    display: str | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    base: Path | None = None,
) -> tuple[ResolvedConfig, Usage]:
    """Resolve a configuration from its text; ``display`` names the file (None: no file) and
    ``base`` is its directory, against which relative paths in it are resolved."""
    doc: YamlDoc | None = None
    if display is not None:
        doc, diags = load_yaml(text, display)
        if doc is None or has_errors(diags):
            raise ConfigError(diags or [error("yaml-syntax", "invalid YAML", path=display)])
    return Resolver(doc, display, env, overrides, base).resolve()
