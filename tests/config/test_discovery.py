"""Where the configuration is found (SPEC §3.1), and what having none means."""

from __future__ import annotations

from pathlib import Path

import pytest

from qkt.config import discover_config, load_config
from qkt.errors import ConfigError
from tests.config.conftest import Loader


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """A config file at every place discovery looks, each a distinct file."""
    paths = {
        "explicit": tmp_path / "explicit.yaml",
        "env": tmp_path / "named.yaml",
        "cwd": tmp_path / "cwd" / "qkt.config.yaml",
        "xdg": tmp_path / "xdg" / "qkt" / "qkt.config.yaml",
        "home": tmp_path / "home" / ".config" / "qkt" / "qkt.config.yaml",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
    return paths


def test_each_step_wins_over_the_next(places: dict[str, Path], tmp_path: Path) -> None:
    cwd = places["cwd"].parent
    env = {
        "QKT_CONFIG": str(places["env"]),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "HOME": str(tmp_path / "home"),
    }
    assert discover_config(places["explicit"], env, cwd) == places["explicit"]
    assert discover_config(None, env, cwd) == places["env"]
    del env["QKT_CONFIG"]
    assert discover_config(None, env, cwd) == places["cwd"]
    assert discover_config(None, env, tmp_path) == places["xdg"]
    del env["XDG_CONFIG_HOME"]
    assert discover_config(None, env, tmp_path) == places["home"]
    del env["HOME"]
    assert discover_config(None, env, tmp_path) is None


def test_empty_qkt_config_variable_is_ignored(places: dict[str, Path]) -> None:
    assert discover_config(None, {"QKT_CONFIG": ""}, places["cwd"].parent) == places["cwd"]


def test_relative_paths_are_relative_to_the_working_directory(places: dict[str, Path]) -> None:
    base = places["explicit"].parent
    assert discover_config(Path("explicit.yaml"), {}, base) == places["explicit"]
    assert discover_config(None, {"QKT_CONFIG": "named.yaml"}, base) == places["env"]


def test_tilde_uses_home_from_the_environment(places: dict[str, Path], tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "QKT_CONFIG": "~/.config/qkt/qkt.config.yaml"}
    assert discover_config(None, env, tmp_path) == places["home"]


@pytest.mark.parametrize("how", ["--config", "$QKT_CONFIG"])
def test_a_named_file_that_does_not_exist_is_an_error(tmp_path: Path, how: str) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        if how == "--config":
            load_config(missing, env={}, cwd=tmp_path)
        else:
            load_config(None, env={"QKT_CONFIG": str(missing)}, cwd=tmp_path)
    (d,) = info.value.diagnostics
    assert (d.code, d.severity) == ("config-not-found", "error")
    assert str(missing) in d.message and how in d.message


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        discover_config(tmp_path, {}, tmp_path)
    assert info.value.diagnostics[0].code == "config-not-found"


def test_no_file_means_built_ins_only(load: Loader) -> None:
    config = load(None)
    assert config.path is None and config.display is None
    assert list(config.profiles) == [
        "exness",
        "icmarkets",
        "ftmo",
        "pepperstone",
        "backtest",
        "paper",
    ]
    assert config.diagnostics == ()


def test_no_file_gives_what_an_empty_file_gives(load: Loader) -> None:
    """The no-file path skips pydantic; it must agree with the validating path."""
    plain = load(None)
    validated = load("{}\n")
    assert validated.display == "qkt.config.yaml"
    assert plain.profiles == validated.profiles
    assert plain.market_data_values == validated.market_data_values
    assert plain.paper_values == validated.paper_values
    assert plain.market_data == validated.market_data
    for name, profile in plain.profiles.items():
        assert profile.public_fields() == validated.profiles[name].public_fields()
        assert profile.settings == validated.profiles[name].settings


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    path = tmp_path / "qkt.config.yaml"
    path.write_bytes(b"brokers: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
    assert info.value.diagnostics[0].code == "yaml-encoding"
    assert info.value.diagnostics[0].path == "qkt.config.yaml"
