"""Load configs from real files in a temporary directory with an explicit environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from qkt.config import ResolvedConfig, load_config
from qkt.diagnostics import Diagnostic
from qkt.errors import ConfigError

Loader = Callable[..., ResolvedConfig]
Failer = Callable[..., list[tuple[str, int | None]]]
Raiser = Callable[..., list[Diagnostic]]

SECRET = "zq-secret-7731-do-not-print"


@pytest.fixture
def load(tmp_path: Path) -> Loader:
    """``load(yaml_text, **env)``: write ./qkt.config.yaml and resolve it (cache off).

    ``None`` means no file at all. Only the variables given are in the environment.
    """

    def _load(text: str | None, **env: str) -> ResolvedConfig:
        env = {"QKT_NO_CACHE": "1", "HOME": str(tmp_path / "home"), **env}
        path = tmp_path / "qkt.config.yaml"
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text, encoding="utf-8")
        return load_config(None, env=env, cwd=tmp_path)

    return _load


@pytest.fixture
def raises(load: Loader) -> Raiser:
    """``raises(yaml_text, **env)``: the diagnostics of the ConfigError the load raised."""

    def _raises(text: str | None, **env: str) -> list[Diagnostic]:
        with pytest.raises(ConfigError) as info:
            load(text, **env)
        diags = info.value.diagnostics
        assert diags, "a ConfigError always carries diagnostics"
        for d in diags:
            if d.line is not None:
                assert d.path == "qkt.config.yaml"
        return diags

    return _raises


@pytest.fixture
def fail(raises: Raiser) -> Failer:
    """``fail(yaml_text, **env)``: the (code, line) of every error the load raised, in order."""

    def _fail(text: str | None, **env: str) -> list[tuple[str, int | None]]:
        return [(d.code, d.line) for d in raises(text, **env) if d.severity == "error"]

    return _fail
