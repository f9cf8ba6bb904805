"""Many sessions on one MT5 profile share one venue connection (SPEC §6.1): the gateway's load does
not grow with the number of sessions, and what the venue does reaches only the session that owns
it. Requests are counted at the simulator (``GET /_sim/requests``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from qkt.brokers.mt5.broker import MT5Broker
from qkt.brokers.registry import BrokerRegistry
from qkt.config import load_config
from qkt.dsl import parse_strategy
from qkt.engine.bus import EventBus
from qkt.engine.clock import WallClock
from qkt.engine.events import OrderFilled, OrderRequest, VenueNotice
from qkt.engine.prices import PriceTracker
from qkt.feeds.venue import VenueQuotes
from qkt.loop import drive
from qkt.session import LiveSession
from qkt.sim import SimServer, SimState
from tests.conftest import send

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(SimState(seed=3, symbols=("EURUSDm", "XAUUSDm"))) as server:
        yield server


def registry(sim: SimServer, tmp_path: Path, extra: str = "") -> BrokerRegistry:
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(
        f"brokers:\n  exness:\n    gateway_url: {sim.url}\n    http_timeout_ms: 2000\n{extra}"
    )
    return BrokerRegistry.from_config(load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path))


def counts(sim: SimServer) -> dict[str, int]:
    body: dict[str, Any] = httpx.get(f"{sim.url}/_sim/requests").json()
    return dict(body["counts"])


def reset(sim: SimServer) -> None:
    httpx.post(f"{sim.url}/_sim/requests/reset")


class Seat:
    """One session's broker built by the registry's factory, with what its bus heard."""

    def __init__(self, reg: BrokerRegistry, name: str) -> None:
        self.name = name
        self.events: list[Any] = []
        bus = EventBus()
        for kind in (OrderRequest, OrderFilled, VenueNotice):
            bus.subscribe(kind, self.events.append)
        broker = reg["exness"].factory(bus, WallClock(), PriceTracker())
        assert isinstance(broker, MT5Broker)
        self.broker = broker

    def fills(self) -> list[OrderFilled]:
        return [e for e in self.events if isinstance(e, OrderFilled)]

    def notices(self) -> list[str]:
        return [e.message for e in self.events if isinstance(e, VenueNotice)]


async def started(reg: BrokerRegistry, count: int) -> list[Seat]:
    seats = [Seat(reg, f"s{i}") for i in range(count)]
    await asyncio.gather(*(s.broker.start(s.name) for s in seats))
    return seats


def buy(seat: Seat, n: int, symbol: str = "EURUSD", **extra: Any) -> OrderRequest:
    return OrderRequest(
        f"{seat.name}-{n:06d}", seat.name, "r", "EXNESS", symbol, "buy", Decimal("0.1"), NOW,
        **extra,
    )  # fmt: skip


@pytest.mark.parametrize("sessions", [2, 20])
async def test_sessions_on_one_profile_share_one_connection_and_one_positions_read(
    sim: SimServer, tmp_path: Path, sessions: int
) -> None:
    reset(sim)
    seats = await started(registry(sim, tmp_path), sessions)
    start = counts(sim)
    # the start-up guard and the recovery read, once for all of them
    assert start.get("GET /health/ready") == 1 and start.get("GET /account") == 1
    assert start.get("GET /reconcile") == 1
    assert len({id(s.broker.venue) for s in seats}) == 1
    reset(sim)
    for _ in range(3):  # every session polls at the same moment, as the loop's grid makes them
        await asyncio.gather(*(s.broker.poll() for s in seats))
    assert counts(sim) == {"GET /get_positions": 3}
    for seat in seats:
        await seat.broker.aclose()


async def test_a_fill_and_a_venue_stop_reach_only_their_owner(
    sim: SimServer, tmp_path: Path
) -> None:
    owner, other = await started(registry(sim, tmp_path), 2)
    await send(owner.broker, buy(owner, 1, stop_loss=Decimal("1.0")))
    await send(other.broker, buy(other, 1, symbol="XAUUSD"))
    assert [f.client_id for f in owner.fills()] == ["s0-000001"]
    assert [f.client_id for f in other.fills()] == ["s1-000001"]
    sim.state.set_quote("EURUSDm", Decimal("0.99"), Decimal("0.9902"))  # through the stop
    await asyncio.gather(owner.broker.poll(), other.broker.poll())
    exits = [f for f in owner.fills() if f.reason == "stop_loss"]
    assert len(exits) == 1 and exits[0].client_id == "s0-000001"
    assert exits[0].qty == Decimal("0.1") and exits[0].symbol == "EURUSD"
    assert [f.client_id for f in other.fills()] == ["s1-000001"]  # nothing of the stop
    for seat in (owner, other):
        await seat.broker.aclose()


async def test_a_session_that_stops_leaves_the_others_polling(
    sim: SimServer, tmp_path: Path
) -> None:
    first, second = await started(registry(sim, tmp_path), 2)
    await send(second.broker, buy(second, 1, take_profit=Decimal("1.5")))
    await first.broker.aclose()
    reset(sim)
    sim.state.set_quote("EURUSDm", Decimal("1.51"), Decimal("1.5102"))  # through the target
    assert await second.broker.poll() == 1  # its connection still open, its exit reported
    assert [f.reason for f in second.fills()][-1] == "take_profit"
    assert counts(sim).get("GET /get_positions") == 1
    await second.broker.aclose()
    assert second.broker.client._client is None  # type: ignore[attr-defined]  # the last one closed it


async def test_a_position_without_a_qkt_tag_belongs_to_nobody_and_is_said_once(
    sim: SimServer, tmp_path: Path
) -> None:
    seats = await started(registry(sim, tmp_path), 2)
    status, _ = sim.state.market_order(
        {"symbol": "XAUUSDm", "volume": 0.1, "type": "BUY", "magic": 10001, "comment": "by hand"}
    )
    assert status == 200
    for _ in range(2):
        await asyncio.gather(*(s.broker.poll() for s in seats))
    for seat in seats:
        said = [m for m in seat.notices() if "no qkt tag" in m]
        assert len(said) == 1 and "'by hand'" in said[0]
        assert seat.fills() == []  # not adopted by anyone
        await seat.broker.aclose()


async def test_the_net_position_of_a_shared_symbol_is_checked_against_the_sessions_sum(
    sim: SimServer, tmp_path: Path
) -> None:
    a, b = await started(registry(sim, tmp_path), 2)
    await send(a.broker, buy(a, 1))
    await send(b.broker, buy(b, 1))  # netting: the account holds one position of 0.2
    await asyncio.gather(a.broker.poll(), b.broker.poll())
    assert not any("not the sum" in m for m in a.notices() + b.notices())
    (ticket,) = list(sim.state.positions)
    status, _ = sim.state.close(ticket, Decimal("0.05"))  # someone takes 0.05 off by hand
    assert status == 200
    await asyncio.gather(a.broker.poll(), b.broker.poll())
    for seat in (a, b):
        said = [m for m in seat.notices() if "not the sum" in m]
        assert len(said) == 1, seat.notices()
        assert "0.15" in said[0] and "0.2" in said[0] and "s0, s1" in said[0]
        await seat.broker.aclose()


STRATEGY = """STRATEGY watch{n} VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1s
RULES
WHEN ema(eur, 3) < 0 THEN BUY eur SIZING 0.1
"""


async def test_live_sessions_share_the_quote_poller_of_a_symbol(
    sim: SimServer, tmp_path: Path
) -> None:
    reg = registry(sim, tmp_path, "    poll_interval_ms: 100\n    tick_poll_interval_ms: 100\n")

    def session(n: int) -> LiveSession:
        parsed = parse_strategy(STRATEGY.format(n=n), f"watch{n}.qkt")
        assert parsed.strategy is not None
        return LiveSession(parsed.strategy, reg, clock=WallClock())

    sessions = [session(n) for n in range(5)]
    for s in sessions:
        await s.start()
    reset(sim)

    async def run(s: LiveSession) -> None:
        await drive(s, VenueQuotes(s).rows())

    tasks = [asyncio.create_task(run(s)) for s in sessions]
    await asyncio.sleep(1.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    seen = counts(sim)
    # about ten of each in a second at 100 ms; five sessions alone would make about fifty
    assert 5 <= seen.get("GET /symbol_info_tick/{symbol}", 0) <= 14, seen
    assert 5 <= seen.get("GET /get_positions", 0) <= 14, seen


async def test_after_a_restart_sessions_sharing_a_netting_position_each_take_back_their_own(
    sim: SimServer, tmp_path: Path
) -> None:
    a, b = await started(registry(sim, tmp_path), 2)
    await send(a.broker, buy(a, 1))
    await send(b.broker, buy(b, 1))
    await send(b.broker, buy(b, 2))  # one position of 0.3 under a's tag: 0.1 a's, 0.2 b's
    (position,) = sim.state.positions.values()
    assert position.volume == Decimal("0.3")
    for seat in (a, b):
        await seat.broker.aclose()
    again = registry(sim, tmp_path)  # the restarted daemon's
    a2, b2 = Seat(again, "s0"), Seat(again, "s1")
    a2.broker.journal_holds = {"EURUSDm": Decimal("0.1")}
    b2.broker.journal_holds = {"EURUSDm": Decimal("0.2")}
    await asyncio.gather(a2.broker.start("s0"), b2.broker.start("s1"))
    assert [(r.symbol, r.qty) for r in a2.broker.recovered] == [("EURUSD", Decimal("0.1"))]
    assert [(r.symbol, r.qty) for r in b2.broker.recovered] == [("EURUSD", Decimal("0.2"))]
    await asyncio.gather(a2.broker.poll(), b2.broker.poll())
    assert not any("not the sum" in m for m in a2.notices() + b2.notices())
    for seat in (a2, b2):
        await seat.broker.aclose()


async def test_without_the_journal_the_session_whose_tag_a_position_carries_recovers_it_whole(
    sim: SimServer, tmp_path: Path
) -> None:
    (a,) = await started(registry(sim, tmp_path), 1)
    await send(a.broker, buy(a, 1))
    await a.broker.aclose()
    (again,) = await started(registry(sim, tmp_path), 1)  # qkt run again: no journal
    assert [(r.symbol, r.qty) for r in again.broker.recovered] == [("EURUSD", Decimal("0.1"))]
    await again.broker.aclose()


async def test_a_journaled_order_of_unknown_outcome_counts_in_what_a_session_takes_back(
    sim: SimServer, tmp_path: Path
) -> None:
    (a,) = await started(registry(sim, tmp_path), 1)
    await send(a.broker, buy(a, 1), buy(a, 2))  # 0.2 at the venue; the journal saw only 0.1
    await a.broker.aclose()
    again = Seat(registry(sim, tmp_path), "s0")
    again.broker.journal_holds = {"EURUSDm": Decimal("0.1")}
    again.broker.expect(buy(a, 2), _tag(a, 2), datetime.now(UTC))
    settled: list[Any] = []
    again.broker.on_settled = lambda request, price, qty: settled.append((request.client_id, qty))
    await again.broker.start("s0")
    assert [(r.symbol, r.qty) for r in again.broker.recovered] == [("EURUSD", Decimal("0.2"))]
    assert settled == [("s0-000002", Decimal("0.1"))]  # in the recovered position: no second fill
    await again.broker.aclose()


def _tag(seat: Seat, n: int) -> str:
    from qkt.brokers.tags import order_tag

    return order_tag(seat.name, f"{seat.name}-{n:06d}")


PAPER_ON_VENUE = """STRATEGY shadow VERSION 1
SYMBOLS
eur = SHADOW:EURUSD EVERY 1s
RULES
WHEN POSITION.eur = 0 THEN BUY eur SIZING 0.1
"""


async def test_a_paper_profile_trades_on_the_quotes_of_its_quotes_from_venue(
    sim: SimServer, tmp_path: Path
) -> None:
    reg = registry(
        sim,
        tmp_path,
        "    tick_poll_interval_ms: 50\n  shadow:\n    type: paper\n    quotes_from: exness\n",
    )
    parsed = parse_strategy(PAPER_ON_VENUE, "shadow.qkt")
    assert parsed.strategy is not None
    session = LiveSession(parsed.strategy, reg, clock=WallClock())
    assert session.venues == {}  # nothing to trade at the venue: paper fills
    sim.state.set_quote("EURUSDm", Decimal("1.2000"), Decimal("1.2002"))
    reset(sim)
    quotes = VenueQuotes(session)
    assert not quotes.empty

    async def run() -> None:
        await drive(session, quotes.rows())

    task = asyncio.create_task(run())
    for step in range(25):  # the venue's quotes move; a 1s candle closes, the rule buys
        sim.state.set_quote("EURUSDm", Decimal("1.2000"), Decimal(f"1.20{step + 10:02d}"))
        await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    seen = counts(sim)
    assert seen.get("GET /symbol_info_tick/{symbol}", 0) >= 10
    assert "POST /order" not in seen  # paper: nothing is sent
    position = session.positions.get("SHADOW", "EURUSD")
    assert position.qty == Decimal("0.1")
    assert Decimal("1.2010") <= position.avg_price <= Decimal("1.2034")  # a venue ask
    assert reg.venue("exness").client._client is None  # nobody streams: connections closed


async def test_paper_on_a_venues_quotes_keeps_them_when_the_venues_last_session_stops(
    sim: SimServer, tmp_path: Path
) -> None:
    reg = registry(
        sim,
        tmp_path,
        "    tick_poll_interval_ms: 50\n  shadow:\n    type: paper\n    quotes_from: exness\n",
    )
    parsed = parse_strategy(PAPER_ON_VENUE, "shadow.qkt")
    assert parsed.strategy is not None
    paper = LiveSession(parsed.strategy, reg, clock=WallClock())
    (trader,) = await started(reg, 1)  # a session trading on the same profile
    rows = VenueQuotes(paper).rows()
    got: list[Any] = []

    async def read() -> None:
        async for row in rows:
            got.append(row)

    task = asyncio.create_task(read())
    await asyncio.sleep(0.3)
    await trader.broker.aclose()  # the profile's last trading session leaves
    before = len(got)
    for step in range(6):
        sim.state.set_quote("EURUSDm", Decimal("1.2000"), Decimal(f"1.20{step + 10:02d}"))
        await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(got) > before + 2  # the quotes go on for the paper session
