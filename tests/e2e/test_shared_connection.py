"""Deployments on one profile share its venue connection, through the real daemon: the simulator (a
process of its own) counts what the daemon asks of it, and that does not grow with the number of
deployments (SPEC §6.1, §9)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.lab import ONCE, Lab, Sim, wait

pytestmark = pytest.mark.slow

WATCH = """STRATEGY watch VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1s
RULES
WHEN ema(eur, 3) < 0 THEN BUY eur SIZING 0.1
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    sim = Sim(tmp_path)
    made = Lab(sim)
    yield made
    made.close()
    sim.stop()


def portfolio(lab: Lab, children: int) -> Path:
    lab.write("watch.qkt", WATCH)
    lab.write("once.qkt", ONCE)
    entries = "".join(f"  - file: watch.qkt\n    as: w{i}\n" for i in range(children - 1))
    return lab.write(
        "book.yaml",
        "name: book\nallow_shared_symbols: true\nstrategies:\n"
        f"{entries}  - file: once.qkt\n    as: buyer\n",
    )


def window(lab: Lab, seconds: float) -> dict[str, int]:
    lab.sim.http.post("/_sim/requests/reset")
    time.sleep(seconds)
    counts: dict[str, Any] = lab.sim.get("/_sim/requests")["counts"]
    return {k: int(v) for k, v in counts.items()}


def test_eight_deployments_cost_the_gateway_what_one_does(lab: Lab) -> None:
    lab.start()
    result = lab.qkt("deploy", str(portfolio(lab, 8)))
    assert result.returncode == 0, result.stderr
    wait(lambda: lab.sim.volume() > 0, 30, "the buyer's order at the venue")
    wait(
        lambda: all(d["state"] == "running" for d in lab.json("list")["deployments"]),
        30,
        "8 running",
    )
    seen = window(lab, 2.0)
    # one poller each, at 100 ms (positions) and 50 ms (quotes): about 20 and 40 in 2 s for the
    # whole profile; eight connections would make about 160 and 320
    assert 10 <= seen.get("GET /get_positions", 0) <= 30, seen
    assert 20 <= seen.get("GET /symbol_info_tick/{symbol}", 0) <= 60, seen
    assert seen.get("POST /order", 0) == 0  # the buyer holds its 0.1: nothing more is sent
    buyer = lab.status("book/buyer")
    assert [p["qty"] for p in buyer["positions"] if p["qty"] not in ("0", 0)] == ["0.1"]
    for i in range(7):  # the venue's position is the buyer's, not the watchers'
        watcher = lab.status(f"book/w{i}")
        assert all(p["qty"] in ("0", 0) for p in watcher["positions"]), watcher["positions"]


def test_a_stopped_deployment_leaves_the_others_polling(lab: Lab) -> None:
    lab.start()
    assert lab.qkt("deploy", str(portfolio(lab, 3))).returncode == 0
    wait(lambda: lab.sim.volume() > 0, 30, "the buyer's order at the venue")
    assert lab.qkt("stop", "book/w0").returncode == 0
    assert lab.qkt("stop", "book/w1").returncode == 0
    seen = window(lab, 1.5)
    assert seen.get("GET /get_positions", 0) >= 8, seen  # the buyer still polls, every 100 ms
    assert lab.state_of("book/buyer") == "running"
    lab.sim.close_all()  # by hand: the buyer hears of it and buys again
    wait(lambda: lab.sim.volume() > 0 and len(lab.sim.orders()) == 2, 30, "the buyer buying again")
