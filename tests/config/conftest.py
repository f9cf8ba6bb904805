"""Load configs from real files in a temporary directory with an explicit environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from qkt.config import ResolvedConfig, load_config
from qkt.errors import ConfigError

Loader = Callable[..., ResolvedConfig]
Failer = Callable[..., list[tuple[str, int | None]]]


@pytest.fixture
def load(tmp_path: Path) -> Loader:
    """``load(yaml_text, **env)``: write qkt.config.yaml and resolve it (cache off)."""

    def _load(text: str | None, **env: str) -> ResolvedConfig:
        env = {"QKT_NO_CACHE": "1", "HOME": str(tmp_path / "home"), **env}
        if text is None:
            return load_config(None, env=env, cwd=tmp_path)
        path = tmp_path / "qkt.config.yaml"
        path.write_text(text, encoding="utf-8")
        return load_config(None, env=env, cwd=tmp_path)

    return _load


@pytest.fixture
def fail(load: Loader) -> Failer:
    """``fail(yaml_text, **env)``: the (code, line) of every error the load raised."""

    def _fail(text: str, **env: str) -> list[tuple[str, int | None]]:
        with pytest.raises(ConfigError) as info:
            load(text, **env)
        for d in info.value.diagnostics:
            if d.line is not None:
                assert d.path == "qkt.config.yaml"
        return [(d.code, d.line) for d in info.value.diagnostics if d.severity == "error"]

    return _fail
