"""Numbers a strategy computes reach orders and rejections as decimals, never as binary floats:
``0.1 * 3`` is 0.3, and a reason never reads ``0.30000000000000004`` or ``Decimal('...')``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from qkt.sim import SimServer, SimState
from tests.cli.conftest import Runner
from tests.conftest import Writer

FLOATY = re.compile(r"\d\.\d{12,}|Decimal\(")
BARS = "time,open,high,low,close\n2026-03-02T10:00:00Z,1.08513,1.08513,1.08513,1.08513\n"


def strategy(label: str, sizing: str) -> str:
    return (
        f"STRATEGY s VERSION 1\nSYMBOLS\neur = {label}:EURUSD EVERY 1m\nRULES\n"
        f"WHEN eur.close > 1 THEN BUY eur SIZING {sizing}\n"
    )


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_a_paper_rejection_shows_the_size_as_a_decimal(qkt: Runner, write: Writer) -> None:
    write("s.qkt", strategy("BACKTEST", "eur.close * 0.1 - 0.4"))
    write("bars.csv", BARS)
    result = qkt("run", "s.qkt", "--replay", "bars.csv", "--json")
    assert result.code == 0, result.err
    (rejected,) = [e for e in events(result.out) if e["event"] == "rejected"]
    assert "-0.291487" in rejected["reason"]
    assert not FLOATY.search(rejected["reason"]), rejected["reason"]


@pytest.fixture
def sim() -> Iterator[SimServer]:
    state = SimState(symbols=("EURUSDm",))
    state.set_quote("EURUSDm", Decimal("1.08500"), Decimal("1.08510"))
    with SimServer(state) as server:
        yield server


def test_computed_sizes_reach_the_venue_as_decimals(
    qkt: Runner, write: Writer, sim: SimServer
) -> None:
    write("qkt.config.yaml", f"brokers:\n  exness:\n    gateway_url: {sim.url}\n")
    write("bars.csv", BARS)
    write("three.qkt", strategy("EXNESS", "0.1 * 3"))
    three = qkt("run", "three.qkt", "--replay", "bars.csv", "--json")
    assert three.code == 0, three.err
    kinds = [(e["event"], e.get("qty")) for e in events(three.out)]
    assert kinds == [("order", "0.3"), ("fill", "0.3"), ("summary", None)]  # 0.3 is on step
    assert Decimal(str(sim.state.received[0]["body"]["volume"])) == Decimal("0.3")

    write("odd.qkt", strategy("EXNESS", "eur.close * 0.3"))
    odd = qkt("run", "odd.qkt", "--replay", "bars.csv", "--json")
    (rejected,) = [e for e in events(odd.out) if e["event"] == "rejected"]
    assert "volume 0.325539 is not a multiple of the volume step 0.01" in rejected["reason"]
    assert not FLOATY.search(rejected["reason"]), rejected["reason"]
