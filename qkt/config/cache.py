"""A cache of validated configurations, so a cold ``qkt validate`` does not pay for pydantic.

Validating qkt.config.yaml needs pydantic, whose import alone costs more than the whole start-up
budget of ``qkt validate`` (SPEC §9). A configuration validated once is stored in
``$XDG_CACHE_HOME/qkt`` under a key made of everything that can change the result: the qkt
version, the loader's own source files, the config text, every ``QKT_BROKER_*`` variable and every
variable the text references. Configurations holding secrets are never written (a
:class:`~qkt.config.resolved.Secret` refuses to be serialised). ``QKT_NO_CACHE=1`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qkt import __version__
from qkt.config.expand import referenced
from qkt.config.resolved import ResolvedConfig

_HERE = Path(__file__).resolve().parent
_SOURCES = ("builtins.py", "expand.py", "loader.py", "models.py", "resolved.py", "cache.py")
_FORMAT = b"qkt-config-cache-1"


def cache_dir(env: Mapping[str, str]) -> Path | None:
    if env.get("QKT_NO_CACHE", "").strip() not in ("", "0"):
        return None
    base = env.get("XDG_CACHE_HOME") or (env.get("HOME") and str(Path(env["HOME"]) / ".cache"))
    return Path(base) / "qkt" if base else None


def cache_key(text: str, display: str | None, env: Mapping[str, str]) -> str:
    digest = hashlib.sha256(_FORMAT)
    digest.update(__version__.encode())
    for name in _SOURCES:
        try:
            stat = (_HERE / name).stat()
        except OSError:
            continue
        digest.update(f"{name}:{stat.st_mtime_ns}:{stat.st_size}".encode())
    digest.update(f"\0{display}\0".encode())
    digest.update(text.encode())
    names = sorted(
        {k for k in env if k.startswith(("QKT_BROKER_", "QKT_STATE_DIR"))} | referenced(text)
    )
    for name in names:
        value = env.get(name)
        digest.update(f"\0{name}={'<unset>' if value is None else value}".encode())
    return digest.hexdigest()


def load(directory: Path | None, key: str) -> ResolvedConfig | None:
    if directory is None:
        return None
    path = directory / f"config-{key}.pickle"
    try:
        stat = path.stat()
        if stat.st_uid != os.getuid() or stat.st_mode & 0o022:
            return None  # only trust files this user wrote and nobody else can change
        with path.open("rb") as fh:
            value: Any = pickle.load(fh)
    except (OSError, pickle.PickleError, EOFError, AttributeError, ImportError, TypeError):
        return None
    return value if isinstance(value, ResolvedConfig) else None


def store(directory: Path | None, key: str, config: ResolvedConfig) -> None:
    if directory is None:
        return
    try:
        data = pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
    except (TypeError, pickle.PicklingError):
        return  # holds a secret: never written to disk
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).replace(directory / f"config-{key}.pickle")
    except OSError:
        return
