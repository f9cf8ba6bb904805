"""Every configuration error (SPEC §3.4) with its code and line; all are reported at once."""

from __future__ import annotations

import pytest

from tests.config.conftest import Failer, Loader, Raiser


def test_unknown_extends_suggests_the_closest(raises: Raiser) -> None:
    (d,) = raises("brokers:\n  a:\n    extends: exnes\n    magic: 5\n")
    assert (d.code, d.line, d.column) == ("unknown-extends", 3, 5)
    assert d.hint == "did you mean `exness`?"
    assert "`a` extends `exnes`" in d.message


def test_extends_cycle_is_named(raises: Raiser) -> None:
    (d,) = raises("brokers:\n  a:\n    extends: b\n  b:\n    extends: c\n  c:\n    extends: a\n")
    assert (d.code, d.line) == ("extends-cycle", 7)
    assert "a -> b -> c -> a" in d.message


def test_extends_itself(fail: Failer) -> None:
    assert fail("brokers:\n  a:\n    extends: a\n") == [("extends-cycle", 3)]


def test_extends_across_types(raises: Raiser, fail: Failer) -> None:
    (d,) = raises("brokers:\n  s:\n    type: paper\n    extends: exness\n")
    assert (d.code, d.line) == ("extends-type-mismatch", 3)
    assert "type paper" in d.message and "type mt5" in d.message
    assert fail("brokers:\n  exness:\n    type: bybit\n") == [("extends-type-mismatch", 3)]


def test_fresh_mt5_profile_needs_url_and_magic(raises: Raiser) -> None:
    diags = raises("brokers:\n  lab:\n    type: mt5\n")
    assert [(d.code, d.line) for d in diags] == [("missing-field", 2), ("missing-field", 2)]
    assert {d.message for d in diags} == {
        "profile `lab`: `gateway_url` is required",
        "profile `lab`: `magic` is required",
    }


def test_missing_and_bad_type(raises: Raiser, fail: Failer) -> None:
    assert fail("brokers:\n  lab:\n    magic: 3\n") == [("missing-type", 2)]
    (d,) = raises("brokers:\n  lab:\n    type: mt4\n")
    assert (d.code, d.line, d.hint) == ("bad-type", 3, "did you mean `mt5`?")


def test_bad_url(raises: Raiser) -> None:
    diags = raises(
        "brokers:\n  exness:\n    gateway_url: localhost:5001\n"
        "  b:\n    type: bybit\n    base_url: http://:80\n"
        "  c:\n    extends: exness\n    gateway_url: http://c:99999\n    magic: 3\n"
    )
    assert [(d.code, d.line) for d in diags] == [("bad-url", 3), ("bad-url", 6), ("bad-url", 9)]
    assert diags[0].message == (
        "profile `exness`: `gateway_url` must be an http:// or https:// URL with a host, "
        "got 'localhost:5001'"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("magic: -4", "`magic` must be an integer from 1 to 4294967295, got -4"),
        ("magic: abc", "`magic` must be an integer from 1 to 4294967295, got 'abc'"),
        ("magic: 1.5", "`magic` must be an integer from 1 to 4294967295, got 1.5"),
        ("magic: true", "`magic` must be an integer from 1 to 4294967295, got true"),
        ("magic: false", "`magic` must be an integer from 1 to 4294967295, got false"),
        ("magic: 4294967296", "`magic` must be an integer from 1 to 4294967295, got 4294967296"),
        ("ready_timeout_ms: 0", "`ready_timeout_ms` must be an integer > 0, got 0"),
        ("ready_timeout_ms: soon", "`ready_timeout_ms` must be an integer > 0, got 'soon'"),
        ("server_time_zone: Mars/Olympus", "`server_time_zone` must be an IANA time zone"),
        ("expected_trade_mode: paper", "`expected_trade_mode` must be demo, contest or real"),
        ("retry_attempts: 0", "`retry_attempts` must be an integer >= 1, got 0"),
        ("aliases: [NAS100]", "`aliases` must be a mapping, got a list"),
        ("symbol_suffix: 5", "`symbol_suffix` must be a string, got 5"),
        (
            "instrument_overrides: {EURUSD: {digits: -1}}",
            "`instrument_overrides.EURUSD.digits` must",
        ),
        ("instrument_overrides: {EURUSD: {volume_step: x}}", "must be a number > 0, got 'x'"),
        ("magic:", "`magic` must be an integer from 1 to 4294967295, got nothing"),
    ],
)
def test_bad_values_read_briefly(raises: Raiser, line: str, message: str) -> None:
    (d,) = raises(f"brokers:\n  exness:\n    {line}\n")
    assert (d.code, d.line) == ("bad-value", 3)
    assert message in d.message and d.message.startswith("profile `exness`: ")


def test_a_boolean_magic_is_refused_in_a_fresh_profile_at_its_line(raises: Raiser) -> None:
    (d,) = raises(
        "brokers:\n  lab:\n    type: mt5\n    gateway_url: http://lab:1\n    magic: true\n"
    )
    assert (d.severity, d.code, d.path, d.line, d.column) == (
        "error",
        "bad-value",
        "qkt.config.yaml",
        5,
        5,
    )
    assert d.message == "profile `lab`: `magic` must be an integer from 1 to 4294967295, got true"


def test_magic_takes_the_whole_unsigned_32_bit_range(load: Loader) -> None:
    config = load("brokers:\n  exness:\n    magic: 4294967295\n  ftmo:\n    magic: '1'\n")
    assert config.profiles["exness"].magic == 4294967295
    assert config.profiles["ftmo"].magic == 1


