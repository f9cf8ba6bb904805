"""``qkt run`` against the bundled gateway simulator over HTTP: what a restart recovers is said,
open positions are listed, and money is in the account's currency (the symbol's contract size)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qkt.sim import SimServer, SimState
from tests.cli.conftest import Runner
from tests.conftest import Writer

pytestmark = pytest.mark.anyio

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
    assert summary["final_equity"] == "9999"  # 0.1 lot of 100,000 EUR at 0.0001 below its price


FLIP = """STRATEGY flip VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN POSITION.eur = 0 THEN BUY eur SIZING 0.1
WHEN POSITION.eur > 0 THEN CLOSE eur
"""


async def test_money_is_in_the_account_currency_as_the_venue_counts_it(
    sim: SimServer, tmp_path: Path
) -> None:
    """0.1 lot of EURUSD (contract size 100,000) bought at 1.0850 and sold at 1.0860 made 10 USD:
    the summary says what the venue's deals say."""
    from qkt.brokers.registry import BrokerRegistry
    from qkt.config import load_config
    from qkt.dsl import parse_strategy
    from qkt.engine.events import Bar
    from qkt.feeds.replay import Row
    from qkt.loop import drive
    from qkt.session import LiveSession

    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(f"brokers:\n  exness:\n    gateway_url: {sim.url}\n")
    config = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
    parsed = parse_strategy(FLIP, "flip.qkt")
    assert parsed.strategy is not None
    session = LiveSession(parsed.strategy, BrokerRegistry.from_config(config))
    t0 = datetime(2026, 3, 2, 10, tzinfo=UTC)

    def rows() -> Iterator[Row]:
        for minute, price in enumerate(("1.08500", "1.08600")):
            sim.state.set_quote("EURUSDm", Decimal(price), Decimal(price))  # no spread
            bar = Bar("EURUSD", t0 + timedelta(minutes=minute), 60, 1.085, 1.085, 1.085, 1.085)
            yield Row(None, bar, None, bar.end)

    summary = await drive(session, rows())
    profit = sum(Decimal(str(d["profit"])) for d in sim.state.deals)
    assert profit == Decimal(10)
    assert (summary.trades, summary.realized_pnl, summary.final_equity) == (
        1,
        profit,
        Decimal(10010),
    )
