"""Built-ins, overrides, extends chains, env overrides and provenance (SPEC §3.3, §3.4)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from qkt.config import discover_config, load_config
from qkt.errors import ConfigError
from tests.config.conftest import Loader
from tests.conftest import ROOT


def test_builtins_only_when_there_is_no_file(load: Loader) -> None:
    config = load(None)
    assert config.path is None and config.display is None
    assert list(config.profiles)[:4] == ["exness", "icmarkets", "ftmo", "pepperstone"]
    exness = config.profiles["exness"]
    assert (exness.target, exness.magic, exness.symbol_suffix) == (
        "http://localhost:5001",
        10001,
        "m",
    )
    assert exness.aliases == {"NAS100": "USTEC", "UKOIL": "XBRUSD", "NGAS": "XNGUSD"}
    assert exness.origin == "builtin"
    assert exness.sources["gateway_url"] == "builtin"
    assert exness.sources["poll_interval_ms"] == "default"
    assert exness.values["poll_interval_ms"] == 1000
    assert config.profiles["icmarkets"].values["server_time_zone"] == "ny-close"
    assert config.profiles["backtest"].type == "paper"
    assert config.strict_brokers is False and config.strict_brokers_source == "default"


def test_same_name_overrides_only_the_fields_it_sets(load: Loader) -> None:
    config = load("brokers:\n  exness:\n    gateway_url: http://10.0.0.2:5001/\n")
    exness = config.profiles["exness"]
    assert exness.target == "http://10.0.0.2:5001"
    assert exness.sources["gateway_url"] == "config:qkt.config.yaml:3"
    assert exness.sources["magic"] == "builtin"
    assert exness.origin == "config:qkt.config.yaml:2"


def test_extends_chains_three_levels(load: Loader) -> None:
    config = load(
        "brokers:\n"
        "  base:\n    extends: exness\n    gateway_url: http://gw:7000\n    magic: 1\n"
        "  middle:\n    extends: base\n    magic: 2\n    deviation_points: 5\n"
        "  top:\n    extends: middle\n    magic: 3\n    gateway_url: http://gw:7001\n"
    )
    top = config.profiles["top"]
    assert (top.target, top.magic, top.symbol_suffix, top.values["deviation_points"]) == (
        "http://gw:7001",
        3,
        "m",
        5,
    )
    assert top.sources["symbol_suffix"] == "extends:exness"
    assert top.sources["deviation_points"] == "extends:middle"
    assert top.sources["magic"] == "config:qkt.config.yaml:12"


def test_root_config_has_the_seed_accounts_and_no_warnings() -> None:
    config = load_config(ROOT / "qkt.config.yaml", env={"QKT_NO_CACHE": "1"}, cwd=ROOT)
    assert config.diagnostics == ()
    personal, corporate = config.profiles["exness-personal"], config.profiles["exness-corporate"]
    assert (personal.target, personal.magic) == ("http://localhost:5005", 10005)
    assert (corporate.target, corporate.magic) == ("http://localhost:5006", 10006)
    assert personal.symbol_suffix == corporate.symbol_suffix == "m"
    assert config.profiles["bybit"].target == "https://api-testnet.bybit.com"
    assert config.profiles["bybit"].values["api_key"] is None
    assert config.profiles["sim"].values["quotes_from"] == "exness"
    assert config.profiles["sim"].values["starting_balance"] == Decimal(10000)


def test_env_overrides_are_typed_and_named(load: Loader) -> None:
    config = load(
        "brokers:\n  exness-personal:\n    extends: exness\n    gateway_url: http://a:1\n    magic: 5\n",
        QKT_BROKER_EXNESS_PERSONAL_GATEWAY_URL="http://b:2",
        QKT_BROKER_EXNESS_PERSONAL_MAGIC="77",
        QKT_BROKER_EXNESS_PERSONAL_ALIASES='{"US30": "DJ30"}',
        QKT_BROKER_EXNESS_PERSONAL_INSTRUMENT_OVERRIDES='{"EURUSD": {"min_volume": "0.01"}}',
    )
    p = config.profiles["exness-personal"]
    assert (p.target, p.magic, p.aliases) == ("http://b:2", 77, {"US30": "DJ30"})
    assert p.instrument("EURUSD") == {
        "min_volume": Decimal("0.01"),
        "max_volume": None,
        "volume_step": None,
        "digits": None,
    }
    assert p.sources["magic"] == "env:QKT_BROKER_EXNESS_PERSONAL_MAGIC"
    assert p.sources["gateway_url"] == "env:QKT_BROKER_EXNESS_PERSONAL_GATEWAY_URL"


def test_env_only_profile(load: Loader) -> None:
    config = load(
        None,
        QKT_BROKER_MY_BYBIT_TYPE="bybit",
        QKT_BROKER_MY_BYBIT_TESTNET="false",
        QKT_BROKER_MY_BYBIT_CATEGORY="spot",
    )
    p = config.profiles["my-bybit"]
    assert (p.type, p.target, p.values["category"]) == ("bybit", "https://api.bybit.com", "spot")
    assert p.origin == "env:QKT_BROKER_MY_BYBIT_TYPE"
    assert p.sources["testnet"] == "env:QKT_BROKER_MY_BYBIT_TESTNET"


def test_env_naming_nothing_is_a_strict_warning(load: Loader) -> None:
    config = load(None, QKT_BROKER_EXNES_MAGIC="1", QKT_BROKER_EXNESS_GATWAY_URL="http://x:1")
    found = {(d.code, d.severity, d.strict, d.hint) for d in config.diagnostics}
    assert ("env-unknown-profile", "warning", True, "did you mean `QKT_BROKER_EXNESS`?") in found
    assert ("env-unknown-field", "warning", True, "did you mean `gateway_url`?") in found


def test_bad_env_value_names_the_variable(load: Loader) -> None:
    with pytest.raises(ConfigError) as info:
        load(None, QKT_BROKER_EXNESS_MAGIC="abc")
    (d,) = info.value.diagnostics
    assert d.code == "bad-value"
    assert "QKT_BROKER_EXNESS_MAGIC" in d.message and "magic" in d.message


def test_variables_expand_and_unset_ones_warn(load: Loader) -> None:
    config = load(
        "brokers:\n  exness:\n    gateway_url: http://${GW_HOST}:${GW_PORT:-5001}\n"
        "    api_key: ${GW_TOKEN}\n    symbol_suffix: $$x\n",
        GW_HOST="gw.example",
    )
    exness = config.profiles["exness"]
    assert exness.target == "http://gw.example:5001"
    assert exness.symbol_suffix == "$x"
    assert exness.values["api_key"] is None
    (d,) = config.diagnostics
    assert (d.code, d.severity, d.strict, d.line) == ("unset-variable", "warning", True, 4)
    assert "${GW_TOKEN}" in d.message and "brokers.exness.api_key" in d.message


def test_flags_win_over_everything(tmp_path: Path) -> None:
    config = load_config(
        None,
        env={"QKT_NO_CACHE": "1", "QKT_BROKER_EXNESS_MAGIC": "5"},
        cwd=tmp_path,
        overrides={"exness": {"magic": 9}},
    )
    assert config.profiles["exness"].magic == 9
    assert config.profiles["exness"].sources["magic"] == "flag"


def test_discovery_order(tmp_path: Path) -> None:
    cwd, xdg = tmp_path / "cwd", tmp_path / "xdg"
    (xdg / "qkt").mkdir(parents=True)
    cwd.mkdir()
    in_xdg = xdg / "qkt" / "qkt.config.yaml"
    in_xdg.write_text("{}\n")
    env = {"XDG_CONFIG_HOME": str(xdg)}
    assert discover_config(None, env, cwd) == in_xdg
    here = cwd / "qkt.config.yaml"
    here.write_text("{}\n")
    assert discover_config(None, env, cwd) == here
    named = tmp_path / "named.yaml"
    named.write_text("{}\n")
    assert discover_config(None, {**env, "QKT_CONFIG": str(named)}, cwd) == named
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("{}\n")
    assert discover_config(explicit, {**env, "QKT_CONFIG": str(named)}, cwd) == explicit
    home = tmp_path / "home"
    (home / ".config" / "qkt").mkdir(parents=True)
    (home / ".config" / "qkt" / "qkt.config.yaml").write_text("{}\n")
    assert discover_config(None, {"HOME": str(home)}, tmp_path) == (
        home / ".config" / "qkt" / "qkt.config.yaml"
    )
    assert discover_config(None, {}, tmp_path) is None


@pytest.mark.parametrize("how", ["explicit", "env"])
def test_missing_named_config_is_an_error(tmp_path: Path, how: str) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        if how == "explicit":
            discover_config(missing, {}, tmp_path)
        else:
            discover_config(None, {"QKT_CONFIG": str(missing)}, tmp_path)
    assert info.value.diagnostics[0].code == "config-not-found"


def test_top_level_settings(load: Loader, tmp_path: Path) -> None:
    config = load(
        "strict_brokers: true\nstate_dir: ~/qkt-state\nmarket_data:\n  source: replay\n"
        "  replay: {path: bars.csv, speed: 10}\npaper:\n  starting_balance: 2500\n"
        "brokers:\n  sim:\n    type: paper\n"
    )
    assert (config.strict_brokers, config.strict_brokers_source) == (
        True,
        "config:qkt.config.yaml:1",
    )
    assert config.state_dir == Path(tmp_path / "home" / "qkt-state")
    assert config.market_data["source"] == "replay"
    assert config.market_data["replay"] == {"path": "bars.csv", "speed": 10.0}
    assert config.profiles["sim"].values["starting_balance"] == Decimal(2500)
    assert config.profiles["sim"].sources["starting_balance"] == "config:qkt.config.yaml:7"


def test_cache_gives_the_same_result_and_notices_changes(tmp_path: Path) -> None:
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text("brokers:\n  exness:\n    gateway_url: http://${HOST:-a}:1\n")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = load_config(None, env=env, cwd=tmp_path)
    assert list((tmp_path / "cache" / "qkt").glob("config-*.pickle"))
    again = load_config(None, env=env, cwd=tmp_path)
    assert again.profiles == first.profiles
    assert load_config(None, env={**env, "HOST": "b"}, cwd=tmp_path).profiles["exness"].target == (
        "http://b:1"
    )
    cfg.write_text("brokers:\n  exness:\n    gateway_url: http://c:1\n")
    assert load_config(None, env=env, cwd=tmp_path).profiles["exness"].target == "http://c:1"
