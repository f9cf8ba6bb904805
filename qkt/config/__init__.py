"""qkt.config.yaml: discovery (SPEC §3.1), resolution (§3.4) and the resolved profiles.

``load_config`` is what every command calls, and it is cheap: with no config file and no
``QKT_BROKER_*`` variable the built-in profiles resolve from plain data; a file is validated with
pydantic once and then served from a cache (:mod:`qkt.config.cache`) until it or its variables change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from qkt.config.resolved import ResolvedConfig, ResolvedProfile, Secret
from qkt.diagnostics import error
from qkt.errors import ConfigError

__all__ = [
    "CONFIG_NAME",
    "ResolvedConfig",
    "ResolvedProfile",
    "Secret",
    "config_json_schema",
    "discover_config",
    "load_config",
    "resolve_state_dir",
]

CONFIG_NAME = "qkt.config.yaml"


def _home(path: Path, env: Mapping[str, str]) -> Path:
    text = str(path)
    home = env.get("HOME")
    if home and (text == "~" or text.startswith("~/")):
        return Path(home) / text[2:]
    return path.expanduser()


def _named(given: Path, env: Mapping[str, str], cwd: Path | None, how: str) -> Path:
    path = _home(given, env)
    if cwd is not None and not path.is_absolute():
        path = cwd / path
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(error("config-not-found", f"config file {given} {what} ({how})"))
    return path


def discover_config(
    explicit: Path | None, env: Mapping[str, str], cwd: Path | None = None
) -> Path | None:
    """First found wins: ``--config`` → ``$QKT_CONFIG`` → ``./qkt.config.yaml`` →
    ``$XDG_CONFIG_HOME/qkt/qkt.config.yaml`` (default ``~/.config/qkt/qkt.config.yaml``).

    A ``--config`` or ``$QKT_CONFIG`` path that does not exist raises ConfigError
    (``config-not-found``); finding nothing returns None (built-in profiles only).
    """
    if explicit is not None:
        return _named(explicit, env, cwd, "--config")
    named = env.get("QKT_CONFIG")
    if named:
        return _named(Path(named), env, cwd, "$QKT_CONFIG")
    here = (cwd or Path.cwd()) / CONFIG_NAME
    if here.is_file():
        return here
    base = env.get("XDG_CONFIG_HOME") or (
        str(Path(env["HOME"]) / ".config") if env.get("HOME") else None
    )
    if base:
        path = Path(base) / "qkt" / CONFIG_NAME
        if path.is_file():
            return path
    return None


def _display(path: Path, cwd: Path) -> str:
    """How diagnostics and provenance name the file: relative to the working directory if inside."""
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def _read(path: Path, display: str) -> str:
    """The file's text: a regular UTF-8 file of at most 1 MiB (:mod:`qkt.textfile`)."""
    from qkt.textfile import read_text

    text = read_text(path, display, code="yaml-encoding")
    if not isinstance(text, str):
        raise ConfigError(text)
    return text


def load_config(
    explicit: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> ResolvedConfig:
    """Discover, read and resolve the configuration.

    ``env`` defaults to the process environment; ``overrides`` are command-line flags by profile
    (``{"exness": {"magic": 7}}``, source ``flag``). Raises ConfigError with every error found;
    warnings are in :attr:`ResolvedConfig.diagnostics`.
    """
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    path = discover_config(explicit, env, cwd)
    if path is None and not overrides and not any(k.startswith("QKT_BROKER_") for k in env):
        from qkt.config.defaults import builtin_config

        return builtin_config()
    text, display = "", None
    if path is not None:
        display = _display(path, cwd)
        text = _read(path, display)

    from qkt.config import cache

    directory = None if overrides else cache.cache_dir(env)
    key = cache.cache_key(text, display)
    config = cache.lookup(directory, path, key, env)
    if config is None:
        from qkt.config.resolve import resolve_text

        base = path.parent.resolve() if path is not None else None
        config, usage = resolve_text(text, display, env, overrides, base)
        cache.store(directory, path, key, env, config, usage)
    return replace(config, path=path)


def resolve_state_dir(
    flag: Path | None, env: Mapping[str, str], config: ResolvedConfig | None
) -> Path:
    """The daemon's state dir (SPEC §6.1): ``--state-dir`` → ``$QKT_STATE_DIR`` → ``state_dir`` of
    the config → ``$XDG_STATE_HOME/qkt`` (default ``~/.local/state/qkt``)."""
    if flag is not None:
        return _home(flag, env)
    if env.get("QKT_STATE_DIR"):
        return _home(Path(env["QKT_STATE_DIR"]), env)
    if config is not None and config.state_dir is not None:
        return config.state_dir
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "qkt"
    return _home(Path("~/.local/state/qkt"), env)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of qkt.config.yaml, for editors and CI."""
    from qkt.config.schema import config_json_schema as build

    return build()
