"""One Bybit connection per profile, shared by every session on it (SPEC §6.1), against the bundled
simulator: one executions read per poll whatever the number of sessions, a venue TP/SL delivered
only to the session holding the position, one quote poller per symbol, warm-up from klines, paper
trading on Bybit's public tickers, the base URL and the clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest

from qkt.brokers.bybit.client import MAINNET_URL, TESTNET_URL
from qkt.brokers.registry import BrokerRegistry
from qkt.config import load_config
from qkt.dsl import parse_strategy
from qkt.engine.clock import WallClock
from qkt.engine.events import VenueNotice
from qkt.feeds.replay import Row
from qkt.feeds.venue import VenueQuotes
from qkt.feeds.warmup import warm_up
from qkt.loop import drive
from qkt.session import LiveSession
from qkt.sim.bybit import BybitSimServer
from tests.brokers.bybit.test_broker import (
    ASK,
    BID,
    Seat,
    bodies,
    counts,
    faults,
    new_state,
    position,
    registry,
    reset_counts,
)
from tests.conftest import send

pytestmark = pytest.mark.anyio
FAST = "    poll_interval_ms: 100\n    tick_poll_interval_ms: 100\n"


@pytest.fixture
def sim() -> Iterator[BybitSimServer]:
    with BybitSimServer(new_state()) as server:
        yield server


async def started(reg: BrokerRegistry, *sessions: str) -> list[Seat]:
    seats = [Seat(reg, name) for name in sessions]
    await asyncio.gather(*(s.start() for s in seats))
    return seats


# ---------------------------------------------------------------- one connection, many sessions
@pytest.mark.parametrize("sessions", [2, 12])
async def test_sessions_on_one_profile_cost_bybit_one_guard_and_one_executions_read_per_poll(
    sim: BybitSimServer, tmp_path: Path, sessions: int
) -> None:
    reg = registry(sim.url, tmp_path)
    reset_counts(sim)
    seats = await started(reg, *(f"s{n}" for n in range(sessions)))
    start = counts(sim)
    assert start.get("GET /v5/user/query-api") == 1
    assert start.get("GET /v5/account/wallet-balance") == 1
    assert len({id(s.broker.venue) for s in seats}) == 1
    reset_counts(sim)
    for _ in range(3):  # every session polls at the same moment, as the loop's grid makes them
        await asyncio.gather(*(s.broker.poll() for s in seats))
    assert counts(sim) == {"GET /v5/execution/list": 3}
    for seat in seats:
        await seat.broker.aclose()
    assert seats[0].broker.client._client is None  # the last one closed the connection


async def test_a_venue_take_profit_reaches_the_session_holding_the_position_and_no_other(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    owner, other = await started(registry(sim.url, tmp_path), "owner", "other")
    await send(owner.broker, owner.order(1, take_profit=Decimal("88000")))
    await send(other.broker, other.order(1, qty="0.10", symbol="ETHUSDT"))
    sim.state.set_quote("BTCUSDT", Decimal("88100.0"), Decimal("88100.5"))  # through the TP
    exits = [r for _, r in sim.state.ledger.executions if r["createType"] == "CreateByTakeProfit"]
    (row,) = exits
    assert row["orderLinkId"] == ""  # Bybit's own order: no link names a session
    polled = await asyncio.gather(owner.broker.poll(), other.broker.poll())
    assert list(polled) == [1, 0]
    last = owner.fills()[-1]
    assert (last.client_id, last.side, last.reason) == (owner.fills()[0].client_id, "sell",
                                                        "take_profit")  # fmt: skip
    assert (last.qty, last.price) == (Decimal(row["execQty"]), Decimal(row["execPrice"]))
    assert last.commission == Decimal(row["execFee"])
    assert [f.symbol for f in other.fills()] == ["ETHUSDT"]  # nothing of the exit
    assert owner.broker.held == {} and "ETHUSDT" in other.broker.held
    await asyncio.gather(owner.broker.poll(), other.broker.poll())
    assert len(owner.fills()) == 2  # said once
    for seat in (owner, other):
        await seat.broker.aclose()


async def test_a_venue_stop_loss_on_a_short_is_the_owners_buy_back(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    owner, other = await started(registry(sim.url, tmp_path), "owner", "other")
    await send(owner.broker, owner.order(1, side="sell", stop_loss=Decimal("87000")))
    sim.state.set_quote("BTCUSDT", Decimal("87100.0"), Decimal("87100.5"))
    await asyncio.gather(owner.broker.poll(), other.broker.poll())
    assert [(f.side, f.reason) for f in owner.fills()] == [("sell", "market"), ("buy", "stop_loss")]
    assert owner.fills()[-1].price == Decimal("87100.5")  # bought back at the ask
    assert other.fills() == []
    assert position(sim).size == 0
    for seat in (owner, other):
        await seat.broker.aclose()


async def test_a_trade_by_hand_that_reduces_a_position_is_a_fill_of_its_holder(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    (owner,) = await started(registry(sim.url, tmp_path), "owner")
    await send(owner.broker, owner.order(1, qty="0.020"))
    sim.state.create(  # someone sells 0.005 on the website
        {"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "orderType": "Market",
         "qty": "0.005", "reduceOnly": True}
    )  # fmt: skip
    assert await owner.broker.poll() == 1
    assert [(f.side, f.qty, f.reason) for f in owner.fills()][-1] == (
        "sell", Decimal("0.005"), "market",
    )  # fmt: skip
    assert owner.broker.held["BTCUSDT"].qty == Decimal("0.015")
    await owner.broker.aclose()


async def test_an_executions_read_that_fails_is_said_once_to_every_session_and_assumes_nothing(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    reg = registry(sim.url, tmp_path, "    retry_attempts: 1\n")
    owner, other = await started(reg, "owner", "other")
    await send(owner.broker, owner.order(1, take_profit=Decimal("88000")))
    sim.state.set_quote("BTCUSDT", Decimal("88100.0"), Decimal("88100.5"))  # the TP fires
    faults(sim, status_5xx=2)
    for _ in range(2):  # Bybit answers 503 twice: the exit is not seen yet, nor made up
        assert list(await asyncio.gather(owner.broker.poll(), other.broker.poll())) == [0, 0]
    assert list(await asyncio.gather(owner.broker.poll(), other.broker.poll())) == [1, 0]
    for seat in (owner, other):
        said = [(e.level, e.message) for e in seat.events if isinstance(e, VenueNotice)]
        assert [level for level, _ in said] == ["warning", "info"], said
        assert "executions of linear cannot be read" in said[0][1] and "503" in said[0][1]
        assert "can be read again" in said[1][1]
    assert [f.reason for f in owner.fills()] == ["market", "take_profit"]
    for seat in (owner, other):
        await seat.broker.aclose()


# ---------------------------------------------------------------- quotes, warm-up, paper
WATCH = """STRATEGY watch{n} VERSION 1
SYMBOLS
btc = BYBIT:BTCUSDT EVERY 1s
RULES
WHEN ema(btc, 3) < 0 THEN BUY btc SIZING 0.001
"""


def live(reg: BrokerRegistry, text: str, name: str = "watch.qkt") -> LiveSession:
    parsed = parse_strategy(text, name)
    assert parsed.strategy is not None, parsed.diagnostics
    return LiveSession(parsed.strategy, reg, clock=WallClock())


async def test_quotes_are_bybits_best_bid_and_ask_from_one_poller_per_symbol(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    reg = registry(sim.url, tmp_path, FAST)
    sessions = [live(reg, WATCH.format(n=n)) for n in range(4)]
    for session in sessions:
        await session.start()
    first = cast(AsyncGenerator[Row, None], VenueQuotes(sessions[0]).rows())
    row = await anext(first)
    assert row.tick is not None and row.label == "BYBIT" and row.symbol == "BTCUSDT"
    assert (row.tick.bid, row.tick.ask) == (float(BID), float(ASK))
    await first.aclose()
    reset_counts(sim)

    async def run(s: LiveSession) -> None:
        await drive(s, VenueQuotes(s).rows())

    tasks = [asyncio.create_task(run(s)) for s in sessions]
    await asyncio.sleep(1.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    seen = counts(sim)
    # about ten of each in a second at 100 ms; four sessions alone would make about forty
    assert 5 <= seen.get("GET /v5/market/tickers", 0) <= 14, seen
    assert 5 <= seen.get("GET /v5/execution/list", 0) <= 14, seen
    assert bodies(sim) == []


WARM = """STRATEGY warm VERSION 1
SYMBOLS
btc = BYBIT:BTCUSDT EVERY 1m
fast = BYBIT:BTCUSDT EVERY 1s
RULES
WHEN ema(btc, 20) crosses ABOVE ema(btc, 50) THEN BUY btc SIZING 0.001
WHEN ema(fast, 5) < 0 THEN BUY fast SIZING 0.001
"""


async def test_a_minute_stream_is_warmed_from_klines_and_a_second_stream_starts_cold(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    reg = registry(sim.url, tmp_path)
    session = live(reg, WARM, "warm.qkt")
    said: list[VenueNotice] = []
    session.bus.subscribe(VenueNotice, said.append)
    await session.start()
    reset_counts(sim)
    got = await warm_up(session)
    assert got.get("btc") == 50 and not got.get("fast")
    messages = {n.level: n.message for n in said}
    assert "warm-up of btc" in messages["info"] and "BTCUSDT 1 history" in messages["info"]
    assert "warm-up of fast" in messages["warning"] and "starts cold" in messages["warning"]
    assert counts(sim).get("GET /v5/market/kline", 0) == 1  # 50 bars: one read
    assert bodies(sim) == []  # nothing fires on history
    await session.aclose()


SHADOW = """STRATEGY shadow VERSION 1
SYMBOLS
btc = SHADOW:BTCUSDT EVERY 1s
RULES
WHEN POSITION.btc = 0 THEN BUY btc SIZING 0.01
"""


async def test_a_paper_profile_trades_on_bybits_public_tickers_without_any_key(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(
        f"brokers:\n  bybit:\n    type: bybit\n    base_url: {sim.url}\n"
        "    tick_poll_interval_ms: 50\n  shadow:\n    type: paper\n    quotes_from: bybit\n"
    )
    reg = BrokerRegistry.from_config(load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path))
    session = live(reg, SHADOW, "shadow.qkt")
    assert session.venues == {}  # nothing is traded at Bybit
    reset_counts(sim)

    async def run() -> None:
        await drive(session, VenueQuotes(session).rows())

    task = asyncio.create_task(run())
    held = session.positions.get("SHADOW", "BTCUSDT")
    for step in range(50):  # Bybit's quotes move; a 1s candle closes, the rule buys on paper
        sim.state.set_quote("BTCUSDT", BID, ASK + Decimal(step))
        await asyncio.sleep(0.05)
        if held.qty and step >= 20:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    seen = counts(sim)
    assert seen.get("GET /v5/market/tickers", 0) >= 10
    assert set(seen) == {"GET /v5/market/tickers"}  # no signed request, no key needed
    assert held.qty == Decimal("0.01")
    assert ASK <= held.avg_price <= ASK + step  # one of Bybit's asks
    assert reg.venue("bybit").client._client is None  # nobody streams: connection closed


# ---------------------------------------------------------------- where and when
def _venue(tmp_path: Path, fields: str) -> Any:
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(f"brokers:\n  bybit:\n    type: bybit\n{fields}")
    reg = BrokerRegistry.from_config(load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path))
    return reg.venue("bybit")


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ("", TESTNET_URL),
        ("    testnet: true\n", TESTNET_URL),
        ("    testnet: false\n", MAINNET_URL),
        ("    testnet: false\n    base_url: https://api.bybit.eu/\n", "https://api.bybit.eu"),
        ("    base_url: http://127.0.0.1:5002\n", "http://127.0.0.1:5002"),
    ],
)
def test_a_profile_trades_on_testnet_unless_it_says_otherwise(
    tmp_path: Path, fields: str, url: str
) -> None:
    venue = _venue(tmp_path, fields)
    assert venue.url == url and venue.client.base_url == url
    assert TESTNET_URL == "https://api-testnet.bybit.com"
    assert MAINNET_URL == "https://api.bybit.com"


async def test_a_local_clock_two_seconds_fast_still_trades(tmp_path: Path) -> None:
    """Bybit refuses a stamp 1 s ahead of its clock whatever the recv window: qkt stamps by
    the venue's clock, measured at start."""
    with BybitSimServer(new_state(clock_offset_ms=-2000)) as sim:
        (s,) = await started(registry(sim.url, tmp_path), "s")
        assert s.broker.client.offset_ms is not None
        assert -2100 < s.broker.client.offset_ms < -1900
        await send(s.broker, s.order(1))
        assert s.kinds() == ["OrderRequest", "OrderAccepted", "OrderFilled"]
        assert await s.broker.poll() == 0
        await s.broker.aclose()


