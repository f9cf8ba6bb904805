"""MT5Broker against the simulator acting as the real mt5-gateway does (reference/mt5-gateway.md,
"What real gateways do"): positions by identifier through reversals, others' volume on the same
magic, broker-time clocks, the gateway's limits checked before sending, its answers as it means
them, /reconcile, and waiting for readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from qkt.brokers.mt5.broker import BrokerRefused, MT5Broker
from qkt.brokers.mt5.client import GatewayClient
from qkt.brokers.mt5.clock import to_utc
from qkt.brokers.tags import MAX_CLIENT_ID, client_prefix, run_stamp
from qkt.config import load_config
from qkt.engine.bus import EventBus
from qkt.engine.clock import SimulatedClock, WallClock
from qkt.engine.events import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderUnknown,
    VenueNotice,
)
from qkt.engine.prices import PriceTracker
from qkt.sim import SimServer, SimState
from tests.conftest import send

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 3, 2, tzinfo=UTC)
MAGIC = 10001


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Iterator[SimServer]:
    options: dict[str, Any] = getattr(request, "param", {})
    state = SimState(seed=3, symbols=("EURUSDm",), **options)
    with SimServer(state) as server:
        yield server


async def broker(
    sim: SimServer, tmp_path: Path, extra: str = "", clock: Any = None, session: str = "s"
) -> tuple[MT5Broker, list[Any]]:
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(
        f"brokers:\n  exness:\n    gateway_url: {sim.url}\n    http_timeout_ms: 2000\n{extra}"
    )
    profile = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path).profiles["exness"]
    bus, events = EventBus(), []
    for kind in (OrderRequest, OrderAccepted, OrderFilled, OrderRejected, OrderUnknown):
        bus.subscribe(kind, events.append)
    bus.subscribe(VenueNotice, events.append)
    client = GatewayClient(sim.url, timeout_ms=2000, backoff_s=0.001)
    b = MT5Broker(profile, bus, clock or SimulatedClock(T0), PriceTracker(), client, label="EXNESS")
    b.absence_backoff_s = 0.01
    b.ready_poll_s = 0.05
    await b.start(session)
    return b, events


def order(
    side: str,
    qty: str,
    cid: str,
    *,
    strategy: str = "s",
    stop: tuple[str, Decimal] | None = None,
    take: tuple[str, Decimal] | None = None,
    reduce_only: bool = False,
) -> OrderRequest:
    entry = Decimal("1.2")  # the session's own (replayed) price: far from the venue's
    sign = Decimal(1) if side == "buy" else Decimal(-1)
    sl = None if stop is None else entry - sign * entry * stop[1] / 100
    tp = None if take is None else entry + sign * entry * take[1] / 100
    return OrderRequest(
        cid, strategy, "e", "EXNESS", "EURUSD", side, Decimal(qty), T0,  # type: ignore[arg-type]
        sl, tp, reduce_only, stop, take,
    )  # fmt: skip


def quote(sim: SimServer, bid: str, ask: str) -> None:
    body = {"symbol": "EURUSDm", "bid": bid, "ask": ask}
    httpx.post(f"{sim.url}/_sim/quote", json=body).raise_for_status()


def faults(sim: SimServer, **kw: object) -> None:
    httpx.post(f"{sim.url}/_sim/faults", json=kw).raise_for_status()


def fills(events: list[Any]) -> list[tuple[str, str, Decimal, str]]:
    return [(e.client_id, e.side, e.qty, e.reason) for e in events if isinstance(e, OrderFilled)]


def kinds(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events if not isinstance(e, VenueNotice)]


async def test_a_netting_reversal_then_a_venue_take_profit_is_one_fill_and_leaves_us_flat(
    sim: SimServer, tmp_path: Path
) -> None:
    quote(sim, "1.08500", "1.08510")
    b, events = await broker(sim, tmp_path)
    await send(b, order("sell", "0.1", "s-000001"))
    await send(b, order("buy", "0.3", "s-000002", take=("by_pct", Decimal(1))))  # long 0.2
    (position,) = sim.state.positions.values()
    assert position.identifier != position.ticket  # MT5: the identifier stays, the ticket moves
    assert await b.poll() == 0  # our own reversal is not a venue exit
    tp = position.tp
    assert tp is not None
    quote(sim, str(tp + Decimal("0.0001")), str(tp + Decimal("0.0002")))  # the venue takes profit
    assert await b.poll() == 1
    assert fills(events)[-1] == (
        "s-000002",
        "sell",
        Decimal("0.2"),
        "take_profit",
    )  # reported once, for the volume we held, as a take-profit
    assert await b.poll() == 0
    sent = len(sim.state.received)
    await send(b, order("sell", "0.2", "s-000003", reduce_only=True))  # the session's CLOSE
    assert kinds(events)[-1] == "OrderRejected" and "no position" in events[-1].reason
    assert len(sim.state.received) == sent  # nothing sent: we are already flat
    assert sim.state.positions == {}


async def test_a_hand_trade_on_the_same_magic_does_not_disturb_the_session(
    sim: SimServer, tmp_path: Path
) -> None:
    hand = {"symbol": "EURUSDm", "volume": 0.5, "type": "BUY", "magic": MAGIC,
            "comment": "by hand", "client_order_id": "hand-1", "deviation": 20}  # fmt: skip
    httpx.post(f"{sim.url}/order", json=hand).raise_for_status()
    b, events = await broker(sim, tmp_path)
    assert b.recovered == []  # not ours: not adopted
    await send(b, order("buy", "0.1", "s-000001"))  # adds to the hand's position (netting)
    assert await b.poll() == 0
    (shared,) = sim.state.positions.values()
    assert shared.volume == Decimal("0.6")
    httpx.post(
        f"{sim.url}/position_close_partial", json={"ticket": shared.ticket, "volume": 0.3}
    ).raise_for_status()  # the hand takes 0.3 off: theirs, not ours
    assert await b.poll() == 0
    await send(b, order("sell", "0.1", "s-000002", reduce_only=True))  # our CLOSE
    assert fills(events)[-1][:3] == ("s-000002", "sell", Decimal("0.1"))
    (left,) = sim.state.positions.values()
    assert left.volume == Decimal("0.2")  # the hand's own volume is left alone
    assert await b.poll() == 0
    httpx.post(f"{sim.url}/close_position", json={"position": {"ticket": left.ticket}})
    assert await b.poll() == 0  # the hand closing its own position reports nothing to us
    assert len(fills(events)) == 2


async def test_a_150_character_strategy_name_still_trades_with_unique_client_ids(
    sim: SimServer, tmp_path: Path
) -> None:
    long = "x" * 150
    b, events = await broker(sim, tmp_path, session=long)
    stamp = run_stamp()
    prefix = client_prefix(long, stamp)
    other = client_prefix("x" * 149 + "y", stamp)
    assert prefix != other  # two long names sharing 149 characters still differ
    ids = [f"{prefix}-{n:06d}" for n in (1, 2)]
    assert all(len(i) <= MAX_CLIENT_ID for i in ids)
    await send(b, order("buy", "0.1", ids[0], strategy=long))
    await send(b, order("buy", "0.1", ids[1], strategy=long))
    assert [f[0] for f in fills(events)] == ids
    keys = [r["idempotency_key"] for r in sim.state.received]
    assert keys == ids  # the gateway took both keys (1-128 characters)


async def test_stops_are_placed_from_the_venue_quote_rounded_and_announced_as_sent(
    sim: SimServer, tmp_path: Path
) -> None:
    quote(sim, "1.08500", "1.08510")
    b, events = await broker(sim, tmp_path)
    await send(b, order("buy", "0.1", "s-000001", stop=("by_pct", Decimal(1)),
                        take=("by_pct", Decimal(2))))  # fmt: skip
    announced = next(e for e in events if isinstance(e, OrderRequest))
    # 1 % under the venue's ask (1.08510), not under the session's 1.2; 5 digits like EURUSDm
    assert (announced.stop_loss, announced.take_profit) == (Decimal("1.07425"), Decimal("1.10680"))
    body = sim.state.received[-1]["body"]
    assert (body["sl"], body["tp"]) == (1.07425, 1.1068)
    assert kinds(events) == ["OrderRequest", "OrderAccepted", "OrderFilled"]


async def test_stops_on_the_wrong_side_and_sizes_over_the_gateway_limit_are_refused_unsent(
    sim: SimServer, tmp_path: Path
) -> None:
    quote(sim, "1.08500", "1.08510")
    b, events = await broker(sim, tmp_path)
    wrong = order("buy", "0.1", "s-000001")
    wrong = OrderRequest(*(wrong.client_id, wrong.strategy, wrong.alias, wrong.label),
                         *(wrong.symbol, wrong.side, wrong.qty, wrong.time),
                         Decimal("1.09"), None)  # fmt: skip
    await send(b, wrong)
    assert "stop-loss 1.09000 is not below the expected fill 1.08510 (ask)" in events[-1].reason
    await send(b, order("buy", "150", "s-000002"))
    assert "above the gateway's limit of 100 lots" in events[-1].reason
    assert sim.state.received == []  # neither reached the gateway
    assert kinds(events) == ["OrderRequest", "OrderRejected"] * 2  # each shown, then refused


@pytest.mark.parametrize("sim", [{"reconcile": True}, {"reconcile": False}], indirect=True,
                         ids=["reconcile", "positions-and-deals"])  # fmt: skip
async def test_an_unknown_outcome_is_settled_from_the_venue(sim: SimServer, tmp_path: Path) -> None:
    b, events = await broker(sim, tmp_path)
    await send(b, order("buy", "0.2", "s-000001"))
    faults(sim, drop_after_order=True)  # placed, the answer lost (502)
    await send(b, order("sell", "0.1", "s-000002"))  # into the open position: only a deal shows
    faults(sim, in_progress_next=True)  # 409 idempotency_in_progress: placed, not "nothing"
    await send(b, order("sell", "0.05", "s-000003"))
    assert [f[:3] for f in fills(events)] == [
        ("s-000001", "buy", Decimal("0.2")),
        ("s-000002", "sell", Decimal("0.1")),
        ("s-000003", "sell", Decimal("0.05")),
    ]
    assert len(sim.state.received) == 3  # never resent
    (position,) = sim.state.positions.values()
    assert position.volume == Decimal("0.05")
    assert await b.poll() == 0


async def test_a_halted_or_unavailable_gateway_refuses_clearly_and_blocks_nothing(
    sim: SimServer, tmp_path: Path
) -> None:
    b, events = await broker(sim, tmp_path)
    faults(sim, unavailable_next=True)
    await send(b, order("buy", "0.1", "s-000001"))
    assert "MT5 unavailable, nothing sent" in events[-1].reason
    faults(sim, kill_switch=True)
    await send(b, order("buy", "0.1", "s-000002"))
    assert "kill switch" in events[-1].reason
    faults(sim, kill_switch=False)
    await send(b, order("buy", "0.1", "s-000003"))  # the symbol was never blocked
    assert kinds(events)[-1] == "OrderFilled" and "OrderUnknown" not in kinds(events)


async def test_start_waits_for_readiness_and_says_so_once(sim: SimServer, tmp_path: Path) -> None:
    faults(sim, not_ready_ms=400)
    _, events = await broker(sim, tmp_path, "    ready_timeout_ms: 5000\n")
    notices = [e for e in events if isinstance(e, VenueNotice)]
    assert [n.level for n in notices] == ["warning", "info"]
    assert "waiting for gateway" in notices[0].message and "5 s" in notices[0].message
    faults(sim, not_ready_ms=5000)
    with pytest.raises(BrokerRefused) as refused:
        await broker(sim, tmp_path, "    ready_timeout_ms: 300\n")
    assert "after waiting 0.3 s" in refused.value.diagnostics[0].message


@pytest.mark.parametrize("sim", [{"server_time_zone": "ny-close"}], indirect=True)
async def test_broker_times_of_a_new_york_close_server_are_read_as_utc(
    sim: SimServer, tmp_path: Path
) -> None:
    b, events = await broker(sim, tmp_path, "    server_time_zone: ny-close\n", clock=WallClock())
    tick = await b.client.quote("EURUSDm")
    raw = datetime.fromtimestamp(tick.time_msc / 1000, UTC)
    now = datetime.now(UTC)
    assert abs((raw - now).total_seconds()) > 3600  # the server writes its own wall clock
    assert abs((to_utc(tick.time_msc, b.zone) - now).total_seconds()) < 60
    await send(b, order("buy", "0.1", "s-000001", stop=("by_pct", Decimal(1))))
    (position,) = sim.state.positions.values()
    assert position.sl is not None
    quote(sim, str(position.sl - Decimal("0.0001")), str(position.sl))
    assert await b.poll() == 1  # its exit deal is found in a window written on the server's clock
    exit_fill = events[-1]
    assert exit_fill.reason == "stop_loss"
    assert abs((exit_fill.time - datetime.now(UTC)).total_seconds()) < 60  # the deal's time, UTC


async def test_an_empty_positions_list_is_not_believed_without_deals(
    sim: SimServer, tmp_path: Path
) -> None:
    b, events = await broker(sim, tmp_path)
    await send(b, order("buy", "0.1", "s-000001"))
    faults(sim, empty_positions_next=True)  # the terminal failed to count: 200 []
    assert await b.poll() == 0  # no exit deal shows a close: still long
    await send(b, order("sell", "0.1", "s-000002", reduce_only=True))
    assert fills(events)[-1][:3] == ("s-000002", "sell", Decimal("0.1"))
    assert sim.state.positions == {}


@pytest.mark.parametrize("sim", [{"reconcile": True}, {"reconcile": False}], indirect=True,
                         ids=["reconcile", "positions"])  # fmt: skip
async def test_a_restarted_session_recovers_its_own_positions_only(
    sim: SimServer, tmp_path: Path
) -> None:
    first, _ = await broker(sim, tmp_path, session="eur")
    await send(first, order("sell", "0.1", "eur-1-000001", strategy="eur"))
    await send(first, order("buy", "0.3", "eur-1-000002", strategy="eur"))  # reversed: long 0.2
    await first.aclose()
    other, _ = await broker(sim, tmp_path, session="gbp")
    assert other.recovered == []  # not the other session's
    again, events = await broker(sim, tmp_path, session="eur")
    (recovered,) = again.recovered
    assert (recovered.side, recovered.qty) == ("buy", Decimal("0.2"))
    (position,) = sim.state.positions.values()
    position_sl = position.price_open - Decimal("0.01")
    httpx.post(
        f"{sim.url}/modify_sl_tp", json={"position": position.ticket, "sl": float(position_sl)}
    ).raise_for_status()
    quote(sim, str(position_sl - Decimal("0.0001")), str(position_sl))
    assert await again.poll() == 1  # the recovered position's stop reaches the session
    assert fills(events)[-1][1:] == ("sell", Decimal("0.2"), "stop_loss")


async def test_an_order_the_gateway_places_after_the_client_gave_up_is_found_not_resent(
    sim: SimServer, tmp_path: Path
) -> None:
    """The terminal works on after a timeout: absence right after it proves nothing. The order
    is looked for until the gateway must have finished, then found; nothing is sent twice."""
    b, events = await broker(sim, tmp_path)
    b.client = GatewayClient(sim.url, timeout_ms=300, backoff_s=0.001)
    b.unknown_window_s = 2 * 0.3  # what an http_timeout_ms of 300 gives
    faults(sim, place_after_ms=700)  # placed 0.7 s after it arrived; the client waits 0.3 s
    await send(b, order("buy", "0.1", "s-000001"))
    assert kinds(events)[-1] == "OrderUnknown"  # not "not placed"
    await send(b, order("buy", "0.1", "s-000002"))
    assert "unknown outcome" in events[-1].reason  # the symbol is blocked meanwhile
    for _ in range(50):  # the poller keeps looking, as a session's does
        await asyncio.sleep(0.1)
        await b.poll()
        if fills(events):
            break
    assert fills(events) == [("s-000001", "buy", Decimal("0.1"), "market")]
    assert [r["idempotency_key"] for r in sim.state.received] == ["s-000001"]
    (position,) = sim.state.positions.values()
    assert position.volume == Decimal("0.1")


async def test_an_answer_that_never_comes_is_settled_at_the_venue(
    sim: SimServer, tmp_path: Path
) -> None:
    b, events = await broker(sim, tmp_path)
    b.client = GatewayClient(sim.url, timeout_ms=300, backoff_s=0.001)
    b.unknown_window_s = 0.6
    faults(sim, answer_after_ms=1500)  # placed at once; the answer comes long after the timeout
    await send(b, order("buy", "0.1", "s-000001"))
    assert fills(events) == [("s-000001", "buy", Decimal("0.1"), "market")]  # found by its deal
    assert len(sim.state.received) == 1


async def test_an_order_sized_in_money_is_sized_in_the_venues_lots(
    sim: SimServer, tmp_path: Path
) -> None:
    """EURUSDm lots hold 100,000 EUR: 10,000 USD at 1.0851 is 0.09 lots (rounded down to the
    step), not 9,215 "units"; a notional too small for one minimum lot is refused unsent."""
    quote(sim, "1.08500", "1.08510")
    b, events = await broker(sim, tmp_path)
    sized = replace(order("buy", "9215.74", "s-000001"), notional=Decimal(10000))
    await send(b, sized)
    announced = next(e for e in events if isinstance(e, OrderRequest))
    assert announced.qty == Decimal("0.09")
    assert sim.state.received[-1]["body"]["volume"] == 0.09
    assert fills(events)[-1][:3] == ("s-000001", "buy", Decimal("0.09"))
    tiny = replace(order("buy", "0.9", "s-000002"), notional=Decimal(1))
    await send(b, tiny)
    assert "below the minimum volume 0.01" in events[-1].reason
    assert len(sim.state.received) == 1
