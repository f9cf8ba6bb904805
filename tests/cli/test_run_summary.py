"""What ``qkt run`` tells the user (SPEC §5.6): open positions, WARMUP, decimals, replay speed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cli.conftest import Runner
from tests.conftest import Writer

HOLD = """STRATEGY hold VERSION 1
SYMBOLS
eur = BACKTEST:EURUSD EVERY 1m
gold = PAPER:XAUUSD EVERY 1m
RULES
WHEN POSITION.eur = 0 THEN BUY eur SIZING 0.3; SELL gold SIZING 2
"""


def bars(write: Writer, closes: list[str], name: str = "bars.csv") -> str:
    lines = ["time,open,high,low,close"] + [
        f"2026-03-02T10:{i:02d}:00Z,{c},{c},{c},{c}" for i, c in enumerate(closes)
    ]
    return str(write(name, "\n".join(lines) + "\n"))


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_the_summary_lists_open_positions(qkt: Runner, write: Writer) -> None:
    path = write("hold.qkt", HOLD)
    csv = bars(write, ["1.085", "1.086", "1.087"])
    result = qkt("run", str(path), "--replay", csv, "--json")
    assert result.code == 0, result.err
    summary = events(result.out)[-1]
    assert summary["open_positions"] == [
        {"label": "BACKTEST", "symbol": "EURUSD", "qty": "0.3", "avg_price": "1.085"},
        {"label": "PAPER", "symbol": "XAUUSD", "qty": "-2", "avg_price": "1.085"},
    ]
    text = qkt("run", str(path), "--replay", csv)
    lines = text.out.splitlines()
    assert lines[-3:-1] == [
        "open      BACKTEST:EURUSD long 0.3 @ 1.085",
        "open      PAPER:XAUUSD short 2 @ 1.085",
    ]
    assert lines[-1].startswith("summary: ")


def test_a_flat_run_has_no_open_positions(qkt: Runner, write: Writer) -> None:
    path = write(
        "flip.qkt",
        "STRATEGY flip VERSION 1\nSYMBOLS\neur = BACKTEST:EURUSD EVERY 1m\nRULES\n"
        "WHEN POSITION.eur = 0 THEN BUY eur SIZING 1\nWHEN POSITION.eur > 0 THEN CLOSE eur\n",
    )
    result = qkt("run", str(path), "--replay", bars(write, ["1.1", "1.2"]), "--json")
    assert result.code == 0, result.err
    summary = events(result.out)[-1]
    assert summary["open_positions"] == [] and summary["trades"] == 1
    assert summary["realized_pnl"] == "0.1"


WARM = """STRATEGY warm VERSION 1
SYMBOLS
eur = BACKTEST:EURUSD EVERY 1m WARMUP 3 BARS
RULES
WHEN eur.close > 1 THEN BUY eur SIZING 1
WHEN eur.close < 1 THEN CLOSE eur
"""


def test_warmup_holds_the_stream_s_rules_until_its_bars_have_closed(
    qkt: Runner, write: Writer
) -> None:
    """Three bars are history: the rule sees them (its condition's edge is remembered) but acts
    only from the fourth bar on, so a condition already true does not fire until it turns
    true again."""
    path = write("warm.qkt", WARM)
    first = qkt("run", str(path), "--replay", bars(write, ["1.1", "1.2", "1.3", "1.4"]), "--json")
    assert first.code == 0, first.err
    assert [e["event"] for e in events(first.out)] == ["summary"]
    closes = ["0.9", "0.9", "0.9", "1.1", "0.9", "1.2"]
    later = qkt("run", str(path), "--replay", bars(write, closes, "b.csv"), "--json")
    fills = [e for e in events(later.out) if e["event"] == "fill"]
    assert [(f["time"], f["side"], f["price"]) for f in fills] == [
        ("2026-03-02T10:04:00Z", "buy", "1.1"),
        ("2026-03-02T10:05:00Z", "sell", "0.9"),
        ("2026-03-02T10:06:00Z", "buy", "1.2"),
    ]


class FakeTime:
    """A clock the replay sleeps on without waiting: it records each wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 3))
        self.now += seconds


def test_a_replay_from_the_config_runs_at_its_speed(
    qkt: Runner, write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``market_data.replay.speed`` is honoured; ``--speed`` wins over it."""
    path = write("hold.qkt", HOLD)
    bars(write, ["1.085"] * 3)
    write(
        "qkt.config.yaml",
        "market_data:\n  source: replay\n  replay: {path: bars.csv, speed: 2}\n",
    )
    clock = FakeTime()
    monkeypatch.setattr("qkt.feeds.replay._time", clock)
    assert qkt("run", str(path)).code == 0
    assert clock.waits == [30.0, 30.0]  # one-minute bars at twice real time
    clock.waits.clear()
    assert qkt("run", str(path), "--speed", "60").code == 0
    assert clock.waits == [1.0, 1.0]
    clock.waits.clear()
    assert qkt("run", str(path), "--speed", "max").code == 0
    assert clock.waits == []


FLIP = """STRATEGY flip VERSION 1
SYMBOLS
eur = SIM:EURUSD EVERY 1m
gold = SIM:XAUUSD EVERY 1m
RULES
WHEN POSITION.eur = 0 THEN BUY eur SIZING 0.1; BUY gold SIZING 1
WHEN POSITION.eur > 0 THEN CLOSE_ALL
"""


def test_a_paper_profile_counts_money_with_its_contract_sizes(qkt: Runner, write: Writer) -> None:
    """0.1 lot of EURUSD at 100,000 a lot moving 0.0010 is 10; XAUUSD has no contract size
    given: 1 ounce moving 0.0010 is 0.001."""
    write(
        "qkt.config.yaml",
        "brokers:\n  sim:\n    type: paper\n    commission_bps: 1\n"
        "    contract_sizes: {EURUSD: 100000}\n",
    )
    path = write("flip.qkt", FLIP)
    result = qkt("run", str(path), "--replay", bars(write, ["1.085", "1.086"]), "--json")
    assert result.code == 0, result.err
    summary = events(result.out)[-1]
    # commission: 1 bp of each fill's notional (10,850 and 10,860 USD of EURUSD, 1.085 and
    # 1.086 of XAUUSD)
    assert summary["commission"] == "2.1712171"
    assert summary["realized_pnl"] == "10.001"
    assert summary["final_equity"] == "10007.8297829"
    env = {"QKT_BROKER_SIM_CONTRACT_SIZES": '{"EURUSD": 100000, "XAUUSD": 100}'}
    via_env = qkt("run", str(path), "--replay", bars(write, ["1.085", "1.086"]), "--json", env=env)
    assert events(via_env.out)[-1]["realized_pnl"] == "10.1"
