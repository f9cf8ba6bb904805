"""``qkt deploy`` and the deployments' lives as real processes (SPEC §5.4, §5.5, §6.1): the
simulator in its own process as the venue, ``qkt daemon`` on a temporary state dir, the real
socket and the real SQLite file. None of it may leak the gateway's api_key."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.lab import ONCE, Lab, Sim, wait

pytestmark = pytest.mark.slow

MARKETS = str(ROOT / "examples" / "data" / "markets-1m.csv")
EURUSD = str(ROOT / "examples" / "data" / "eurusd-1m.csv")
PAPER_ONCE = """STRATEGY paper_once VERSION 1
SYMBOLS
x = BACKTEST:EURUSD EVERY 1m
RULES
WHEN POSITION.x = 0 THEN BUY x SIZING 1; LOG "paper buy"
"""
BAD = """STRATEGY bad VERSION 1
SYMBOLS
eur = EXNESS-BAD:EURUSD EVERY 1s
RULES
WHEN POSITION.eur = 0 THEN BUY eur SIZING 0.1
"""
BAD_PROFILE = """  exness-bad:
    extends: exness
    magic: 10002
    expected_account_login: 1
"""


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    made = Sim(tmp_path)
    yield made
    made.stop()


@pytest.fixture
def lab(sim: Sim) -> Iterator[Lab]:
    made = Lab(sim, brokers=BAD_PROFILE)
    yield made
    leaks = made.secret_found()
    made.close()
    assert not leaks, f"the api_key is in {leaks}"


def examples(lab: Lab) -> None:
    for name in ("momentum.qkt", "btc_trend.qkt", "gold_breakout.qkt", "portfolio.yaml"):
        shutil.copy(ROOT / "examples" / name, lab.base / name)


def holds(lab: Lab, qty: str) -> bool:
    return lab.sim.volume() == Decimal(qty)


def test_a_portfolio_deploys_with_its_routes_and_its_orders_reach_the_venue(lab: Lab) -> None:
    examples(lab)
    lab.start()
    planned = lab.json("deploy", "portfolio.yaml", "--dry-run")
    assert planned["schema"] == "qkt.deploy/1" and planned["ok"] and planned["dry_run"]
    assert [d["name"] for d in planned["deployments"]] == [
        "demo-book/eur-momentum",
        "demo-book/btc-trend",
        "demo-book/gold_breakout",
    ]
    codes = {d["code"] for d in planned["diagnostics"]}
    assert "no-quotes" in codes  # BACKTEST legs under venue market data receive no bars
    assert lab.sim.orders() == [] and lab.json("list")["deployments"] == []

    result = lab.qkt("deploy", "portfolio.yaml", "--replay", MARKETS, "--speed", "max")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "demo-book/eur-momentum: running" in out
    assert "EXNESS:EURUSD" in out and "EURUSDm" in out and "exness" in out
    assert "BACKTEST:BTCUSDT" in out and "paper" in out
    assert "EXNESS:XAUUSD" in out and "XAUUSDm" in out

    def finished() -> bool:
        states = {d["state"] for d in lab.json("list")["deployments"]}
        return states == {"finished"}

    wait(finished, 60, "the replays to finish")
    orders = lab.sim.orders()
    ids = [o["body"]["client_order_id"] for o in orders]
    assert orders and len(ids) == len(set(ids))
    assert {i.rsplit("-", 2)[0] for i in ids} <= {
        "demo-book/eur-momentum",
        "demo-book/gold_breakout",
    }
    assert all(len(o["body"]["comment"]) == 16 for o in orders)
    status = lab.json("status", "demo-book")
    assert status["schema"] == "qkt.status/1"
    momentum = next(d for d in status["deployments"] if d["name"] == "demo-book/eur-momentum")
    assert momentum["fills"] and momentum["orders"] == []
    assert {f["client_id"] for f in momentum["fills"]} <= set(ids)
    assert momentum["reason"].startswith("replay ended")
    log = lab.log("demo-book/eur-momentum")
    assert " demo-book/eur-momentum order " in log and " demo-book/eur-momentum fill " in log


def test_a_deploy_refused_at_the_daemon_starts_nothing_and_leaves_no_record(lab: Lab) -> None:
    """The second child's gateway is logged in to another account than it expects: the first
    child, already started, is stopped again; nothing was sent, no record and no log remain."""
    lab.write("once.qkt", ONCE)
    lab.write("bad.qkt", BAD)
    lab.write(
        "book.yaml",
        "name: book\nstrategies:\n  - file: once.qkt\n    as: good\n  - file: bad.qkt\n",
    )
    lab.start()
    result = lab.qkt("deploy", "book.yaml")
    assert result.returncode == 1
    assert "expected" in result.stderr and "12345678" in result.stderr
    assert "deploy refused" in result.stderr
    assert lab.json("list")["deployments"] == []
    assert not (lab.state / "logs" / "book").exists()
    time.sleep(1.5)
    assert lab.sim.orders() == []
    refused = lab.json("deploy", "book.yaml")
    assert refused["ok"] is False and refused["schema"] == "qkt.deploy/1"
    # The good child alone is not held by anything.
    assert lab.qkt("deploy", "once.qkt", "--as", "good").returncode == 0
    wait(lambda: holds(lab, "0.1"), 20, "the good child's order")


def test_a_name_in_use_is_refused_and_a_stopped_one_is_replaced(lab: Lab) -> None:
    lab.write("once.qkt", ONCE)
    lab.start()
    assert lab.qkt("deploy", "once.qkt").returncode == 0
    wait(lambda: holds(lab, "0.1"), 20, "the first order")
    again = lab.qkt("deploy", "once.qkt")
    assert again.returncode == 1
    assert "name-in-use" in again.stderr and "once` is running" in again.stderr
    assert len(lab.sim.orders()) == 1
    assert lab.json("deploy", "once.qkt", "--dry-run")["ok"] is False
    assert [b["state"] for b in lab.status("once")["brokers"]] == ["up"]  # untouched by both
    stopped = lab.json("stop", "once")
    assert stopped["deployments"][0]["state"] == "stopped"
    assert lab.qkt("stop", "once").returncode == 0  # stopping a stopped one: not an error
    assert lab.qkt("deploy", "once.qkt").returncode == 0
    assert lab.state_of("once") == "running"
    # The venue holds its earlier position (recovered by its tag): it does not buy again.
    time.sleep(2.5)
    assert len(lab.sim.orders()) == 1 and holds(lab, "0.1")
    assert lab.status("once")["fills"]  # its history stays


def test_one_deployments_failure_leaves_another_trading(lab: Lab) -> None:
    lab.write("once.qkt", ONCE)
    lab.write("drift.qkt", PAPER_ONCE)
    lab.start()
    assert lab.qkt("deploy", "drift.qkt", "--replay", EURUSD, "--speed", "3000").returncode == 0
    assert lab.qkt("deploy", "once.qkt").returncode == 0
    wait(lambda: holds(lab, "0.1"), 20, "once's order")
    replay = lab.state / "replays" / "paper_once.csv"
    size = replay.stat().st_size
    with replay.open("r+") as handle:  # the rows change under the running replay
        handle.write(("x,y\n" * (size // 4 + 1))[:size])
    wait(lambda: lab.state_of("paper_once") == "failed", 30, "the replay to fail")
    failed = lab.status("paper_once")
    assert "changed since the file was checked" in failed["reason"]
    assert lab.state_of("once") == "running"
    lab.sim.close_all()  # once is flat again: it buys again, so it still trades
    wait(lambda: len(lab.sim.orders()) == 2 and holds(lab, "0.1"), 20, "once's second order")
    log = lab.log("paper_once")
    assert " ERROR   paper_once failed: " in log


def test_a_gateway_down_and_back_leaves_the_session_running(lab: Lab) -> None:
    lab.write("once.qkt", ONCE)
    lab.start()
    assert lab.qkt("deploy", "once.qkt").returncode == 0
    wait(lambda: holds(lab, "0.1"), 20, "the order")
    lab.sim.pause()
    try:
        down = wait(
            lambda: [b for b in lab.status("once")["brokers"] if b["state"] == "down"],
            30,
            "the broker to be down",
        )
        assert down[0]["profile"] == "exness" and down[0]["since"] and down[0]["reason"]
        assert lab.state_of("once") == "running"
        daemon = lab.json("daemon", "status")
        assert daemon["brokers"][0]["state"] == "down"
        text = lab.qkt("status", "once").stdout
        assert "broker exness" in text and "down since" in text
    finally:
        lab.sim.resume()
    wait(lambda: lab.status("once")["brokers"][0]["state"] == "up", 30, "the broker to be up")
    log = lab.log("once")
    assert "cannot be read" in log and "can be read again" in log
    lab.sim.close_all()
    wait(lambda: len(lab.sim.orders()) == 2 and holds(lab, "0.1"), 20, "an order after it")


def test_stop_flatten_closes_the_position_and_waits_for_the_fill(lab: Lab) -> None:
    lab.write("once.qkt", ONCE)
    lab.start()
    assert lab.qkt("deploy", "once.qkt").returncode == 0
    wait(lambda: holds(lab, "0.1"), 20, "the order")
    stopped = lab.json("stop", "once", "--flatten")
    (once,) = stopped["deployments"]
    assert once["state"] == "stopped" and "flattened" in once["reason"]
    assert lab.sim.volume() == 0
    orders = lab.sim.orders()
    assert [o["body"]["type"] for o in orders] == ["BUY", "SELL"]
    status = lab.status("once")
    assert [f["side"] for f in status["fills"]] == ["buy", "sell"]
    assert status["positions"] == [] or all(p["qty"] == "0" for p in status["positions"])
    assert lab.qkt("stop", "once", "--flatten").returncode == 0
    assert lab.sigterm() == 0
    lab.start()
    assert lab.state_of("once") == "stopped"  # not restored
    time.sleep(1.5)
    assert len(lab.sim.orders()) == 2


def test_a_restart_restores_what_ran_and_stops_an_interrupted_replay(lab: Lab) -> None:
    lab.write("once.qkt", ONCE)
    lab.write("paper.qkt", PAPER_ONCE)
    shutil.copy(ROOT / "examples" / "momentum.qkt", lab.base / "momentum.qkt")
    lab.start()
    assert lab.qkt("deploy", "once.qkt").returncode == 0
    assert lab.qkt("deploy", "paper.qkt", "--replay", EURUSD, "--speed", "60").returncode == 0
    assert lab.qkt("deploy", "momentum.qkt", "--as", "mom").returncode == 0
    wait(lambda: holds(lab, "0.1"), 20, "once's order")
    wait(lambda: lab.status("paper_once")["fills"], 20, "the paper fill")
    assert "INFO    paper_once log       info: paper buy" in lab.log("paper_once")
    assert lab.sigterm() == 0
    lab.start()
    assert lab.state_of("once") == "running" and lab.state_of("mom") == "running"
    # Restored with its indicators warm from the simulator's bar history, and status says so.
    wait(lambda: (lab.status("mom")["warmup"] or "").startswith("warm:"), 30, "mom's warm-up")
    paper = lab.status("paper_once")
    assert paper["state"] == "stopped"
    assert paper["reason"] == "interrupted replay is not replayed (paper fills would repeat)"
    assert [p["qty"] for p in paper["positions"]] == ["1"]
    wait(lambda: "restored: trading resumes" in lab.log("once"), 20, "the restore")
    log = lab.log("once")
    assert "recovered BUY  0.1 EXNESS:EURUSD" in log
    lab.kill9()
    lab.start()
    wait(lambda: lab.log("once").count("restored: trading resumes") == 2, 20, "the restore")
    once = lab.status("once")
    assert [(p["label"], p["symbol"], p["qty"]) for p in once["positions"]] == [
        ("EXNESS", "EURUSD", "0.1")
    ]
    time.sleep(2)
    assert len(lab.sim.orders()) == 1 and holds(lab, "0.1")
    # Closed by hand while the daemon is down: the venue's word is taken, and said.
    assert lab.sigterm() == 0
    lab.sim.close_all()
    lab.start()
    note = wait(lambda: lab.status("once")["notes"], 20, "the difference to be reported")
    assert "journal and venue differ on EXNESS:EURUSD" in note[0]
    wait(lambda: len(lab.sim.orders()) == 2 and holds(lab, "0.1"), 20, "a new order")


def test_sigterm_waits_for_the_answer_of_an_order_in_flight(lab: Lab) -> None:
    lab.write("once.qkt", ONCE)
    lab.sim.faults(answer_after_ms=800)  # placed at once, answered 0.8 s later
    lab.start()
    assert lab.qkt("deploy", "once.qkt").returncode == 0
    wait(lambda: lab.sim.orders(), 20, "the order to reach the gateway", every=0.02)
    assert lab.sigterm() == 0
    out = lab.daemon_output()
    assert out.index("SIGTERM: stopping") < out.index(" once fill ")
    lab.start()
    status = lab.status("once")
    assert status["orders"] == [] and len(status["fills"]) == 1
    time.sleep(2)
    assert len(lab.sim.orders()) == 1 and holds(lab, "0.1")


def test_without_a_daemon_deploy_refuses_and_a_dry_run_plans_locally(lab: Lab) -> None:
    examples(lab)
    refused = lab.qkt("deploy", "portfolio.yaml")
    assert refused.returncode == 1
    assert "no daemon answers" in refused.stderr
    assert "start one with: qkt daemon --detach" in refused.stderr
    assert "Traceback" not in refused.stderr
    local = lab.qkt("deploy", "portfolio.yaml", "--dry-run")
    assert local.returncode == 0, local.stderr
    assert "no daemon: local plan" in local.stderr
    assert "demo-book/eur-momentum: planned" in local.stdout and "EURUSDm" in local.stdout
    planned = lab.json("deploy", "portfolio.yaml", "--dry-run")
    assert planned["schema"] == "qkt.deploy/1" and planned["dry_run"] and planned["local"]
    assert len(planned["deployments"]) == 3


def test_local_checks_fail_before_anything_is_sent(lab: Lab) -> None:
    lab.write("typo.qkt", ONCE.replace("POSITION.eur", "POSITION.eru"))
    lab.write("once.qkt", ONCE)
    lab.start()
    failed = lab.qkt("deploy", "typo.qkt")
    assert failed.returncode == 1
    assert "typo.qkt:5:" in failed.stderr and "nothing sent" in failed.stderr
    bad_param = lab.json("deploy", "once.qkt", "--param", "lots=1")
    assert bad_param["ok"] is False
    assert [d["code"] for d in bad_param["diagnostics"]] == ["unknown-param"]
    assert lab.json("list")["deployments"] == [] and lab.sim.orders() == []
    usage = lab.qkt("deploy", "once.qkt", "--as", "Not A Name")
    assert usage.returncode == 2
