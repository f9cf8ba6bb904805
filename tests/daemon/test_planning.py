"""What the daemon decides before a deploy starts anything: strictness by precedence, params
through the one parameter check, netting conflicts across portfolios, streams without quotes,
and the profile fields the client and the daemon resolve differently — never a secret."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from qkt.brokers.registry import BrokerRegistry
from qkt.config import ResolvedConfig, load_config
from qkt.daemon import paperstate
from qkt.daemon.models import ChildIn, DeployIn
from qkt.daemon.planning import (
    Planned,
    Running,
    netting_conflicts,
    no_quotes,
    plan_child,
    profile_differences,
    profile_fields,
    strictness,
)
from qkt.session import LiveSession

SECRET = "s3cr3t-token-9f8e"
SOURCE = """STRATEGY mix VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
btc = BACKTEST:BTCUSDT EVERY 1m
PARAM lots = 0.1
RULES
WHEN eur.close > 0 THEN BUY eur SIZING lots
WHEN btc.close > 0 AND POSITION.btc = 0 THEN BUY btc SIZING 1
"""


def config(tmp_path: Path, text: str = "") -> ResolvedConfig:
    path = tmp_path / "qkt.config.yaml"
    path.write_text(
        "brokers:\n  exness:\n    gateway_url: http://127.0.0.1:9\n    api_key: ${KEY}\n" + text
    )
    return load_config(path, env={"QKT_NO_CACHE": "1", "KEY": SECRET}, cwd=tmp_path)


def plan(
    cfg: ResolvedConfig, child: ChildIn, flag: bool | None = None, daemon: bool = False
) -> Planned:
    registry = BrokerRegistry.from_config(cfg)

    def make(strategy: Any, params: Any, strict: bool) -> LiveSession:
        return LiveSession(strategy, registry, strict=strict, params=params, name=child.name)

    return plan_child(child, DeployIn(children=[child], strict=flag), daemon, cfg, make)


def child(name: str = "mix", source: str = SOURCE, **extra: Any) -> ChildIn:
    return ChildIn(name=name, file="mix.qkt", source=source, **extra)


def test_strictness_the_daemon_then_the_deploy_then_the_portfolio_then_the_config() -> None:
    assert strictness(True, False, False, False) is True
    assert strictness(False, False, True, True) is False
    assert strictness(False, None, True, False) is True
    assert strictness(False, None, None, True) is True
    assert strictness(False, None, None, False) is False


def test_params_go_through_the_one_check(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    good = plan(cfg, child(params={"lots": 0.2}))
    assert good.ok and good.overrides == {"lots": Decimal("0.2")}
    bad = plan(cfg, child(params={"lot": 0.2}))
    assert not bad.ok and [d.code for d in bad.diagnostics if d.is_error] == ["unknown-param"]
    wrong = plan(cfg, child(params={"lots": "many"}))
    assert [d.code for d in wrong.diagnostics if d.is_error] == ["param-type"]


def test_a_label_without_a_profile_is_refused_only_in_strict_mode(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    unknown = child(source=SOURCE.replace("EXNESS:", "NOWHERE:"))
    assert plan(cfg, unknown).ok
    refused = plan(cfg, unknown, flag=True)
    assert not refused.ok and refused.session is None
    assert plan(cfg, unknown, daemon=True, flag=False).strict  # the daemon's flag wins


def test_a_bad_name_is_refused(tmp_path: Path) -> None:
    found = plan(config(tmp_path), child(name="Bad Name"))
    assert [d.code for d in found.diagnostics] == ["bad-name"]


def test_netting_conflicts_are_across_portfolios_and_errors_when_strict(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    mine = plan(cfg, child(name="a/mix", portfolio="a"))
    other = Running("b/eur", "b", tuple(r for r in mine.routes if r.type == "mt5"))
    same = Running("a/eur", "a", other.routes)
    found = netting_conflicts(mine, [other, same], lambda profile: False)
    assert [(d.code, d.severity) for d in found] == [("shared-netting-account", "warning")]
    assert "`b/eur`" in found[0].message and "EURUSDm" in found[0].message
    assert netting_conflicts(mine, [other], lambda profile: True) == []  # a hedging account
    strict = plan(cfg, child(name="a/mix", portfolio="a"), flag=True)
    assert [d.severity for d in netting_conflicts(strict, [other], lambda p: False)] == ["error"]


def test_a_paper_stream_under_venue_quotes_gets_no_quotes(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    found = no_quotes(plan(cfg, child()), cfg)
    assert [(d.code, d.severity) for d in found] == [("no-quotes", "warning")]
    assert "stream `btc`" in found[0].message
    strict = no_quotes(plan(cfg, child(), flag=True), cfg)
    assert [d.severity for d in strict] == ["error"]


def test_profile_fields_carry_no_secret_and_differences_name_the_fields(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    mine = profile_fields(cfg.profiles["exness"])
    assert SECRET not in json.dumps(mine) and mine["api_key"] == "***"
    assert profile_differences({"exness": mine}, ["exness"], cfg) == {}
    theirs = {**mine, "gateway_url": "http://10.0.0.5:5001", "magic": 7}
    assert profile_differences({"exness": theirs}, ["exness"], cfg) == {
        "exness": ["gateway_url", "magic"]
    }
    missing = profile_differences({"lab": mine}, ["lab"], cfg)
    assert list(missing) == ["lab"]


def test_paper_state_round_trips_through_the_journal_records(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    first = plan(cfg, child()).session
    from datetime import UTC, datetime

    from qkt.engine.events import Bar
    from qkt.feeds.replay import Row

    bar = Bar("BTCUSDT", datetime(2026, 3, 2, tzinfo=UTC), 60, 100.0, 101.0, 99.0, 100.5)
    first.on_row(Row("BTCUSDT", bar, None, bar.end))
    saved = paperstate.snapshot(first)
    second = plan(cfg, child()).session
    expected = paperstate.restore(second, saved)
    assert expected == {}
    again = second.positions.get("BACKTEST", "BTCUSDT")
    assert again.qty == Decimal(1) and again.avg_price == Decimal("100.5")
    assert second._account_value("balance") == first._account_value("balance")
    assert paperstate.snapshot(second) == saved
