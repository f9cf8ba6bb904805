"""The resolved-config cache: same answers as resolving, and never stale."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qkt.config import ResolvedConfig, load_config
from qkt.errors import ConfigError

TEXT = (
    "brokers:\n  exness:\n    gateway_url: http://${HOST:-a}:1\n"
    "  bybit:\n    type: bybit\n    api_key: ${KEY}\n"
    "  sim:\n    type: paper\n    starting_balance: 2500.5\n"
)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(TEXT)
    cache = tmp_path / "cache" / "qkt"
    return cfg, cache, {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)}


def _load(cfg: Path, env: dict[str, str]) -> ResolvedConfig:
    return load_config(None, env=env, cwd=cfg.parent)


def _same(a: ResolvedConfig, b: ResolvedConfig) -> None:
    assert a.profiles == b.profiles
    for name, profile in a.profiles.items():
        assert profile.sources == b.profiles[name].sources
        assert profile.origin == b.profiles[name].origin
    assert (a.diagnostics, a.market_data_values, a.paper_values) == (
        b.diagnostics,
        b.market_data_values,
        b.paper_values,
    )
    assert (a.strict_brokers_source, a.state_dir, a.display) == (
        b.strict_brokers_source,
        b.state_dir,
        b.display,
    )


def test_a_hit_gives_exactly_what_resolving_gives(setup: tuple[Path, Path, dict[str, str]]) -> None:
    cfg, cache, env = setup
    first = _load(cfg, env)
    (entry,) = cache.glob("config-*.json")
    stamp = entry.stat().st_mtime_ns
    second = _load(cfg, env)
    assert entry.stat().st_mtime_ns == stamp  # served from the cache, not rewritten
    _same(first, second)
    assert second.diagnostics[0].code == "unset-variable"
    _same(second, _load(cfg, {**env, "QKT_NO_CACHE": "1"}))
    assert second.path == cfg


@pytest.mark.parametrize(
    "change",
    [
        {"HOST": "b"},
        {"KEY": "k"},
        {"QKT_BROKER_EXNESS_MAGIC": "5"},
        {"QKT_BROKER_NOBODY_MAGIC": "5"},
    ],
)
def test_a_changed_variable_is_noticed(
    setup: tuple[Path, Path, dict[str, str]], change: dict[str, str]
) -> None:
    cfg, _, env = setup
    _load(cfg, env)
    _same(_load(cfg, {**env, **change}), _load(cfg, {**env, **change, "QKT_NO_CACHE": "1"}))


def test_a_changed_file_is_noticed(setup: tuple[Path, Path, dict[str, str]]) -> None:
    cfg, cache, env = setup
    _load(cfg, env)
    cfg.write_text("brokers:\n  exness:\n    gateway_url: http://c:1\n")
    assert _load(cfg, env).profiles["exness"].target == "http://c:1"
    assert len(list(cache.glob("config-*.json"))) == 1  # one entry per config file


def test_secret_variables_are_keyed_by_presence_not_value(
    setup: tuple[Path, Path, dict[str, str]],
) -> None:
    cfg, cache, env = setup
    _load(cfg, {**env, "KEY": "first-key-value"})
    (entry,) = cache.glob("config-*.json")
    data = json.loads(entry.read_text())
    assert data["fingerprint"]["vars"]["KEY"] == ["presence", "set"]
    assert "first-key-value" not in entry.read_text()
    stamp = entry.stat().st_mtime_ns
    second = _load(cfg, {**env, "KEY": "second-key-value"})
    assert entry.stat().st_mtime_ns == stamp
    assert second.profiles["bybit"].secret("api_key") == "second-key-value"


def test_errors_are_not_cached(setup: tuple[Path, Path, dict[str, str]]) -> None:
    cfg, cache, env = setup
    cfg.write_text("brokers:\n  exness:\n    magic: x\n")
    for _ in range(2):
        with pytest.raises(ConfigError):
            _load(cfg, env)
    assert not list(cache.glob("config-*.json"))


def test_untrusted_or_broken_entries_are_ignored(setup: tuple[Path, Path, dict[str, str]]) -> None:
    cfg, cache, env = setup
    good = _load(cfg, env)
    (entry,) = cache.glob("config-*.json")
    data = json.loads(entry.read_text())
    data["config"]["profiles"][0][2]["gateway_url"] = "http://evil:1"
    entry.write_text(json.dumps(data))
    os.chmod(entry, 0o666)
    assert _load(cfg, env).profiles["exness"].target == good.profiles["exness"].target
    for junk in ("{", "[]", '{"key": 1}', json.dumps({**data, "config": {"profiles": 5}})):
        entry.write_text(junk)
        os.chmod(entry, 0o600)
        _same(_load(cfg, env), good)


def test_cache_off_and_unwritable(setup: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    cfg, cache, env = setup
    _load(cfg, {**env, "QKT_NO_CACHE": "1"})
    assert not cache.exists()
    blocker = tmp_path / "blocked"
    blocker.write_text("not a directory")
    _load(cfg, {**env, "XDG_CACHE_HOME": str(blocker)})  # cannot write: still loads


def test_secret_env_overrides_are_keyed_by_presence(
    setup: tuple[Path, Path, dict[str, str]],
) -> None:
    cfg, cache, env = setup
    var, typo = "QKT_BROKER_BYBIT_API_SECRET", "QKT_BROKER_BYBIT_API_SECRETS"
    _load(cfg, {**env, var: "first-secret", typo: "typo-secret"})
    (entry,) = cache.glob("config-*.json")
    text = entry.read_text()
    assert "first-secret" not in text and "typo-secret" not in text
    vars_ = json.loads(text)["fingerprint"]["vars"]
    assert vars_[var] == vars_[typo] == ["presence", "set"]
    stamp = entry.stat().st_mtime_ns
    second = _load(cfg, {**env, var: "second-secret", typo: "other"})
    assert entry.stat().st_mtime_ns == stamp
    assert second.profiles["bybit"].secret("api_secret") == "second-secret"
    cleared = _load(cfg, {**env, var: "", typo: "other"})
    assert cleared.profiles["bybit"].secret("api_secret") is None
