"""The gateway simulator over real HTTP, driven by qkt's own client and MT5Broker: fills, netting,
SL/TP exits found by the poller, rejections, and every fault switch."""

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
from qkt.brokers.mt5.client import GatewayClient, GatewayError
from qkt.brokers.tags import order_tag
from qkt.config import load_config
from qkt.engine.bus import EventBus
from qkt.engine.clock import SimulatedClock
from qkt.engine.events import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderUnknown,
)
from qkt.engine.prices import PriceTracker
from qkt.sim import SimServer, SimState
from tests.conftest import send

T0 = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(SimState(seed=5, symbols=("EURUSDm", "XAUUSDm", "GBPUSDm"))) as server:
        yield server


async def broker(
    sim: SimServer, tmp_path: Path, timeout_ms: int = 2000
) -> tuple[MT5Broker, list[Any]]:
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(
        f"brokers:\n  exness:\n    gateway_url: {sim.url}\n    http_timeout_ms: {timeout_ms}\n"
    )
    profile = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path).profiles["exness"]
    bus, events = EventBus(), []
    for kind in (OrderAccepted, OrderFilled, OrderRejected, OrderUnknown):
        bus.subscribe(kind, events.append)
    client = GatewayClient(sim.url, timeout_ms=timeout_ms, backoff_s=0.001)
    b = MT5Broker(profile, bus, SimulatedClock(T0), PriceTracker(), client, label="EXNESS")
    b.absence_backoff_s = 0.01
    await b.start("s")
    return b, events


def buy(
    qty: str = "0.1",
    cid: str = "s-000001",
    sl: str | None = None,
    tp: str | None = None,
    side: str = "buy",
    reduce_only: bool = False,
) -> OrderRequest:
    return OrderRequest(
        cid,
        "s",
        "e",
        "EXNESS",
        "EURUSD",
        side,
        Decimal(qty),
        T0,  # type: ignore[arg-type]
        None if sl is None else Decimal(sl),
        None if tp is None else Decimal(tp),
        reduce_only,
    )


def faults(sim: SimServer, **kw: object) -> None:
    httpx.post(f"{sim.url}/_sim/faults", json=kw).raise_for_status()


@pytest.mark.anyio
async def test_fill_at_ask_netting_and_positions(sim: SimServer, tmp_path: Path) -> None:
    b, events = await broker(sim, tmp_path)
    _, ask, _ = sim.state.quotes["EURUSDm"]
    await send(b, buy())
    fill = events[-1]
    assert isinstance(fill, OrderFilled) and fill.price == ask and fill.symbol == "EURUSD"
    await send(b, buy("0.3", "s-000002"))
    await send(b, buy("0.1", "s-000003", side="sell"))
    (position,) = await b.client.positions(10001)
    assert (position.volume, position.type) == (Decimal("0.3"), 0)
    assert position.comment == order_tag("s", "s-000001")  # the order that opened it
    received = httpx.get(f"{sim.url}/_sim/orders").json()["data"]
    assert [r["idempotency_key"] for r in received] == ["s-000001", "s-000002", "s-000003"]


@pytest.mark.anyio
async def test_stop_loss_hit_at_the_venue_reaches_the_session_through_the_poller(
    sim: SimServer, tmp_path: Path
) -> None:
    b, events = await broker(sim, tmp_path)
    await send(b, buy(sl="1.08000", tp="1.10000"))
    httpx.post(
        f"{sim.url}/_sim/quote", json={"symbol": "EURUSDm", "bid": "1.07990", "ask": "1.08000"}
    )
    assert await b.client.positions(10001) == []
    assert await b.poll() == 1
    exit_fill = events[-1]
    assert (exit_fill.side, exit_fill.price, exit_fill.reason) == (
        "sell",
        Decimal("1.08000"),
        "stop_loss",
    )
    assert sim.state.balance < Decimal(10000)


@pytest.mark.anyio
async def test_venue_rejections(sim: SimServer, tmp_path: Path) -> None:
    b, events = await broker(sim, tmp_path)
    await send(b, buy(sl="1.20000"))  # a buy's stop above the price: refused before sending
    assert isinstance(events[-1], OrderRejected) and "is not below" in events[-1].reason
    assert sim.state.received == []
    await send(b, buy("300", cid="s-000003"))  # over the venue's maximum: refused unsent too
    assert isinstance(events[-1], OrderRejected) and "above the maximum" in events[-1].reason
    faults(sim, requote_next=True)
    await send(b, buy(cid="s-000002"))
    assert isinstance(events[-1], OrderRejected) and "409" in events[-1].reason
    assert await b.client.positions(10001) == []


