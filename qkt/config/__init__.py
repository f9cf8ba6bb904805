"""qkt.config.yaml: discovery (SPEC §3.1), resolution (§3.4) and the resolved profiles.

``load_config`` is what every command calls. It is cheap to import: pydantic (the edge validator)
is imported only when a configuration has to be validated and is not in the cache.
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
    "ResolvedConfig",
    "ResolvedProfile",
    "Secret",
    "config_json_schema",
    "discover_config",
    "load_config",
]

CONFIG_NAME = "qkt.config.yaml"


def discover_config(
    explicit: Path | None, env: Mapping[str, str], cwd: Path | None = None
) -> Path | None:
    """First found wins: ``--config`` → ``$QKT_CONFIG`` → ``./qkt.config.yaml`` → XDG config."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(
                error("config-not-found", f"config file {explicit} does not exist (--config)")
            )
        return explicit
    named = env.get("QKT_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(
                error("config-not-found", f"config file {named} does not exist ($QKT_CONFIG)")
            )
        return path
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


def load_config(
    explicit: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> ResolvedConfig:
    """Discover, read and resolve the configuration; raises ConfigError with every error found."""
    from qkt.config import cache

    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    path = discover_config(explicit, env, cwd)
    text, display = "", None
    if path is not None:
        display = _display(path, cwd)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(
                error("yaml-encoding", "file is not UTF-8 text", path=display)
            ) from None
        except OSError as exc:
            raise ConfigError(
                error("file-unreadable", f"cannot read: {exc.strerror}", path=display)
            ) from None
    directory = cache.cache_dir(env) if not overrides else None
    key = cache.cache_key(text, display, env)
    config = cache.load(directory, key)
    if config is None:
        from qkt.config.loader import resolve_text

        config = resolve_text(text, display, env, overrides)
        cache.store(directory, key, config)
    return replace(config, path=path)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of qkt.config.yaml (what ``qkt config schema`` prints)."""
    from qkt.config.models import config_json_schema as build

    return build()