def test_bad_top_level_values(raises: Raiser) -> None:
    diags = raises(
        "strict_brokers: sometimes\nmarket_data:\n  source: radio\n"
        "  replay: {path: x.csv, speed: fast}\npaper:\n  starting_balance: 0\n"
    )
    assert [(d.code, d.line) for d in diags] == [
        ("bad-value", 1),
        ("bad-value", 3),
        ("bad-value", 4),
        ("bad-value", 6),
    ]
    assert "`market_data.source` must be venue, replay or none, got 'radio'" in diags[1].message
    assert "must be max, realtime or a number > 0, got 'fast'" in diags[2].message


def test_duplicate_magic_on_one_gateway(raises: Raiser) -> None:
    text = (
        "brokers:\n  a:\n    extends: exness\n    gateway_url: http://gw:1\n    magic: 7\n"
        "  b:\n    extends: exness\n    gateway_url: http://gw:1/\n    magic: 7\n"
        "  c:\n    extends: exness\n    gateway_url: http://other:1\n    magic: 7\n"
    )
    (d,) = raises(text)
    assert (d.code, d.line) == ("duplicate-magic", 9)
    assert "`a` and `b`" in d.message and "http://gw:1" in d.message


def test_duplicate_magic_with_a_built_in(fail: Failer) -> None:
    assert fail("brokers:\n  twin:\n    extends: exness\n") == [("duplicate-magic", 2)]


def test_unknown_keys_with_hints_and_lines(raises: Raiser) -> None:
    diags = raises(
        "strict_broker: true\nmarket_data:\n  replay: {pth: x.csv}\n"
        "brokers:\n  exness:\n    gatway_url: http://x:1\n"
        "    instrument_overrides:\n      EURUSD: {step: 0.1}\n"
    )
    found = [(d.code, d.line, d.hint) for d in diags if d.code == "unknown-key"]
    assert found == [
        ("unknown-key", 1, "did you mean `strict_brokers`?"),
        ("unknown-key", 3, "did you mean `path`?"),
        ("unknown-key", 6, "did you mean `gateway_url`?"),
        ("unknown-key", 8, "did you mean `volume_step`?"),
    ]
    assert "unknown key `gatway_url`" in diags[-2].message


def test_yaml_syntax_and_duplicate_keys(fail: Failer) -> None:
    assert fail("brokers:\n  exness:\n    magic: [1\n") == [("yaml-syntax", 4)]
    assert fail("brokers:\n  exness:\n    magic: 1\n    magic: 2\n") == [("yaml-duplicate-key", 4)]


def test_the_file_must_be_a_mapping(fail: Failer) -> None:
    assert fail("- exness\n") == [("bad-config", 1)]
    assert fail("brokers: [exness]\n") == [("bad-value", 1)]
    assert fail("brokers:\n  exness: fast\n") == [("bad-value", 2)]


def test_profile_names_are_lowercase(raises: Raiser) -> None:
    (d,) = raises("brokers:\n  Exness-Two:\n    extends: exness\n    magic: 5\n")
    assert (d.code, d.line, d.hint) == ("bad-profile-name", 2, "did you mean `exness-two`?")


def test_paper_quotes_from_must_name_a_venue(raises: Raiser) -> None:
    (d,) = raises("brokers:\n  sim:\n    type: paper\n    quotes_from: exnes\n")
    assert (d.code, d.line, d.hint) == ("unknown-profile", 4, "did you mean `exness`?")
    (d,) = raises("brokers:\n  sim:\n    type: paper\n    quotes_from: backtest\n")
    assert (d.code, d.line) == ("bad-value", 4)


def test_unknown_profile_in_flags(tmp_path: object) -> None:
    from pathlib import Path

    from qkt.config import load_config
    from qkt.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(None, env={}, cwd=Path(str(tmp_path)), overrides={"exnes": {"magic": 1}})
    (d,) = info.value.diagnostics
    assert (d.code, d.hint) == ("unknown-profile", "did you mean `exness`?")


def test_all_errors_are_reported_together_in_file_order(fail: Failer) -> None:
    found = fail(
        "strict_brokers: maybe\n"
        "brokers:\n  a:\n    extends: nobody\n  b:\n    type: nope\n  c:\n    type: mt5\n"
        "    gateway_url: ftp://x\n    magic: 1\n    colour: red\n  D:\n    type: paper\n"
    )
    assert found == [
        ("bad-value", 1),
        ("unknown-extends", 4),
        ("bad-type", 6),
        ("bad-url", 9),
        ("unknown-key", 11),
        ("bad-profile-name", 12),
    ]


def test_an_error_is_reported_once_where_it_was_written(fail: Failer) -> None:
    """Profiles that inherit a wrong value do not repeat its error."""
    text = (
        "brokers:\n  base:\n    type: mt5\n    gateway_url: http://x:1\n    magic: abc\n"
        "    colour: red\n  child:\n    extends: base\n  grandchild:\n    extends: child\n"
    )
    assert fail(text) == [("bad-value", 5), ("unknown-key", 6)]
    broken = "brokers:\n  base:\n    type: mt5\n  child:\n    extends: base\n    magic: 4\n"
    assert fail(broken) == [("missing-field", 2), ("missing-field", 2)]


def test_a_deviation_the_gateway_refuses_is_a_config_error(raises: Raiser) -> None:
    (d,) = raises("brokers:\n  exness:\n    deviation_points: 5000\n")
    assert (d.line, d.column) == (3, 5) and "from 0 to 1000" in d.message