@pytest.mark.anyio
async def test_a_dropped_answer_is_resolved_from_the_venue_not_resent(
    sim: SimServer, tmp_path: Path
) -> None:
    b, events = await broker(sim, tmp_path)
    faults(sim, drop_after_order=True)
    await send(b, buy())
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderFilled"]
    assert len(sim.state.received) == 1  # sent once
    (position,) = await b.client.positions(10001)
    assert position.volume == Decimal("0.1")


@pytest.mark.anyio
async def test_a_dropped_answer_into_an_open_position_is_found_by_its_deal(
    sim: SimServer, tmp_path: Path
) -> None:
    b, events = await broker(sim, tmp_path)
    await send(b, buy("0.2"))
    faults(sim, drop_after_order=True)
    await send(b, buy("0.1", "s-000002", side="sell"))  # reduces the position: no new one
    last = events[-2:]
    assert [type(e).__name__ for e in last] == ["OrderAccepted", "OrderFilled"]
    assert (last[1].client_id, last[1].side, last[1].qty) == ("s-000002", "sell", Decimal("0.1"))
    assert len(sim.state.received) == 2  # never resent
    (position,) = await b.client.positions(10001)
    assert position.volume == Decimal("0.1")


@pytest.mark.anyio
async def test_a_timeout_after_sending_is_unknown_and_resolved(
    sim: SimServer, tmp_path: Path
) -> None:
    sim.state.timeout_s = 2.0
    b, events = await broker(sim, tmp_path, timeout_ms=300)
    await send(b, buy())
    faults(sim, timeout_next=True)
    b.unknown_window_s = 0.5
    await send(b, buy(cid="s-000002"))  # the request hangs and is dropped: nothing was placed
    # No answer: the gateway may still be placing it, so absence proves nothing for a while.
    assert isinstance(events[-1], OrderUnknown) and events[-1].client_id == "s-000002"
    await send(b, buy(cid="s-000003"))
    assert isinstance(events[-1], OrderRejected) and "unknown outcome" in events[-1].reason
    await asyncio.sleep(0.5)
    await b.poll()  # past the window, three clean reads settle it
    assert isinstance(events[-1], OrderRejected)
    assert events[-1].client_id == "s-000002" and "not placed" in events[-1].reason
    (position,) = await b.client.positions(10001)
    assert position.volume == Decimal("0.1")


@pytest.mark.anyio
async def test_reads_survive_5xx_and_malformed_json_but_not_forever(
    sim: SimServer, tmp_path: Path
) -> None:
    client = GatewayClient(sim.url, retry_attempts=3, backoff_s=0.001)
    faults(sim, status_5xx=2)
    assert (await client.account()).login == 12345678
    faults(sim, malformed_next=True)
    assert await client.positions() == []
    faults(sim, status_5xx=5)
    with pytest.raises(GatewayError):
        await client.positions()


@pytest.mark.anyio
async def test_latency_and_auth(tmp_path: Path) -> None:
    with SimServer(SimState(symbols=("EURUSDm",)), api_key="sekret") as server:
        assert httpx.get(f"{server.url}/account").status_code == 401
        assert httpx.get(f"{server.url}/health/live").status_code == 200
        good = GatewayClient(server.url, api_key="sekret")
        assert (await good.account()).login == 12345678
        faults(server, latency_ms=50)
        assert (await good.quote("EURUSDm")).bid > 0


def test_cli_refuses_a_port_in_use(tmp_path: Path) -> None:
    import socket
    import subprocess

    from tests.conftest import ROOT, clean_env
    from tests.e2e.test_cli_subprocess import qkt_command

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*qkt_command(), "sim", "gateway", "--port", str(port)],
            cwd=ROOT,
            env=clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.anyio
async def test_close_partial_modify_and_pending_orders_through_the_client(
    sim: SimServer, tmp_path: Path
) -> None:
    b, _ = await broker(sim, tmp_path)
    await send(b, buy("0.5"))
    (position,) = await b.client.positions(10001)
    assert (await b.client.close_partial(position.ticket, Decimal("0.2"))).status == "done"
    assert (await b.client.modify_sl_tp(position.ticket, sl=Decimal("1.05"))).status == "done"
    assert (await b.client.modify_sl_tp(position.ticket, tp=Decimal("1.2"))).status == "done"
    (after,) = await b.client.positions(10001)
    assert (after.volume, after.sl, after.tp) == (Decimal("0.3"), Decimal("1.05"), Decimal("1.2"))
    assert (await b.client.modify_sl_tp(position.ticket, clear_sl=True)).status == "done"
    (cleared,) = await b.client.positions(10001)
    assert (cleared.sl or 0, cleared.tp) == (0, Decimal("1.2"))  # only the stop was cleared
    assert (await b.client.close_position(position.ticket)).status == "done"
    assert await b.client.positions(10001) == [] and await b.client.pending_orders(10001) == []


