"""Secrets never appear in output, reprs, diagnostics or the cache (SPEC §8)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from qkt.config import Secret, load_config
from qkt.errors import ConfigError
from tests.config.conftest import SECRET, Loader

BYBIT = "brokers:\n  bybit:\n    type: bybit\n    api_key: ${KEY}\n    api_secret: ${SECRET}\n"


def _everything(config: object) -> str:
    from qkt.config import ResolvedConfig

    assert isinstance(config, ResolvedConfig)
    parts = [repr(config), str(config)]
    for profile in config.profiles.values():
        parts += [repr(profile), repr(profile.values), repr(profile.public_fields())]
        parts += [repr(profile.settings), str(profile.settings)]
    parts += [d.format() for d in config.diagnostics]
    return "\n".join(parts)


def test_secrets_from_variables_are_masked(load: Loader) -> None:
    config = load(BYBIT, KEY=SECRET, SECRET=SECRET + "-2")
    bybit = config.profiles["bybit"]
    assert bybit.secret("api_key") == SECRET and bybit.secret("api_secret") == SECRET + "-2"
    public = bybit.public_fields()
    assert public["api_key"] == {"value": "***", "source": "config:qkt.config.yaml:4"}
    assert public["api_secret"]["value"] == "***"
    assert SECRET not in _everything(config)
    assert bybit.settings.api_key is not None  # type: ignore[union-attr]
    assert bybit.settings.api_key.get_secret_value() == SECRET  # type: ignore[union-attr]


def test_secrets_from_the_file_env_and_flags_are_masked(tmp_path: Path) -> None:
    (tmp_path / "qkt.config.yaml").write_text(
        f"brokers:\n  exness:\n    api_key: {SECRET}-file\n  bybit:\n    type: bybit\n"
    )
    config = load_config(
        None,
        env={"QKT_NO_CACHE": "1", "QKT_BROKER_BYBIT_API_SECRET": SECRET + "-env"},
        cwd=tmp_path,
        overrides={"bybit": {"api_key": SECRET + "-flag"}},
    )
    assert config.profiles["exness"].secret("api_key") == SECRET + "-file"
    assert config.profiles["bybit"].secret("api_secret") == SECRET + "-env"
    assert config.profiles["bybit"].public_fields()["api_secret"] == {
        "value": "***",
        "source": "env:QKT_BROKER_BYBIT_API_SECRET",
    }
    assert SECRET not in _everything(config)


def test_secrets_never_reach_a_diagnostic(load: Loader) -> None:
    with pytest.raises(ConfigError) as info:
        load(
            f"brokers:\n  bybit:\n    type: bybit\n    api_key: ${{KEY}}\n    recv_window_ms: -1\n"
            f"  other:\n    type: bybit\n    api_secret: [{SECRET}]\n    testnet: [x]\n",
            KEY=SECRET,
            QKT_BROKER_BYBIT_API_SECRET=SECRET,
            QKT_BROKER_BYBIT_API_SECRETS=SECRET,
        )
    text = str(info.value) + "".join(repr(d) for d in info.value.diagnostics)
    assert "api_secret" in text and SECRET not in text
    with pytest.raises(ConfigError) as info:
        load("brokers:\n  exness:\n    api_key: 123456789\n")
    assert "123456789" not in str(info.value)


def test_secrets_are_never_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(SECRET))
    assert repr(Secret(SECRET)) == "Secret('***')" and str(Secret(SECRET)) == "***"


def test_secrets_are_never_written_to_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(BYBIT)
    env = {"XDG_CACHE_HOME": str(cache), "KEY": SECRET, "SECRET": SECRET + "-2"}
    load_config(None, env=env, cwd=tmp_path)
    files = list(cache.rglob("*"))
    assert files, "a config whose secrets come from variables is cached"
    for path in files:
        if path.is_file():
            assert SECRET not in path.read_text()
            assert path.stat().st_mode & 0o077 == 0
    again = load_config(None, env=env, cwd=tmp_path)
    assert again.profiles["bybit"].secret("api_key") == SECRET
    # A secret written in the file itself is not copied anywhere.
    cfg.write_text(f"brokers:\n  exness:\n    api_key: {SECRET}\n")
    load_config(None, env=env, cwd=tmp_path)
    assert all(SECRET not in p.read_text() for p in cache.rglob("*.json"))
