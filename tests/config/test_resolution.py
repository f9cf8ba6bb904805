"""Built-ins, same-name overrides, extends chains, flags and provenance (SPEC §3.3, §3.4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from qkt.config import load_config, resolve_state_dir
from qkt.config.builtins import FIELDS, REQUIRED
from qkt.config.models import PROFILE_MODELS
from tests.config.conftest import Loader
from tests.conftest import ROOT


def test_built_ins_have_builtin_provenance(load: Loader) -> None:
    config = load(None)
    exness = config.profiles["exness"]
    assert (exness.type, exness.target, exness.magic, exness.symbol_suffix) == (
        "mt5",
        "http://localhost:5001",
        10001,
        "m",
    )
    assert exness.aliases == {"NAS100": "USTEC", "UKOIL": "XBRUSD", "NGAS": "XNGUSD"}
    assert exness.origin == "builtin"
    fields = exness.public_fields()
    assert fields["gateway_url"] == {"value": "http://localhost:5001", "source": "builtin"}
    assert fields["poll_interval_ms"] == {"value": 1000, "source": "default"}
    assert fields["api_key"] == {"value": None, "source": "default"}
    table = {
        name: (p.target, p.symbol_suffix, p.values["server_time_zone"], p.magic)
        for name, p in config.profiles.items()
        if p.type == "mt5"
    }
    assert table == {
        "exness": ("http://localhost:5001", "m", "UTC", 10001),
        "icmarkets": ("http://localhost:5002", ".raw", "ny-close", 10002),
        "ftmo": ("http://localhost:5003", "", "ny-close", 10003),
        "pepperstone": ("http://localhost:5004", ".cmd", "ny-close", 10004),
    }
    for label in ("backtest", "paper"):
        paper = config.profile(label.upper())
        assert paper is not None
        assert (paper.type, paper.target, paper.magic) == ("paper", "paper", None)
        assert paper.values["starting_balance"] == Decimal(10000)


def test_field_table_matches_the_models() -> None:
    """The plain defaults used without pydantic are the models' own."""
    for kind, model in PROFILE_MODELS.items():
        assert list(FIELDS[kind]) == list(model.model_fields)
        for name, field in model.model_fields.items():
            expected = (
                REQUIRED if field.is_required() else field.get_default(call_default_factory=True)
            )
            assert FIELDS[kind][name] == expected, (kind, name)


def test_profile_lookup_is_case_insensitive(load: Loader) -> None:
    config = load(None)
    assert config.profile("EXNESS") is config.profile("Exness") is config.profiles["exness"]
    assert config.profile("nobody") is None


def test_same_name_override_changes_only_the_fields_it_sets(load: Loader) -> None:
    config = load(
        "brokers:\n  exness:\n    gateway_url: http://10.0.0.2:5001/\n    deviation_points: 5\n"
    )
    exness = config.profiles["exness"]
    assert exness.target == "http://10.0.0.2:5001"  # trailing slash dropped
    assert (exness.magic, exness.symbol_suffix, exness.values["deviation_points"]) == (
        10001,
        "m",
        5,
    )
    assert exness.sources["gateway_url"] == "config:qkt.config.yaml:3"
    assert exness.sources["deviation_points"] == "config:qkt.config.yaml:4"
    assert exness.sources["magic"] == "builtin"
    assert exness.sources["poll_interval_ms"] == "default"
    assert exness.origin == "config:qkt.config.yaml:2"


def test_an_empty_override_is_the_built_in(load: Loader) -> None:
    config = load("brokers:\n  ftmo:\n")
    assert config.profiles["ftmo"].values == load(None).profiles["ftmo"].values


def test_extending_your_own_built_in_name_is_the_override(load: Loader) -> None:
    config = load("brokers:\n  exness:\n    extends: exness\n    magic: 9\n")
    exness = config.profiles["exness"]
    assert (exness.magic, exness.symbol_suffix, exness.sources["symbol_suffix"]) == (
        9,
        "m",
        "builtin",
    )


def test_extends_chains_three_levels(load: Loader) -> None:
    config = load(
        "brokers:\n"
        "  base:\n    extends: exness\n    gateway_url: http://gw:7000\n    magic: 1\n"
        "  middle:\n    extends: base\n    magic: 2\n    deviation_points: 5\n"
        "  top:\n    extends: middle\n    magic: 3\n    gateway_url: http://gw:7001\n"
    )
    top = config.profiles["top"]
    assert (top.type, top.target, top.magic, top.symbol_suffix, top.values["deviation_points"]) == (
        "mt5",
        "http://gw:7001",
        3,
        "m",
        5,
    )
    assert top.sources["symbol_suffix"] == "extends:exness"
    assert top.sources["deviation_points"] == "extends:middle"
    assert top.sources["magic"] == "config:qkt.config.yaml:12"
    assert top.sources["poll_interval_ms"] == "default"
    middle = config.profiles["middle"]
    assert middle.sources["gateway_url"] == "extends:base"
    assert middle.target == "http://gw:7000"