@pytest.mark.anyio
async def test_mixed_strategy_sends_exness_to_the_gateway_and_the_rest_to_paper(
    sim: SimServer, tmp_path: Path
) -> None:
    from qkt.brokers.registry import BrokerRegistry
    from qkt.dsl import parse_strategy
    from qkt.feeds.replay import ReplaySource
    from qkt.loop import drive
    from qkt.session import LiveSession
    from tests.conftest import ROOT
    from tests.test_session import MIXED

    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(f"brokers:\n  exness:\n    gateway_url: {sim.url}\n")
    config = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
    parsed = parse_strategy(MIXED, "mixed.qkt")
    assert parsed.strategy is not None
    fills: list[Any] = []
    session = LiveSession(
        parsed.strategy, BrokerRegistry.from_config(config), on_event=fills.append
    )
    await drive(session, ReplaySource(ROOT / "examples" / "data" / "markets-1m.csv"))
    brokers = {(f.label, f.broker) for f in fills if isinstance(f, OrderFilled)}
    assert brokers == {("EXNESS", "exness"), ("BACKTEST", "backtest"), ("OANDA", "paper")}
    sent = {r["body"]["symbol"] for r in sim.state.received}
    assert sent == {"EURUSDm"}


def test_quotes_can_follow_a_replay_file() -> None:
    from cli.sim import _script
    from tests.conftest import ROOT

    state = SimState(symbols=("EURUSDm", "XAUUSDm"))
    state.follow(_script(ROOT / "examples" / "data" / "markets-1m.csv"))
    for _ in range(4):  # the first minute: BTCUSDT, ETHUSDT, EURUSD, XAUUSD
        state.step()
    eur_bid, eur_ask, _ = state.quotes["EURUSDm"]
    gold_bid, gold_ask, _ = state.quotes["XAUUSDm"]
    first = (ROOT / "examples" / "data" / "markets-1m.csv").read_text().splitlines()
    eur_close = next(line for line in first if line.endswith(",EURUSD")).split(",")[4]
    assert (eur_bid + eur_ask) / 2 == Decimal(eur_close)
    assert gold_bid < gold_ask


@pytest.mark.anyio
async def test_close_position_is_reported_like_an_order(sim: SimServer, tmp_path: Path) -> None:
    b, events = await broker(sim, tmp_path)
    await send(b, buy("0.2"))
    bid, _, _ = sim.state.quotes["EURUSDm"]
    b.close_position("EXNESS", "EURUSD")
    await b.settle()
    close = events[-1]
    assert isinstance(close, OrderFilled)
    assert (close.side, close.qty, close.price, close.symbol) == (
        "sell",
        Decimal("0.2"),
        bid,
        "EURUSD",
    )
    assert await b.client.positions(10001) == []
    assert await b.poll() == 0  # the venue's closing deal is not reported a second time


@pytest.mark.anyio
async def test_an_order_that_closes_or_reverses_a_position_is_not_reported_twice(
    sim: SimServer, tmp_path: Path
) -> None:
    """Netting: a sell against a long closes (or reverses) it at the venue; the sell's own fill
    told the session, so the poller must not report the vanished ticket as a venue-side exit."""
    b, events = await broker(sim, tmp_path)
    await send(b, buy("0.2"))
    await send(b, buy("0.2", "s-000002", side="sell"))  # flat
    assert await b.poll() == 0
    await send(b, buy("0.2", "s-000003"))
    await send(b, buy("0.5", "s-000004", side="sell"))  # reversed: short 0.3
    assert await b.poll() == 0
    fills = [(e.client_id, e.side, e.qty) for e in events if isinstance(e, OrderFilled)]
    assert fills == [
        ("s-000001", "buy", Decimal("0.2")),
        ("s-000002", "sell", Decimal("0.2")),
        ("s-000003", "buy", Decimal("0.2")),
        ("s-000004", "sell", Decimal("0.5")),
    ]
    # The short that is left is still watched: its stop at the venue is reported.
    (short,) = await b.client.positions(10001)
    assert (short.type, short.volume) == (1, Decimal("0.3"))
    await b.client.modify_sl_tp(short.ticket, sl=Decimal("1.2"))
    httpx.post(f"{sim.url}/_sim/quote", json={"symbol": "EURUSDm", "bid": "1.2", "ask": "1.2"})
    assert await b.poll() == 1
    assert (events[-1].side, events[-1].qty, events[-1].reason) == (
        "buy",
        Decimal("0.3"),
        "stop_loss",
    )