async def test_a_clock_that_jumps_costs_one_refused_order_and_the_next_one_trades(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    (s,) = await started(registry(sim.url, tmp_path), "s")
    faults(sim, clock_offset_ms=-3000)  # Bybit's clock is suddenly 3 s behind ours
    await send(s.broker, s.order(1))  # its first read (the position mode) resynchronises
    assert s.kinds()[-1] == "OrderFilled"
    faults(sim, clock_offset_ms=-6000)  # and jumps again: the next request is the create
    await send(s.broker, s.order(2))
    assert "10002" in s.rejections()[0]  # refused before processing: never resent
    await send(s.broker, s.order(3))
    assert s.kinds()[-1] == "OrderFilled"
    assert [r["placed"] for r in sim.state.received] == [True, False, True]
    assert [b["orderLinkId"] for b in bodies(sim)] == [s.link(1), s.link(2), s.link(3)]
    faults(sim, clock_offset_ms=-9000)
    assert await s.broker.poll() == 0  # a read resynchronises and is asked again
    assert [e for e in s.events if isinstance(e, VenueNotice)] == []  # no outage
    assert position(sim).size == Decimal("0.020")
    await s.broker.aclose()


async def test_paper_on_bybits_quotes_keeps_its_quotes_when_the_last_trading_session_stops(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    """A daemon: one deployment trades on the bybit profile, another paper-trades on its
    quotes. The trading one stops; the paper one's quotes must keep coming."""
    reg = registry(sim.url, tmp_path, FAST + "  shadow:\n    type: paper\n    quotes_from: bybit\n")
    (trader,) = await started(reg, "trader")
    paper = live(reg, SHADOW, "shadow.qkt")
    rows = cast(AsyncGenerator[Row, None], VenueQuotes(paper).rows())
    await anext(rows)
    await trader.broker.aclose()  # the profile's last trading session
    sim.state.set_quote("BTCUSDT", BID, ASK + 7)
    row = await asyncio.wait_for(anext(rows), 2)
    assert row.tick is not None and row.tick.ask == float(ASK + 7)
    await rows.aclose()
    assert reg.venue("bybit").client._client is None  # the last reader gone: closed
