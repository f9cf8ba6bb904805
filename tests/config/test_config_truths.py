"""Config mistakes that would trade on bad input are refused at load, each where it was written."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from qkt.config import cache as config_cache
from qkt.config import load_config
from qkt.errors import ConfigError
from tests.config.conftest import Failer, Loader, Raiser


@pytest.mark.parametrize(
    "url", ["http://trader:hunter2-pass@gw.example:5001", "https://hunter2-pass@gw.example"]
)
def test_a_url_with_credentials_is_refused_without_printing_them(raises: Raiser, url: str) -> None:
    (d,) = raises(f"brokers:\n  exness:\n    gateway_url: {url}\n")
    assert (d.code, d.line, d.column) == ("bad-url", 3, 5)
    assert "api_key" in d.message
    assert "hunter2-pass" not in d.format() and "trader" not in d.format()
    assert "***@gw.example" in d.message


def test_credentials_in_an_env_url_are_refused_too(raises: Raiser) -> None:
    diags = raises(
        None,
        QKT_BROKER_EXNESS_GATEWAY_URL="http://u:hunter2-pass@gw:1",
        QKT_BROKER_LAB_TYPE="bybit",
        QKT_BROKER_LAB_BASE_URL="https://key:hunter2-pass@api.bybit.com",
    )
    assert [d.code for d in diags] == ["bad-url", "bad-url"]
    assert all("hunter2-pass" not in d.format() for d in diags)


def test_min_volume_above_max_volume_is_refused(raises: Raiser) -> None:
    (d,) = raises(
        "brokers:\n  exness:\n    instrument_overrides:\n"
        "      EURUSD: {min_volume: 5, max_volume: 0.5}\n      XAUUSD: {min_volume: 1, max_volume: 1}\n"
    )
    assert (d.code, d.line, d.column) == ("bad-value", 4, 7)
    assert d.message == (
        "profile `exness`: `instrument_overrides.EURUSD` min_volume 5 is above max_volume 0.5"
    )


def test_a_replay_source_needs_a_file_that_exists(
    raises: Raiser, load: Loader, tmp_path: Path
) -> None:
    (d,) = raises("market_data:\n  source: replay\n  replay:\n    path: data/bars.csv\n")
    assert (d.code, d.line, d.column) == ("replay-not-found", 4, 5)
    assert str(tmp_path / "data" / "bars.csv") in d.message
    (d,) = raises("market_data:\n  source: replay\n")
    assert (d.code, d.line) == ("replay-not-found", 2)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bars.csv").write_text("time,open,high,low,close\n")
    config = load("market_data:\n  source: replay\n  replay:\n    path: data/bars.csv\n")
    assert config.market_data.replay is not None
    # a replay that is not the source is not read, and need not exist
    load("market_data:\n  source: venue\n  replay: {path: gone.csv}\n")


def test_a_cached_config_whose_replay_file_went_away_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "qkt.config.yaml"
    data = tmp_path / "bars.csv"
    data.write_text("time,open,high,low,close\n")
    cfg.write_text("market_data:\n  source: replay\n  replay: {path: bars.csv}\n")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    load_config(None, env=env, cwd=tmp_path)  # resolved and cached
    data.unlink()
    with pytest.raises(ConfigError) as info:
        load_config(None, env=env, cwd=tmp_path)
    assert info.value.diagnostics[0].code == "replay-not-found"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("http://localhost:5001", "HTTP://LOCALHOST:5001"),
        ("http://gw.example", "http://GW.example:80/"),
        ("https://gw.example:443", "HTTPS://gw.EXAMPLE"),
    ],
)
def test_duplicate_magic_compares_gateway_urls_as_urls(
    fail: Failer, load: Loader, first: str, second: str
) -> None:
    text = (
        f"brokers:\n  a:\n    extends: exness\n    gateway_url: {first}\n    magic: 7\n"
        f"  b:\n    extends: exness\n    gateway_url: {second}\n    magic: 7\n"
    )
    assert fail(text) == [("duplicate-magic", 9)]
    load(text.replace("magic: 7\n  b", "magic: 8\n  b"))  # other magic numbers: fine


def test_the_config_cache_keeps_a_bounded_number_of_entries(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache), "HOME": str(tmp_path)}
    total = config_cache.MAX_ENTRIES + 10
    folders = []
    for i in range(total):
        folder = tmp_path / f"c{i}"
        folder.mkdir()
        (folder / "qkt.config.yaml").write_text(f"brokers:\n  exness:\n    magic: {i + 1}\n")
        folders.append(folder)
        load_config(None, env=env, cwd=folder)
        if i % 5 == 0:
            load_config(None, env=env, cwd=folders[0])  # the first is used all along
    entries = sorted((cache / "qkt").glob("config-*.json"))
    assert len(entries) == config_cache.MAX_ENTRIES
    kept = {config_cache.slot_of(cache / "qkt", f / "qkt.config.yaml") for f in folders}
    assert set(entries) <= kept
    assert config_cache.slot_of(cache / "qkt", folders[0] / "qkt.config.yaml") in entries
    assert config_cache.slot_of(cache / "qkt", folders[-1] / "qkt.config.yaml") in entries
    assert config_cache.slot_of(cache / "qkt", folders[1] / "qkt.config.yaml") not in entries
    assert not [p for p in (cache / "qkt").iterdir() if p.name.endswith(".tmp")]
    assert all(os.stat(p).st_mode & 0o077 == 0 for p in entries)


def test_paper_contract_sizes_are_positive_numbers(load: Loader, raises: Raiser) -> None:
    config = load("brokers:\n  sim:\n    type: paper\n    contract_sizes: {EURUSD: 100000}\n")
    assert config.profiles["sim"].values["contract_sizes"] == {"EURUSD": Decimal(100000)}
    assert config.profiles["paper"].values["contract_sizes"] == {}
    (d,) = raises("brokers:\n  sim:\n    type: paper\n    contract_sizes: {EURUSD: 0}\n")
    assert (d.code, d.line) == ("bad-value", 4)
    assert "`contract_sizes.EURUSD` must be a number > 0" in d.message
