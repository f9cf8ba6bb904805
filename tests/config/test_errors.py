"""Every configuration error of SPEC §3.4, each with its line; secrets never leak."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qkt.config import load_config
from qkt.errors import ConfigError
from tests.config.conftest import Failer, Loader
from tests.conftest import ROOT

SECRET = "zq-secret-7731"


def test_unknown_extends_suggests(fail: Failer, load: Loader) -> None:
    assert fail("brokers:\n  a:\n    extends: exnes\n    magic: 5\n") == [("unknown-extends", 3)]
    with pytest.raises(ConfigError) as info:
        load("brokers:\n  a:\n    extends: exnes\n")
    assert info.value.diagnostics[0].hint == "did you mean `exness`?"


def test_extends_cycle_is_named(load: Loader) -> None:
    with pytest.raises(ConfigError) as info:
        load("brokers:\n  a:\n    extends: b\n  b:\n    extends: c\n  c:\n    extends: a\n")
    (d,) = [d for d in info.value.diagnostics if d.code == "extends-cycle"]
    assert "a -> b -> c -> a" in d.message
    assert d.line == 7


def test_extends_across_types(fail: Failer) -> None:
    assert fail("brokers:\n  s:\n    type: paper\n    extends: exness\n") == [
        ("extends-type-mismatch", 3)
    ]
    assert fail("brokers:\n  exness:\n    type: bybit\n") == [("extends-type-mismatch", 3)]


def test_fresh_mt5_profile_needs_url_and_magic(fail: Failer) -> None:
    assert fail("brokers:\n  lab:\n    type: mt5\n") == [("missing-field", 2), ("missing-field", 2)]


def test_missing_and_bad_type(fail: Failer) -> None:
    assert fail("brokers:\n  lab:\n    magic: 3\n") == [("missing-type", 2)]
    assert fail("brokers:\n  lab:\n    type: mt4\n") == [("bad-type", 3)]


def test_bad_url_and_bad_values(fail: Failer) -> None:
    found = fail(
        "brokers:\n  exness:\n    gateway_url: localhost:5001\n    magic: -4\n"
        "    server_time_zone: Mars/Olympus\n    expected_trade_mode: paper\n"
    )
    assert found == [("bad-url", 3), ("bad-value", 4), ("bad-value", 5), ("bad-value", 6)]


def test_duplicate_magic_on_one_gateway(fail: Failer) -> None:
    text = "brokers:\n  a:\n    extends: exness\n  b:\n    extends: exness\n    magic: 10001\n"
    found = fail(text)
    assert ("duplicate-magic", 6) in found


def test_unknown_keys_with_hints(load: Loader) -> None:
    with pytest.raises(ConfigError) as info:
        load("strict_broker: true\nbrokers:\n  exness:\n    gatway_url: http://x:1\n")
    found = {(d.code, d.line, d.hint) for d in info.value.diagnostics}
    assert ("unknown-key", 1, None) in found or any(
        code == "unknown-key" and line == 1 for code, line, _ in found
    )
    assert ("unknown-key", 4, "did you mean `gateway_url`?") in found


def test_yaml_syntax_and_duplicate_keys(fail: Failer) -> None:
    assert fail("brokers:\n  exness:\n    magic: [1\n") == [("yaml-syntax", 4)]
    assert fail("brokers:\n  exness:\n    magic: 1\n    magic: 2\n") == [("yaml-duplicate-key", 4)]


def test_profile_names_are_lowercase(load: Loader) -> None:
    with pytest.raises(ConfigError) as info:
        load("brokers:\n  Exness-Two:\n    extends: exness\n")
    (d,) = info.value.diagnostics
    assert (d.code, d.line, d.hint) == ("bad-profile-name", 2, "did you mean `exness-two`?")


def test_paper_quotes_from_must_exist(fail: Failer) -> None:
    assert fail("brokers:\n  sim:\n    type: paper\n    quotes_from: exnes\n") == [
        ("unknown-profile", 4)
    ]


def test_all_errors_are_reported_together(fail: Failer) -> None:
    found = fail(
        "brokers:\n  a:\n    extends: nobody\n  b:\n    type: nope\n  c:\n    type: mt5\n"
        "    gateway_url: ftp://x\n    magic: 1\n"
    )
    assert [code for code, _ in found] == ["unknown-extends", "bad-type", "bad-url"]


def test_secrets_never_leak(load: Loader, tmp_path: Path) -> None:
    config = load(
        "brokers:\n  bybit:\n    type: bybit\n    api_key: ${KEY}\n    api_secret: ${SECRET}\n",
        KEY=SECRET,
        SECRET=SECRET + "-2",
    )
    bybit = config.profiles["bybit"]
    assert bybit.secret("api_key") == SECRET
    public = bybit.public_fields()
    assert public["api_key"] == {"value": "***", "source": "config:qkt.config.yaml:4"}
    for text in (repr(config), str(config), repr(public), repr(bybit.values)):
        assert SECRET not in text
    assert bybit.settings.api_key is not None  # type: ignore[union-attr]
    assert not list((tmp_path / "home").rglob("*.pickle"))  # never cached to disk
    with pytest.raises(ConfigError) as info:
        load(
            "brokers:\n  bybit:\n    type: bybit\n    api_key: ${KEY}\n    recv_window_ms: -1\n",
            KEY=SECRET,
        )
    assert all(SECRET not in d.format() for d in info.value.diagnostics)


SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROOT_TEXT = (ROOT / "qkt.config.yaml").read_text()


def _try(text: str, tmp: Path) -> None:
    cfg = tmp / "qkt.config.yaml"
    cfg.write_text(text, encoding="utf-8")
    try:
        load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp)
    except ConfigError as exc:
        assert exc.diagnostics
        assert all(d.severity in ("error", "warning") for d in exc.diagnostics)


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list(":- \n{}[]#'\"abc123$"))))
def test_fuzzed_yamlish_text_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    _try(text, tmp_path_factory.mktemp("f"))


leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 20000), st.text(max_size=12))
tree = st.recursive(
    leaf, lambda kids: st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12
)


@SETTINGS
@given(st.data())
def test_mutated_root_config_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    doc = yaml.safe_load(ROOT_TEXT)
    profile = data.draw(st.sampled_from(sorted(doc["brokers"])))
    key = data.draw(
        st.sampled_from(["type", "magic", "gateway_url", "extends", "aliases", "x", "quotes_from"])
    )
    doc["brokers"][profile][key] = data.draw(tree)
    _try(yaml.safe_dump(doc), tmp_path_factory.mktemp("m"))
