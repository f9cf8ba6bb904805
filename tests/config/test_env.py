"""``QKT_BROKER_<NAME>_<FIELD>`` overrides and ``${VAR}`` expansion (SPEC §3.2, §3.4)."""

from __future__ import annotations

from decimal import Decimal

from tests.config.conftest import Failer, Loader, Raiser

TWO_ACCOUNTS = (
    "brokers:\n  exness-personal:\n    extends: exness\n    gateway_url: http://a:1\n    magic: 5\n"
)


def test_env_overrides_a_yaml_profile_with_typed_values(load: Loader) -> None:
    config = load(
        TWO_ACCOUNTS,
        QKT_BROKER_EXNESS_PERSONAL_GATEWAY_URL="http://b:2",
        QKT_BROKER_EXNESS_PERSONAL_MAGIC="77",
        QKT_BROKER_EXNESS_PERSONAL_ALIASES='{"US30": "DJ30"}',
        QKT_BROKER_EXNESS_PERSONAL_INSTRUMENT_OVERRIDES='{"EURUSD": {"min_volume": "0.01"}}',
        QKT_BROKER_EXNESS_PERSONAL_EXPECTED_TRADE_MODE="demo",
    )
    p = config.profiles["exness-personal"]
    assert (p.target, p.magic, p.aliases) == ("http://b:2", 77, {"US30": "DJ30"})
    assert isinstance(p.values["magic"], int)
    assert p.instrument("EURUSD") == {
        "min_volume": Decimal("0.01"),
        "max_volume": None,
        "volume_step": None,
        "digits": None,
    }
    assert p.sources["gateway_url"] == "env:QKT_BROKER_EXNESS_PERSONAL_GATEWAY_URL"
    assert p.sources["magic"] == "env:QKT_BROKER_EXNESS_PERSONAL_MAGIC"
    assert p.sources["symbol_suffix"] == "extends:exness"
    assert p.values["expected_trade_mode"] == "demo"
    # The variable names exness-personal, not exness: the shorter name is not touched.
    assert config.profiles["exness"].magic == 10001
    assert config.diagnostics == ()


def test_env_override_of_a_built_in_and_booleans(load: Loader) -> None:
    config = load(
        "brokers:\n  bybit:\n    type: bybit\n",
        QKT_BROKER_EXNESS_SYMBOL_SUFFIX="",
        QKT_BROKER_BYBIT_TESTNET="false",
        QKT_BROKER_BYBIT_RECV_WINDOW_MS="10000",
    )
    exness = config.profiles["exness"]
    assert (exness.symbol_suffix, exness.sources["symbol_suffix"]) == (
        "",
        "env:QKT_BROKER_EXNESS_SYMBOL_SUFFIX",
    )
    bybit = config.profiles["bybit"]
    assert bybit.values["testnet"] is False and bybit.target == "https://api.bybit.com"
    assert bybit.values["recv_window_ms"] == 10000


def test_ready_timeout_defaults_and_comes_from_file_or_env(load: Loader) -> None:
    config = load(None)
    exness = config.profiles["exness"]
    assert (exness.values["ready_timeout_ms"], exness.sources["ready_timeout_ms"]) == (
        30000,
        "default",
    )
    config = load(
        "brokers:\n  exness:\n    ready_timeout_ms: 12000\n  ftmo:\n    ready_timeout_ms: 1\n",
        QKT_BROKER_EXNESS_READY_TIMEOUT_MS="2500",
    )
    exness = config.profiles["exness"]
    assert exness.values["ready_timeout_ms"] == 2500
    assert exness.sources["ready_timeout_ms"] == "env:QKT_BROKER_EXNESS_READY_TIMEOUT_MS"
    assert config.profiles["ftmo"].values["ready_timeout_ms"] == 1
    assert config.profiles["ftmo"].sources["ready_timeout_ms"] == "config:qkt.config.yaml:5"
    assert config.diagnostics == ()


def test_a_boolean_magic_from_the_environment_is_refused(raises: Raiser) -> None:
    (d,) = raises(None, QKT_BROKER_EXNESS_MAGIC="true")
    assert (d.severity, d.code) == ("error", "bad-value")
    assert "QKT_BROKER_EXNESS_MAGIC" in d.message and "from 1 to 4294967295" in d.message


def test_empty_env_value_clears_an_optional_field(load: Loader) -> None:
    config = load(
        "brokers:\n  exness:\n    expected_account_login: 42\n",
        QKT_BROKER_EXNESS_EXPECTED_ACCOUNT_LOGIN="",
    )
    assert config.profiles["exness"].values["expected_account_login"] is None


def test_env_only_profile(load: Loader) -> None:
    config = load(
        None,
        QKT_BROKER_MY_BYBIT_TYPE="bybit",
        QKT_BROKER_MY_BYBIT_TESTNET="false",
        QKT_BROKER_MY_BYBIT_CATEGORY="spot",
        QKT_BROKER_LAB_TYPE="MT5",
        QKT_BROKER_LAB_GATEWAY_URL="http://lab:9000",
        QKT_BROKER_LAB_MAGIC="31",
    )
    p = config.profiles["my-bybit"]
    assert (p.type, p.target, p.values["category"]) == ("bybit", "https://api.bybit.com", "spot")
    assert p.origin == "env:QKT_BROKER_MY_BYBIT_TYPE"
    assert p.sources["testnet"] == "env:QKT_BROKER_MY_BYBIT_TESTNET"
    assert p.sources["recv_window_ms"] == "default"
    lab = config.profile("LAB")
    assert lab is not None and (lab.type, lab.target, lab.magic) == ("mt5", "http://lab:9000", 31)
    assert config.diagnostics == ()