@pytest.mark.anyio
async def test_a_hedging_account_keeps_one_net_position_per_stream(tmp_path: Path) -> None:
    """Opposite orders close tickets (oldest first, the last one partly) and only what is left
    opens a position: the venue ends where a netting account would."""
    with SimServer(SimState(symbols=("EURUSDm",), hedging=True)) as server:
        b, events = await broker(server, tmp_path)
        assert b.hedging
        await send(b, buy("0.2"), buy("0.1", "s-000002"))
        assert len(await b.client.positions(10001)) == 2  # a ticket each
        await send(b, buy("0.25", "s-000003", side="sell"))
        (left,) = await b.client.positions(10001)
        assert (left.type, left.volume) == (0, Decimal("0.05"))
        await send(b, buy("0.15", "s-000004", side="sell"))  # closes 0.05, opens a 0.1 short
        (short,) = await b.client.positions(10001)
        assert (short.type, short.volume) == (1, Decimal("0.1"))
        assert await b.poll() == 0  # our own closes are not reported again
        fills = [(e.client_id, e.side, e.qty) for e in events if isinstance(e, OrderFilled)]
        assert fills == [
            ("s-000001", "buy", Decimal("0.2")),
            ("s-000002", "buy", Decimal("0.1")),
            ("s-000003", "sell", Decimal("0.2")),
            ("s-000003", "sell", Decimal("0.05")),
            ("s-000004", "sell", Decimal("0.05")),
            ("s-000004", "sell", Decimal("0.1")),
        ]
        sells = [r["body"]["volume"] for r in server.state.received if r["body"]["type"] == "SELL"]
        assert sells == [0.1]  # the only sell order is the short that was left over


@pytest.mark.anyio
async def test_part_of_a_position_closed_at_the_venue_reaches_the_session(
    sim: SimServer, tmp_path: Path
) -> None:
    b, events = await broker(sim, tmp_path)
    await send(b, buy("0.3"))
    (position,) = await b.client.positions(10001)
    bid, _, _ = sim.state.quotes["EURUSDm"]
    sim.state.close(position.ticket, Decimal("0.1"))  # by hand, in the terminal
    assert await b.poll() == 1
    assert await b.poll() == 0  # once
    part = events[-1]
    assert isinstance(part, OrderFilled)
    assert (part.side, part.qty, part.price, part.client_id) == (
        "sell",
        Decimal("0.1"),
        bid,
        "s-000001",
    )
    sim.state.close(position.ticket)  # and the rest
    assert await b.poll() == 1
    assert (events[-1].side, events[-1].qty) == ("sell", Decimal("0.2"))


@pytest.mark.parametrize(
    ("by_hand", "after"), [("0.2", ["sell 0.2", "sell 0.1"]), ("0.3", ["sell 0.3", "rejected"])]
)
@pytest.mark.anyio
async def test_a_close_after_the_venue_closed_by_itself_never_opens_the_other_way(
    sim: SimServer, tmp_path: Path, by_hand: str, after: list[str]
) -> None:
    """The strategy's CLOSE asks for the whole position it knows; the venue closed part or all of
    it since the last poll (a stop, a hand): the close hears that first and closes only the rest."""
    b, events = await broker(sim, tmp_path)
    await send(b, buy("0.3"))
    (position,) = await b.client.positions(10001)
    sim.state.close(position.ticket, Decimal(by_hand))
    await send(b, buy("0.3", "s-000002", side="sell", reduce_only=True))
    seen = [
        f"{e.side} {e.qty}" if isinstance(e, OrderFilled) else "rejected"
        for e in events[2:]
        if isinstance(e, OrderFilled | OrderRejected)
    ]
    assert seen == after
    assert await b.client.positions(10001) == []  # flat: never a short
    assert await b.poll() == 0


@pytest.mark.anyio
async def test_positions_of_other_sessions_on_the_magic_are_left_alone(
    sim: SimServer, tmp_path: Path
) -> None:
    def place(symbol: str, comment: str) -> int:
        order = {"symbol": symbol, "type": "BUY", "volume": "0.1", "magic": 10001}
        status, result = sim.state.market_order({**order, "comment": comment})
        assert status == 200
        return int(result["order"])

    ours = place("EURUSDm", order_tag("s", "s-earlier-000001"))  # an earlier run of this session
    theirs = place("XAUUSDm", order_tag("other", "other-000001"))  # another strategy's
    by_hand = place("GBPUSDm", "")
    b, events = await broker(sim, tmp_path)  # session "s"
    assert [(r.symbol, r.ticket) for r in b.recovered] == [("EURUSD", ours)]
    sim.state.close(theirs)
    sim.state.close(by_hand)
    assert await b.poll() == 0 and events == []  # not ours: not reported
    sim.state.close(ours)
    assert await b.poll() == 1
    assert (events[-1].symbol, events[-1].side) == ("EURUSD", "sell")