def test_extends_a_profile_defined_later_and_an_override(load: Loader) -> None:
    config = load(
        "brokers:\n  child:\n    extends: exness\n    gateway_url: http://c:1\n"
        "  exness:\n    symbol_suffix: .pro\n"
    )
    child = config.profiles["child"]
    assert (child.symbol_suffix, child.sources["symbol_suffix"]) == (".pro", "extends:exness")
    assert (child.magic, child.sources["magic"]) == (10001, "extends:exness")


def test_profile_order_built_ins_then_file_then_environment(load: Loader) -> None:
    config = load(
        "brokers:\n  zeta:\n    type: paper\n  exness:\n    magic: 7\n  alpha:\n    type: paper\n",
        QKT_BROKER_LAB_TYPE="paper",
    )
    assert list(config.profiles) == [
        "exness",
        "icmarkets",
        "ftmo",
        "pepperstone",
        "backtest",
        "paper",
        "zeta",
        "alpha",
        "lab",
    ]


def test_target_of_each_type(load: Loader) -> None:
    config = load(
        "brokers:\n"
        "  test:\n    type: bybit\n"
        "  main:\n    type: bybit\n    testnet: false\n    category: spot\n"
        "  own:\n    type: bybit\n    testnet: false\n    base_url: https://bybit.internal:8443/\n"
        "  sim:\n    type: paper\n"
    )
    targets = {n: config.profiles[n].target for n in ("exness", "test", "main", "own", "sim")}
    assert targets == {
        "exness": "http://localhost:5001",
        "test": "https://api-testnet.bybit.com",
        "main": "https://api.bybit.com",
        "own": "https://bybit.internal:8443",
        "sim": "paper",
    }
    main = config.profiles["main"]
    assert main.public_fields()["base_url"] == {
        "value": "https://api.bybit.com",
        "source": "default",
    }
    assert main.values["category"] == "spot" and main.magic is None
    assert config.profiles["own"].sources["base_url"] == "config:qkt.config.yaml:11"


def test_settings_are_the_validated_models(load: Loader) -> None:
    config = load(
        "brokers:\n  exness:\n    instrument_overrides:\n"
        "      EURUSD: {min_volume: 0.01, volume_step: 0.01, digits: 5}\n"
        "  sim:\n    type: paper\n    starting_balance: 2500.50\n    slippage_bps: 1.5\n"
    )
    exness = config.profiles["exness"].settings
    assert type(exness).__name__ == "Mt5Profile"
    assert exness.instrument_overrides["EURUSD"].min_volume == Decimal("0.01")  # type: ignore[union-attr]
    sim = config.profiles["sim"]
    assert sim.values["starting_balance"] == Decimal("2500.50")
    assert sim.public_fields()["slippage_bps"]["value"] == "1.5"
    assert config.profiles["exness"].instrument("EURUSDm", "EURUSD") == {
        "min_volume": Decimal("0.01"),
        "max_volume": None,
        "volume_step": Decimal("0.01"),
        "digits": 5,
    }


def test_root_config_loads_clean_with_the_seed_accounts() -> None:
    config = load_config(ROOT / "qkt.config.yaml", env={"QKT_NO_CACHE": "1"}, cwd=ROOT)
    assert config.diagnostics == ()
    personal, corporate = config.profiles["exness-personal"], config.profiles["exness-corporate"]
    assert (personal.target, personal.magic) == ("http://localhost:5005", 10005)
    assert (corporate.target, corporate.magic) == ("http://localhost:5006", 10006)
    assert personal.symbol_suffix == corporate.symbol_suffix == "m"
    assert personal.sources["symbol_suffix"] == "extends:exness"
    assert personal.aliases == config.profiles["exness"].aliases
    bybit = config.profiles["bybit"]
    assert (bybit.type, bybit.target, bybit.values["category"]) == (
        "bybit",
        "https://api-testnet.bybit.com",
        "linear",
    )
    assert bybit.values["api_key"] is None and bybit.secret("api_secret") is None
    sim = config.profiles["sim"]
    assert (sim.type, sim.values["quotes_from"], sim.values["starting_balance"]) == (
        "paper",
        "exness",
        Decimal(10000),
    )
    assert config.strict_brokers is False
    assert config.strict_brokers_source.startswith("config:qkt.config.yaml:")
    assert config.market_data.source == "venue" and config.state_dir is None


