"""``plan_routes``: labels to profiles to routes, strict mode, volume checks (SPEC §4)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from qkt.brokers.registry import BrokerRegistry
from qkt.config import load_config
from qkt.dsl import parse_strategy
from qkt.dsl.ast import Strategy
from qkt.routing import check_shared_accounts, plan_routes, resolve_strict
from tests.conftest import SEED, Writer


def strategy(text: str) -> Strategy:
    parsed = parse_strategy(text, "s.qkt")
    assert parsed.ok, [d.format() for d in parsed.diagnostics]
    assert parsed.strategy is not None
    return parsed.strategy


def registry(write: Writer, yaml_text: str = "") -> BrokerRegistry:
    path = write("qkt.config.yaml", yaml_text or "{}\n")
    return BrokerRegistry.from_config(load_config(path, env={}))


def streams(*lines: str, rule: str = "") -> str:
    body = "\n".join(lines)
    first = lines[0].split("=")[0].strip()
    rule = rule or f'WHEN {first}.close > 0 THEN LOG "x"'
    return f"STRATEGY s VERSION 1\nSYMBOLS\n{body}\nRULES\n{rule}\n"


def test_builtin_exness_translates_aliases_then_suffix(write: Writer) -> None:
    plan = plan_routes(
        strategy(streams("a = EXNESS:NAS100 EVERY 1m", "b = exness:UKOIL EVERY 1h")),
        registry(write),
        strict=False,
    )
    assert [r.broker_symbol for r in plan.routes] == ["USTECm", "XBRUSDm"]
    assert [r.label for r in plan.routes] == ["EXNESS", "exness"]
    assert {r.profile for r in plan.routes} == {"exness"}
    assert plan.ok and plan.diagnostics == ()


@pytest.mark.parametrize(
    ("label", "broker_symbol", "magic", "target"),
    [
        ("ICMARKETS", "EURUSD.raw", 10002, "http://localhost:5002"),
        ("FTMO", "EURUSD", 10003, "http://localhost:5003"),
        ("Pepperstone", "EURUSD.cmd", 10004, "http://localhost:5004"),
    ],
)
def test_each_builtin_profile(
    write: Writer, label: str, broker_symbol: str, magic: int, target: str
) -> None:
    plan = plan_routes(
        strategy(streams(f"e = {label}:EURUSD EVERY 1m")), registry(write), strict=True
    )
    (route,) = plan.routes
    assert (route.broker_symbol, route.magic, route.target, route.status) == (
        broker_symbol,
        magic,
        target,
        "ok",
    )


def test_backtest_and_paper_are_explicit_paper_even_without_a_registry() -> None:
    plan = plan_routes(
        strategy(streams("a = BACKTEST:BTCUSDT EVERY 1m", "b = PAPER:EURUSD EVERY 1m")),
        BrokerRegistry(),
        strict=True,
    )
    assert [(r.type, r.target, r.fallback, r.status) for r in plan.routes] == [
        ("paper", "paper", False, "ok"),
        ("paper", "paper", False, "ok"),
    ]
    assert plan.ok


def test_unknown_label_is_a_fallback_or_an_error_in_strict_mode(write: Writer) -> None:
    text = streams("e = EXNES:EURUSD EVERY 1m")
    relaxed = plan_routes(strategy(text), registry(write), strict=False)
    (route,) = relaxed.routes
    assert (route.profile, route.fallback, route.status) == ("paper", True, "fallback")
    (diag,) = relaxed.diagnostics
    assert (diag.severity, diag.code, diag.line, diag.column) == ("warning", "unknown-label", 3, 5)
    assert diag.hint == "did you mean `EXNESS`?"
    strict = plan_routes(strategy(text), registry(write), strict=True)
    assert strict.routes[0].status == "error"
    assert strict.diagnostics[0].severity == "error"
    assert not strict.ok


def test_empty_registry_routes_everything_to_paper() -> None:
    plan = plan_routes(strategy(SEED), BrokerRegistry(), strict=False)
    assert plan.routes[0].type == "paper"
    assert plan.routes[0].fallback is True
    assert plan.profiles == ("paper",)


def test_volume_checks_against_instrument_overrides(write: Writer) -> None:
    reg = registry(
        write,
        "brokers:\n  exness:\n    instrument_overrides:\n"
        "      EURUSD: {min_volume: 0.01, max_volume: 5, volume_step: 0.01}\n",
    )
    text = streams(
        "eur = EXNESS:EURUSD EVERY 1m",
        rule="WHEN eur.close > 1 THEN BUY eur SIZING 0.005\n"
        "WHEN eur.close > 2 THEN BUY eur SIZING 0.015\n"
        "WHEN eur.close > 3 THEN SELL eur SIZING 10\n"
        "WHEN eur.close > 4 THEN SELL eur SIZING 2 PCT OF EQUITY",
    )
    plan = plan_routes(strategy(text), reg, strict=False)
    codes = sorted((d.line, d.code) for d in plan.diagnostics)
    assert codes == [
        (5, "volume-below-min"),
        (5, "volume-off-step"),
        (6, "volume-off-step"),
        (7, "volume-above-max"),
    ]
    assert all(d.severity == "warning" for d in plan.diagnostics)
    assert all(d.severity == "error" for d in plan_routes(strategy(text), reg, True).diagnostics)


def test_volume_check_uses_portfolio_param_overrides(write: Writer) -> None:
    reg = registry(
        write, "brokers:\n  exness:\n    instrument_overrides:\n      EURUSD: {min_volume: 0.1}\n"
    )
    text = (
        "STRATEGY s VERSION 1\nSYMBOLS\neur = EXNESS:EURUSD EVERY 1m\nPARAM lots = 0.5\n"
        "RULES\nWHEN eur.close > 1 THEN BUY eur SIZING lots\n"
    )
    assert plan_routes(strategy(text), reg, False).diagnostics == ()
    small = plan_routes(strategy(text), reg, False, params={"lots": Decimal("0.05")})
    assert [d.code for d in small.diagnostics] == ["volume-below-min"]


def test_volume_checks_point_at_the_sizing_value(write: Writer) -> None:
    reg = registry(
        write, "brokers:\n  exness:\n    instrument_overrides:\n      EURUSD: {min_volume: 1}\n"
    )
    text = streams(
        "eur = EXNESS:EURUSD EVERY 1m", rule="WHEN eur.close > 1 THEN BUY eur SIZING 0.5"
    )
    (diag,) = plan_routes(strategy(text), reg, False).diagnostics
    assert (diag.code, diag.line) == ("volume-below-min", 5)
    assert diag.column is not None
    assert text.splitlines()[4][diag.column - 1 :] == "0.5"


def test_an_order_above_the_gateway_limit_is_a_strict_warning(write: Writer) -> None:
    text = streams(
        "eur = EXNESS:EURUSD EVERY 1m",
        rule="WHEN eur.close > 1 THEN BUY eur SIZING 150\n"
        "WHEN eur.close > 2 THEN SELL eur SIZING 100\n"
        "WHEN eur.close > 3 THEN SELL eur SIZING 150 USD",
    )
    plan = plan_routes(strategy(text), registry(write), strict=False)
    (diag,) = plan.diagnostics
    assert (diag.severity, diag.code, diag.strict) == ("warning", "volume-above-gateway-max", True)
    assert (diag.path, diag.line) == (None, 5)
    assert diag.column is not None
    assert text.splitlines()[4][diag.column - 1 :] == "150"
    assert "150" in diag.message and "100-lot" in diag.message and "`eur`" in diag.message
    assert "EURUSDm on `exness`" in diag.message
    assert diag.hint is not None and "instrument_overrides.EURUSD.max_volume" in diag.hint
    (strict,) = plan_routes(strategy(text), registry(write), strict=True).diagnostics
    assert (strict.severity, strict.code) == ("error", "volume-above-gateway-max")


def test_an_override_max_volume_replaces_the_gateway_limit(write: Writer) -> None:
    text = streams(
        "eur = EXNESS:EURUSD EVERY 1m", rule="WHEN eur.close > 1 THEN BUY eur SIZING 150"
    )
    more = "brokers:\n  exness:\n    instrument_overrides:\n      EURUSD: {max_volume: 500}\n"
    assert plan_routes(strategy(text), registry(write, more), False).diagnostics == ()
    less = more.replace("500", "50")
    codes = [d.code for d in plan_routes(strategy(text), registry(write, less), False).diagnostics]
    assert codes == ["volume-above-max"]
    # Overrides without a maximum leave the gateway's limit in force.
    step = more.replace("max_volume: 500", "volume_step: 0.01")
    codes = [d.code for d in plan_routes(strategy(text), registry(write, step), False).diagnostics]
    assert codes == ["volume-above-gateway-max"]


def test_the_gateway_limit_concerns_mt5_routes_only(write: Writer) -> None:
    reg = registry(write, "brokers:\n  bybit:\n    type: bybit\n")
    for label in ("BACKTEST", "BYBIT"):
        text = streams(
            f"x = {label}:EURUSD EVERY 1m", rule="WHEN x.close > 1 THEN BUY x SIZING 150"
        )
        assert plan_routes(strategy(text), reg, False).diagnostics == ()


def test_same_symbol_same_account_from_two_strategies(write: Writer) -> None:
    reg = registry(write)
    a = plan_routes(strategy(SEED), reg, False)
    b = plan_routes(strategy(SEED.replace("momentum", "other")), reg, False)
    diags = check_shared_accounts([("a", a), ("b", b)], allowed=False, path="p.yaml", line=3)
    assert [(d.code, d.severity, d.strict) for d in diags] == [
        ("shared-account-symbol", "warning", True)
    ]
    assert check_shared_accounts([("a", a), ("b", b)], allowed=True) == []
    paper = plan_routes(strategy(SEED.replace("EXNESS", "BACKTEST")), reg, False)
    assert check_shared_accounts([("a", paper), ("b", paper)], allowed=False) == []


def test_strict_precedence_flag_env_portfolio_config() -> None:
    assert resolve_strict(None, {}, False).on is False
    assert resolve_strict(None, {}, True, "config:q.yaml:1").source == "config:q.yaml:1"
    assert resolve_strict(None, {}, False, portfolio_value=True).on is True
    env_off = resolve_strict(None, {"QKT_STRICT_BROKERS": "0"}, True, portfolio_value=True)
    assert (env_off.on, env_off.source) == (False, "env:QKT_STRICT_BROKERS")
    assert resolve_strict(False, {"QKT_STRICT_BROKERS": "1"}, True).on is False
    assert resolve_strict(True, {}, False).source == "--strict-brokers"


def test_root_config_routes_the_seed_accounts(root: Path) -> None:
    reg = BrokerRegistry.from_config(load_config(root / "qkt.config.yaml", env={}))
    text = streams("p = EXNESS-PERSONAL:EURUSD EVERY 1m", "c = EXNESS-CORPORATE:NAS100 EVERY 1m")
    plan = plan_routes(strategy(text), reg, strict=True)
    assert [(r.profile, r.broker_symbol, r.magic, r.target) for r in plan.routes] == [
        ("exness-personal", "EURUSDm", 10005, "http://localhost:5005"),
        ("exness-corporate", "USTECm", 10006, "http://localhost:5006"),
    ]


def test_registry_is_keyed_by_lowercased_label_and_builds_every_type_without_io(
    write: Writer,
) -> None:
    from qkt.brokers.bybit.broker import BybitBroker
    from qkt.engine.bus import EventBus
    from qkt.engine.clock import SimulatedClock
    from qkt.engine.prices import PriceTracker

    reg = registry(write, "brokers:\n  bybit:\n    type: bybit\n")
    assert "EXNESS" in reg and "Exness" in reg and "oanda" not in reg
    assert reg.resolve("EXNESS-personal") is None
    assert reg["ExNeSs"].profile.name == "exness"
    broker = reg["BYBIT"].factory(EventBus(), SimulatedClock(), PriceTracker())
    assert isinstance(broker, BybitBroker) and broker.name == "bybit"
    assert broker.venue is reg.venue("bybit")  # the profile's one connection
    assert broker.client._client is None  # nothing opened before the session starts it
