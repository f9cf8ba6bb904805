"""A cache of resolved configurations, so a cold ``qkt validate`` does not pay for pydantic.

Importing pydantic and building the models costs more than the whole start-up budget of
``qkt validate`` (SPEC §9). A configuration resolved once is stored as JSON in
``$XDG_CACHE_HOME/qkt`` (default ``~/.cache/qkt``; directory 0700, files 0600, one file per config
path) and reused while nothing that can change it has changed: the qkt version, the loader's
source files, the config text, the set of ``QKT_BROKER_*`` variables and the value of every
variable the configuration read.

Secrets are never written: a secret is stored as the *name* of the variable it came from and read
from the environment again, and a variable used only as a whole secret (``api_key: ${KEY}``) is
keyed by whether it is set, never by its value. A configuration holding a secret written in the
file itself (or given by a flag) is not cached. ``QKT_NO_CACHE=1`` turns the cache off.

At most :data:`MAX_ENTRIES` configurations are kept: writing one more removes the least recently
used (a hit sets its entry's access time; the modification time stays when it was written). A
hit whose ``market_data`` replay file no longer exists is a miss, so the loader reports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from qkt import __version__
from qkt.config.resolved import ResolvedConfig, ResolvedProfile, Secret
from qkt.diagnostics import Diagnostic

_FORMAT = "qkt-config-cache-2"
_HERE = Path(__file__).resolve().parent
_MODULES = ("builtins", "check", "defaults", "envvars", "expand", "layers", "messages", "models")
_SOURCES = (
    *(
        _HERE / f"{name}.py"
        for name in (*_MODULES, "resolve", "resolved", "timezones", "cache", "__init__")
    ),
    _HERE.parent / "yamlsrc.py",
    _HERE.parent / "diagnostics.py",
)


MAX_ENTRIES = 32
"""Configurations kept in the cache directory (one per config file path)."""


class _Uncacheable(Exception):
    pass


def cache_dir(env: Mapping[str, str]) -> Path | None:
    if env.get("QKT_NO_CACHE", "").strip() not in ("", "0"):
        return None
    base = env.get("XDG_CACHE_HOME") or (env.get("HOME") and str(Path(env["HOME"]) / ".cache"))
    return Path(base) / "qkt" if base else None


def cache_key(text: str, display: str | None) -> str:
    digest = hashlib.sha256(f"{_FORMAT}\0{__version__}\0".encode())
    for source in _SOURCES:
        try:
            stat = source.stat()
        except OSError:
            continue
        digest.update(f"{source.name}:{stat.st_mtime_ns}:{stat.st_size}\0".encode())
    digest.update(f"{display}\0".encode())
    digest.update(text.encode())
    return digest.hexdigest()


def slot_of(directory: Path, path: Path | None) -> Path:
    """The cache file of the configuration at ``path`` (None: no file, built-ins and env)."""
    where = str(path.resolve()) if path is not None else "<no file>"
    return directory / f"config-{hashlib.sha256(where.encode()).hexdigest()[:32]}.json"


def _state(var: str, mode: str, env: Mapping[str, str]) -> str:
    value = env.get(var)
    if value is None:
        return "unset"
    if mode == "presence":
        return "set" if value else "empty"
    return hashlib.sha256(value.encode()).hexdigest()


def _fingerprint(usage: Mapping[str, str], env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "broker_vars": sorted(k for k in env if k.startswith("QKT_BROKER_")),
        "vars": {var: [mode, _state(var, mode, env)] for var, mode in sorted(usage.items())},
    }


# ---------------------------------------------------------------- encoding
def _enc(value: Any) -> Any:
    if isinstance(value, Secret):
        if value.ref is None:
            raise _Uncacheable
        return ["secret", value.ref]
    if isinstance(value, Decimal):
        return ["decimal", str(value)]
    if isinstance(value, dict):
        return {str(k): _enc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return ["list", [_enc(v) for v in value]]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise _Uncacheable


def _dec(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _dec(v, env) for k, v in value.items()}
    if isinstance(value, list):
        tag, body = value
        if tag == "secret":
            return Secret(env[body], ref=body)
        if tag == "decimal":
            return Decimal(body)
        return [_dec(v, env) for v in body]
    return value


def _encode(config: ResolvedConfig) -> dict[str, Any]:
    return {
        "display": config.display,
        "strict_brokers": config.strict_brokers,
        "strict_brokers_source": config.strict_brokers_source,
        "state_dir": None if config.state_dir is None else str(config.state_dir),
        "market_data": _enc(dict(config.market_data_values)),
        "paper": _enc(dict(config.paper_values)),
        "diagnostics": [asdict(d) for d in config.diagnostics],
        "profiles": [
            [p.name, p.type, _enc(dict(p.values)), dict(p.sources), p.origin]
            for p in config.profiles.values()
        ],
    }


def _decode(data: dict[str, Any], env: Mapping[str, str]) -> ResolvedConfig:
    profiles = {
        name: ResolvedProfile(name, kind, _dec(values, env), sources, origin)
        for name, kind, values, sources, origin in data["profiles"]
    }
    return ResolvedConfig(
        path=None,
        display=data["display"],
        strict_brokers=bool(data["strict_brokers"]),
        strict_brokers_source=data["strict_brokers_source"],
        state_dir=None if data["state_dir"] is None else Path(data["state_dir"]),
        profiles=profiles,
        diagnostics=tuple(Diagnostic(**d) for d in data["diagnostics"]),
        market_data_values=_dec(data["market_data"], env),
        paper_values=_dec(data["paper"], env),
    )


# ---------------------------------------------------------------- files
def lookup(
    directory: Path | None, path: Path | None, key: str, env: Mapping[str, str]
) -> ResolvedConfig | None:
    """The cached configuration for ``key`` if the variables it read are unchanged."""
    if directory is None:
        return None
    slot = slot_of(directory, path)
    try:
        stat = slot.stat()
        if stat.st_uid != os.getuid() or stat.st_mode & 0o077:
            return None  # only trust a file this user wrote and nobody else can read or change
        entry = json.loads(slot.read_text(encoding="utf-8"))
        if entry.get("key") != key:
            return None
        usage = {var: mode for var, (mode, _) in entry["fingerprint"]["vars"].items()}
        if _fingerprint(usage, env) != entry["fingerprint"]:
            return None
        config = _decode(entry["config"], env)
        market = config.market_data_values
        if market.get("source") == "replay" and not Path(market["replay"]["path"]).is_file():
            return None  # gone since: resolving again reports it where it is written
        os.utime(slot, ns=(time.time_ns(), stat.st_mtime_ns))  # used: atime, mtime kept
        return config
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def store(
    directory: Path | None,
    path: Path | None,
    key: str,
    env: Mapping[str, str],
    config: ResolvedConfig,
    usage: Mapping[str, str],
) -> None:
    """Write ``config`` for ``key``; silently skipped when it holds a secret written in the file
    or the cache directory cannot be written."""
    if directory is None:
        return
    try:
        entry = {"key": key, "fingerprint": _fingerprint(usage, env), "config": _encode(config)}
    except _Uncacheable:
        return
    import tempfile

    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(entry, fh, separators=(",", ":"))
        Path(tmp).replace(slot_of(directory, path))
    except OSError:
        return
    _evict(directory)


def _evict(directory: Path) -> None:
    """Remove the least recently used entries beyond :data:`MAX_ENTRIES` (and temporary files
    a killed writer left behind)."""
    entries: list[tuple[int, str, Path]] = []
    try:
        for item in directory.iterdir():
            name = item.name
            if name.startswith("config-") and name.endswith(".json"):
                entries.append((item.stat().st_atime_ns, name, item))  # last used
            elif name.startswith(".config-") and name.endswith(".tmp"):  # a killed writer's
                stale = item.stat().st_mtime < time.time() - 3600
                if stale:
                    item.unlink(missing_ok=True)
    except OSError:
        return
    entries.sort()
    for _, _, item in entries[: max(0, len(entries) - MAX_ENTRIES)]:
        try:
            item.unlink(missing_ok=True)
        except OSError:
            continue