def test_flags_win_over_everything(tmp_path: Path) -> None:
    (tmp_path / "qkt.config.yaml").write_text("brokers:\n  exness:\n    magic: 4\n")
    config = load_config(
        None,
        env={"QKT_NO_CACHE": "1", "QKT_BROKER_EXNESS_MAGIC": "5"},
        cwd=tmp_path,
        overrides={"EXNESS": {"magic": 9, "api_key": "flag-token"}},
    )
    exness = config.profiles["exness"]
    assert (exness.magic, exness.sources["magic"]) == (9, "flag")
    assert exness.public_fields()["api_key"] == {"value": "***", "source": "flag"}
    assert exness.secret("api_key") == "flag-token"


def test_top_level_settings(load: Loader, tmp_path: Path) -> None:
    (tmp_path / "bars.csv").write_text("time,open,high,low,close\n")
    config = load(
        "strict_brokers: true\nstate_dir: ~/qkt-state\nmarket_data:\n  source: replay\n"
        "  replay: {path: bars.csv, speed: 10}\npaper:\n  starting_balance: 2500\n"
        "brokers:\n  sim:\n    type: paper\n  rich:\n    type: paper\n    starting_balance: 1e6\n"
    )
    assert (config.strict_brokers, config.strict_brokers_source) == (
        True,
        "config:qkt.config.yaml:1",
    )
    assert config.state_dir == tmp_path / "home" / "qkt-state"
    assert config.market_data.source == "replay"
    assert config.market_data.replay is not None
    assert config.market_data.replay.speed == 10.0
    assert config.market_data.replay.path == str(tmp_path / "bars.csv")  # beside the file
    assert config.paper.starting_balance == Decimal(2500)
    sim, rich = config.profiles["sim"], config.profiles["rich"]
    assert sim.values["starting_balance"] == Decimal(2500)
    assert sim.sources["starting_balance"] == "config:qkt.config.yaml:7"
    assert config.profiles["backtest"].values["starting_balance"] == Decimal(2500)
    assert rich.values["starting_balance"] == Decimal("1e6")
    assert rich.sources["starting_balance"] == "config:qkt.config.yaml:13"


@pytest.mark.parametrize("speed", ["max", "realtime", 0.5])
def test_replay_speeds(load: Loader, speed: object, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("time,open,high,low,close\n")
    config = load(f"market_data:\n  source: replay\n  replay: {{path: x.csv, speed: {speed}}}\n")
    assert config.market_data.replay is not None and config.market_data.replay.speed == speed


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "qkt.yaml").write_text(
        "state_dir: state\nmarket_data:\n  replay: {path: /data/x.csv}\n"
    )
    config = load_config(Path("etc/qkt.yaml"), env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
    assert config.display == "etc/qkt.yaml"
    assert config.state_dir == folder.resolve() / "state"
    assert config.market_data.replay is not None and config.market_data.replay.path == "/data/x.csv"


def test_state_dir_precedence(load: Loader, tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = load("state_dir: /srv/qkt\n")
    env = {"HOME": str(home), "QKT_STATE_DIR": "/run/qkt", "XDG_STATE_HOME": "/xdg"}
    assert resolve_state_dir(Path("~/flag"), env, config) == home / "flag"
    assert resolve_state_dir(None, env, config) == Path("/run/qkt")
    del env["QKT_STATE_DIR"]
    assert resolve_state_dir(None, env, config) == Path("/srv/qkt")
    assert resolve_state_dir(None, env, load(None)) == Path("/xdg/qkt")
    del env["XDG_STATE_HOME"]
    assert resolve_state_dir(None, env, None) == home / ".local" / "state" / "qkt"


def test_ny_close_is_new_york_plus_seven_hours(load: Loader) -> None:
    zone = load(None).profiles["icmarkets"].time_zone()
    assert zone is not None
    offsets = {
        # 20 March: New York already on summer time, Athens not yet: NY close is UTC+3.
        "2024-03-20": timedelta(hours=3),
        "2024-01-15": timedelta(hours=2),
        "2024-07-01": timedelta(hours=3),
        "2024-11-01": timedelta(hours=3),  # Athens back on winter time since 27 October
        "2024-11-05": timedelta(hours=2),
    }
    for day, offset in offsets.items():
        utc = datetime.fromisoformat(f"{day}T12:00:00+00:00")
        local = utc.astimezone(zone)
        assert local.utcoffset() == offset, day
        assert local.astimezone(UTC) == utc
    # 17:00 in New York is midnight on the server, all year round.
    from zoneinfo import ZoneInfo

    for day in ("2024-01-15", "2024-03-20", "2024-07-01"):
        ny = datetime.fromisoformat(f"{day}T17:00:00").replace(tzinfo=ZoneInfo("America/New_York"))
        assert ny.astimezone(zone).hour == 0
    assert load(None).profiles["exness"].time_zone() == UTC
