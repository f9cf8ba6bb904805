"""``qkt run`` against the bundled gateway simulator over HTTP: what a restart recovers is said,
open positions are listed, and money is in the account's currency (the symbol's contract size)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from qkt.sim import SimServer, SimState
from tests.cli.conftest import Runner
from tests.conftest import Writer

BUY_ONCE = """STRATEGY once VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN POSITION.eur = 0 THEN BUY eur SIZING 0.1
"""


@pytest.fixture
def sim() -> Iterator[SimServer]:
    state = SimState(symbols=("EURUSDm",))
    state.set_quote("EURUSDm", Decimal("1.08500"), Decimal("1.08510"))
    with SimServer(state) as server:
        yield server


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_a_restart_announces_the_positions_it_recovers(
    qkt: Runner, write: Writer, sim: SimServer
) -> None:
    write("qkt.config.yaml", f"brokers:\n  exness:\n    gateway_url: {sim.url}\n")
    write("once.qkt", BUY_ONCE)
    write("bars.csv", "time,open,high,low,close\n2026-03-02T10:00:00Z,1.085,1.085,1.085,1.085\n")
    first = qkt("run", "once.qkt", "--replay", "bars.csv", "--json")
    assert first.code == 0, first.err
    assert [e["event"] for e in events(first.out)] == ["order", "fill", "summary"]
    opened = {"label": "EXNESS", "symbol": "EURUSD", "qty": "0.1", "avg_price": "1.0851"}
    assert events(first.out)[-1]["open_positions"] == [opened]

    again = qkt("run", "once.qkt", "--replay", "bars.csv", "--json")
    assert again.code == 0, again.err
    recovered, summary = events(again.out)  # the position is there: nothing is bought again
    assert recovered == {
        "event": "recovered",
        "time": recovered["time"],
        "strategy": "once",
        "label": "EXNESS",
        "symbol": "EURUSD",
        "side": "buy",
        "qty": "0.1",
        "price": "1.0851",
        "route": "exness",
    }
    assert summary["open_positions"] == [opened]
    text = qkt("run", "once.qkt", "--replay", "bars.csv")
    (line,) = [x for x in text.out.splitlines() if " recovered " in x]
    assert line.endswith("recovered BUY  0.1 EXNESS:EURUSD @ 1.0851 <- exness")