def test_env_type_of_an_existing_profile(load: Loader, raises: Raiser) -> None:
    assert load(None, QKT_BROKER_EXNESS_TYPE="mt5").diagnostics == ()
    (d,) = raises(None, QKT_BROKER_EXNESS_TYPE="bybit")
    assert d.code == "bad-type" and "QKT_BROKER_EXNESS_TYPE" in d.message


def test_env_only_profile_needs_its_required_fields(raises: Raiser) -> None:
    diags = raises(None, QKT_BROKER_LAB_TYPE="mt5")
    assert sorted(d.code for d in diags) == ["missing-field", "missing-field"]
    hints = {d.hint for d in diags}
    assert hints == {"set QKT_BROKER_LAB_GATEWAY_URL", "set QKT_BROKER_LAB_MAGIC"}
    assert all(d.path is None and d.line is None for d in diags)


def test_env_only_profile_with_a_bad_type(raises: Raiser) -> None:
    (d,) = raises(None, QKT_BROKER_LAB_TYPE="mt4")
    assert (d.code, d.hint) == ("bad-type", "did you mean `mt5`?")
    assert "QKT_BROKER_LAB_TYPE" in d.message


def test_env_naming_no_profile_or_field_is_a_strict_warning(load: Loader) -> None:
    config = load(
        TWO_ACCOUNTS,
        QKT_BROKER_EXNES_MAGIC="1",
        QKT_BROKER_EXNESS_GATWAY_URL="http://x:1",
        QKT_BROKER_EXNESS_PERSONAL_MAGIK="3",
    )
    found = {(d.code, d.severity, d.strict, d.hint) for d in config.diagnostics}
    assert found == {
        ("env-unknown-profile", "warning", True, "did you mean `QKT_BROKER_EXNESS`?"),
        ("env-unknown-field", "warning", True, "did you mean `gateway_url`?"),
        ("env-unknown-field", "warning", True, "did you mean `magic`?"),
    }
    messages = " ".join(d.message for d in config.diagnostics)
    assert "QKT_BROKER_EXNES_MAGIC" in messages
    assert "QKT_BROKER_EXNESS_PERSONAL_MAGIK" in messages and "exness-personal" in messages
    assert config.profiles["exness"].target == "http://localhost:5001"


def test_bad_env_value_names_the_variable(raises: Raiser) -> None:
    (d,) = raises(None, QKT_BROKER_EXNESS_MAGIC="abc")
    assert d.code == "bad-value"
    assert d.message == (
        "profile `exness`: `magic` must be an integer from 1 to 4294967295, got 'abc' "
        "(from QKT_BROKER_EXNESS_MAGIC)"
    )
    assert (d.path, d.line) == (None, None)


def test_bad_env_json_and_bool(fail: Failer) -> None:
    assert (
        fail(
            None,
            QKT_BROKER_EXNESS_ALIASES="NAS100=USTEC",
            QKT_BROKER_EXNESS_INSTRUMENT_OVERRIDES="[1, 2]",
            QKT_BROKER_EXNESS_POLL_INTERVAL_MS="0",
            QKT_BROKER_LAB_TYPE="bybit",
            QKT_BROKER_LAB_TESTNET="maybe",
        )
        == [("bad-value", None)] * 4
    )


def test_variables_expand_in_any_scalar(load: Loader) -> None:
    config = load(
        "strict_brokers: ${STRICT:-false}\n"
        "brokers:\n  exness:\n    gateway_url: http://${GW_HOST}:${GW_PORT:-5001}\n"
        "    magic: ${MAGIC}\n    symbol_suffix: $$x$y\n",
        GW_HOST="gw.example",
        MAGIC="12",
    )
    exness = config.profiles["exness"]
    assert exness.target == "http://gw.example:5001"
    assert (exness.magic, exness.sources["magic"]) == (12, "config:qkt.config.yaml:5")
    assert exness.symbol_suffix == "$x$y"
    assert config.strict_brokers is False and config.diagnostics == ()


def test_unset_variable_warns_naming_it_and_the_key(load: Loader) -> None:
    config = load(
        "brokers:\n  exness:\n    gateway_url: http://${GW_HOST:-localhost}:5001\n"
        "    api_key: ${GW_TOKEN}\n    magic: ${EXNESS_MAGIC}\n",
    )
    exness = config.profiles["exness"]
    assert exness.values["api_key"] is None
    assert (exness.magic, exness.sources["magic"]) == (10001, "builtin")  # unset: not overridden
    first, second = config.diagnostics
    assert (first.code, first.severity, first.strict, first.line) == (
        "unset-variable",
        "warning",
        True,
        4,
    )
    assert "${GW_TOKEN}" in first.message and "brokers.exness.api_key" in first.message
    assert "${EXNESS_MAGIC}" in second.message and second.line == 5


def test_unset_variable_in_a_required_field_is_also_missing(fail: Failer) -> None:
    assert fail("brokers:\n  lab:\n    type: mt5\n    gateway_url: ${LAB_URL}\n    magic: 3\n") == [
        ("missing-field", 2),
    ]


def test_empty_default_leaves_a_field_unset_silently(load: Loader) -> None:
    config = load("brokers:\n  bybit:\n    type: bybit\n    api_key: ${BYBIT_API_KEY:-}\n")
    assert config.profiles["bybit"].values["api_key"] is None
    assert config.diagnostics == ()
