"""MT5Broker against a real HTTP server: translation, magic, volume checks, outcomes, recovery, poller."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from qkt.brokers.mt5.broker import BrokerRefused, MT5Broker
from qkt.brokers.mt5.client import GatewayClient
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
    VenueNotice,
)
from qkt.engine.prices import PriceTracker
from tests.conftest import send

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 2, tzinfo=UTC)
INFO = {
    "bid": 1.0841,
    "ask": 1.0843,
    "digits": 5,
    "volume_min": 0.01,
    "volume_max": 200.0,
    "volume_step": 0.01,
    "trade_contract_size": 100000,
}
TICK = {"symbol": "USTECm", "bid": 18000.0, "ask": 18000.5, "time_msc": 1772409600000}
POSITION = {
    "ticket": 42,
    "symbol": "USTECm",
    "type": 0,
    "volume": "0.10",
    "price_open": "18000.5",
    "sl": "17000",
    "tp": "19000",
    "magic": 10005,
    "comment": order_tag("nas", "nas-000001"),
}


def make(httpserver: HTTPServer, tmp_path: Path, extra: str = "") -> tuple[MT5Broker, list[Any]]:
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(
        "brokers:\n  exness-personal:\n    extends: exness\n"
        f"    gateway_url: {httpserver.url_for('').rstrip('/')}\n    magic: 10005\n{extra}"
    )
    profile = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path).profiles["exness-personal"]
    httpserver.expect_request("/symbol_info_tick/USTECm").respond_with_json(TICK)
    if "reconcile" not in extra:  # an older gateway: positions and deals instead
        httpserver.expect_request("/reconcile").respond_with_data("", status=404)
    bus, events = EventBus(), []
    for kind in (OrderAccepted, OrderFilled, OrderRejected, OrderUnknown):
        bus.subscribe(kind, events.append)
    prices = PriceTracker()
    client = GatewayClient(profile.values["gateway_url"], backoff_s=0.001)
    broker = MT5Broker(profile, bus, SimulatedClock(T0), prices, client, label="EXNESS-PERSONAL")
    broker.absence_backoff_s = 0.001
    return broker, events


def request(qty: str = "0.1", side: str = "buy", cid: str = "nas-000001") -> OrderRequest:
    low, high = Decimal("17000"), Decimal("19000")  # around the venue's 18000
    return OrderRequest(
        cid,
        "nas",
        "n",
        "EXNESS-PERSONAL",
        "NAS100",
        side,  # type: ignore[arg-type]
        Decimal(qty),
        T0,
        low if side == "buy" else high,
        high if side == "buy" else low,
    )


async def test_order_goes_out_translated_with_magic_and_fills(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    httpserver.expect_oneshot_request("/order", method="POST").respond_with_json(
        {"result": {"retcode": 10009, "order": 42, "price": "18000.5", "volume": "0.1"}}
    )
    broker, events = make(httpserver, tmp_path)
    await send(broker, request())
    body = json.loads(httpserver.log[-1][0].data)
    assert (body["symbol"], body["magic"], body["volume"], body["type"]) == (
        "USTECm",
        10005,
        0.1,
        "BUY",
    )
    assert (body["sl"], body["tp"], body["client_order_id"]) == (17000.0, 19000.0, "nas-000001")
    assert body["comment"] == order_tag("nas", "nas-000001")  # 16 characters a terminal keeps
    assert len(body["comment"]) == 16
    accepted, filled = events
    assert isinstance(accepted, OrderAccepted)
    assert (filled.symbol, filled.price, filled.qty) == (
        "NAS100",
        Decimal("18000.5"),
        Decimal("0.1"),
    )


@pytest.mark.parametrize(
    ("qty", "why"),
    [("0.005", "below the minimum"), ("500", "above the maximum"), ("0.015", "not a multiple")],
)
async def test_bad_volume_is_refused_before_sending(
    httpserver: HTTPServer, tmp_path: Path, qty: str, why: str
) -> None:
    httpserver.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    broker, events = make(httpserver, tmp_path)
    await send(broker, request(qty))
    (rejected,) = events
    assert isinstance(rejected, OrderRejected) and why in rejected.reason
    assert all(r.path != "/order" for r, _ in httpserver.log)


async def test_venue_rejection_carries_its_message(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    httpserver.expect_request("/order", method="POST").respond_with_json(
        {"error": "Invalid stops", "result": {"retcode": 10016}}, status=400
    )
    broker, events = make(httpserver, tmp_path)
    await send(broker, request())
    assert isinstance(events[0], OrderRejected) and "Invalid stops" in events[0].reason


async def test_unknown_outcome_is_resolved_from_positions_before_anything_else(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    httpserver.expect_oneshot_request("/order", method="POST").respond_with_data("", status=502)
    httpserver.expect_request("/get_positions").respond_with_json({"data": [POSITION]})
    httpserver.expect_request("/history_deals_get").respond_with_json({"data": []})
    broker, events = make(httpserver, tmp_path)
    await send(broker, request())
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderFilled"]
    assert events[1].price == Decimal("18000.5")
    assert sum(r.path == "/order" for r, _ in httpserver.log) == 1  # never resent


async def test_unknown_outcome_found_as_a_deal_when_it_went_into_an_existing_position(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """Netting: a buy into an open position keeps that position's comment; only the deal shows
    the order (its comment is the order's, like MT5)."""
    httpserver.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    httpserver.expect_oneshot_request("/order", method="POST").respond_with_data("", status=502)
    httpserver.expect_request("/get_positions").respond_with_json([POSITION])
    ours = order_tag("nas", "nas-000002")
    httpserver.expect_request("/history_deals_get").respond_with_json(
        {
            "data": [
                {"ticket": 7, "symbol": "USTECm", "magic": 10005, "price": "1", "comment": "x"},
                {"ticket": 8, "symbol": "USTECm", "magic": 99, "price": "2", "comment": ours},
                {
                    "ticket": 9,
                    "symbol": "USTECm",
                    "magic": 10005,
                    "entry": 0,
                    "volume": "0.10",
                    "price": "18010.25",
                    "comment": ours,
                },
            ]
        }
    )
    broker, events = make(httpserver, tmp_path)
    await send(broker, request(cid="nas-000002"))
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderFilled"]
    assert (events[1].price, events[1].qty) == (Decimal("18010.25"), Decimal("0.10"))
    (query, _) = next(x for x in httpserver.log if x[0].path == "/history_deals_get")
    assert {"from_date", "to_date"} <= set(query.args)  # a window, not the whole history
    assert query.args["from_date"].endswith("Z") and "position" not in query.args


async def test_an_earlier_order_of_the_session_is_not_mistaken_for_the_unknown_one(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """Three clean reads in a row before "not placed"; the session's other position (same
    session tag, another order) does not count."""
    httpserver.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    httpserver.expect_oneshot_request("/order", method="POST").respond_with_data("", status=502)
    httpserver.expect_request("/get_positions").respond_with_json([POSITION])
    httpserver.expect_request("/history_deals_get").respond_with_json([])
    broker, events = make(httpserver, tmp_path)
    await send(broker, request(cid="nas-000002"))
    (rejected,) = events
    assert isinstance(rejected, OrderRejected) and "not placed" in rejected.reason
    assert sum(r.path == "/get_positions" for r, _ in httpserver.log) == 3
    assert sum(r.path == "/order" for r, _ in httpserver.log) == 1


async def test_a_gateway_that_echoes_client_ids_is_matched_by_them(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    httpserver.expect_oneshot_request("/order", method="POST").respond_with_data("", status=502)
    echoed = {**POSITION, "ticket": 43, "comment": "cut", "client_order_id": "nas-000002"}
    httpserver.expect_request("/get_positions").respond_with_json([POSITION, echoed])
    httpserver.expect_request("/history_deals_get").respond_with_json([])
    broker, events = make(httpserver, tmp_path)
    await send(broker, request(cid="nas-000002"))
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderFilled"]


async def test_unknown_outcome_that_cannot_be_read_blocks_the_symbol(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    httpserver.expect_oneshot_request("/order", method="POST").respond_with_data("", status=502)
    httpserver.expect_request("/get_positions").respond_with_data("down", status=503)
    broker, events = make(httpserver, tmp_path)
    await send(broker, request(), request(cid="nas-000002"))
    assert [type(e).__name__ for e in events] == ["OrderUnknown", "OrderRejected"]
    assert "blocked" in events[0].reason and "unknown outcome" in events[1].reason
    assert sum(r.path == "/order" for r, _ in httpserver.log) == 1
    # The gateway answers again: the next poll finds the order and frees the symbol.
    httpserver.clear()
    httpserver.expect_request("/reconcile").respond_with_data("", status=404)
    httpserver.expect_request("/get_positions").respond_with_json([POSITION])
    httpserver.expect_request("/history_deals_get").respond_with_json([])
    await broker.poll()
    assert [type(e).__name__ for e in events[2:]] == ["OrderAccepted", "OrderFilled"]
    assert events[3].client_id == "nas-000001" and events[3].price == Decimal("18000.5")
    assert all(r.path != "/order" for r, _ in httpserver.log)  # found, never resent


async def test_start_guard_and_recovery(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/health/ready").respond_with_json({"status": "ready"})
    httpserver.expect_request("/account").respond_with_json(
        {"login": 111, "server": "S", "trade_mode": 0}
    )
    httpserver.expect_request("/get_positions").respond_with_json([POSITION])
    httpserver.expect_request("/symbol_info/USTECm").respond_with_json(
        {**INFO, "trade_contract_size": 10}
    )
    broker, _ = make(
        httpserver, tmp_path, "    expected_account_login: 111\n    expected_trade_mode: demo\n"
    )
    await broker.start("nas")
    (recovered,) = broker.recovered
    assert (recovered.symbol, recovered.qty, recovered.ticket) == ("NAS100", Decimal("0.10"), 42)
    assert recovered.contract_size == 10  # what the session's money figures of it use
    wrong, _ = make(httpserver, tmp_path, "    expected_account_login: 222\n")
    with pytest.raises(BrokerRefused) as info:
        await wrong.start("nas")
    assert info.value.diagnostics[0].code == "account-mismatch"


async def test_poller_turns_a_vanished_ticket_into_its_closing_fill(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/health/ready").respond_with_json({"status": "ready"})
    httpserver.expect_request("/account").respond_with_json({"login": 1})
    httpserver.expect_oneshot_request("/get_positions").respond_with_json([POSITION])
    httpserver.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    broker, events = make(httpserver, tmp_path)
    await broker.start("nas")
    httpserver.expect_oneshot_request("/get_positions").respond_with_data("oops", status=500)
    httpserver.expect_oneshot_request("/get_positions").respond_with_data("oops", status=500)
    httpserver.expect_oneshot_request("/get_positions").respond_with_data("oops", status=500)
    notices: list[VenueNotice] = []
    broker.bus.subscribe(VenueNotice, notices.append)
    assert await broker.poll() == 0 and events == []  # a failed read is not "flat"
    assert [n.level for n in notices] == ["warning"] and "magic 10005" in notices[0].message
    httpserver.expect_request("/get_positions").respond_with_json({"data": []})
    httpserver.expect_request("/history_deals_get").respond_with_json(
        {
            "data": [
                {"ticket": 9, "position_id": 77, "entry": 1, "price": "1", "reason": 0},
                {
                    "ticket": 10,
                    "position_id": 42,
                    "entry": 1,
                    "volume": "0.10",
                    "price": "17000.0",
                    "reason": 4,
                },
            ]
        }
    )
    assert await broker.poll() == 1
    assert [n.level for n in notices] == ["warning", "info"]  # said once, and when it ended
    deals = next(r for r, _ in httpserver.log if r.path == "/history_deals_get")
    assert deals.args["position"] == "42" and deals.args["from_date"] < deals.args["to_date"]
    (fill,) = events
    assert (fill.side, fill.price, fill.reason, fill.symbol) == (
        "sell",
        Decimal("17000.0"),
        "stop_loss",
        "NAS100",
    )


@pytest.fixture
def threaded() -> Iterator[HTTPServer]:
    """A gateway that answers requests side by side, as a real one does."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


class InFlight:
    """An /order handler that answers after ``delay`` and records how many orders overlapped."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.now = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, req: Request) -> Response:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.delay)
        with self.lock:
            self.now -= 1
        body = json.loads(req.data)
        result = {"retcode": 10009, "order": 1, "price": "100", "volume": str(body["volume"])}
        return Response(json.dumps({"result": result}), content_type="application/json")


def leg(symbol: str, cid: str) -> OrderRequest:
    return OrderRequest(
        cid,
        "pair",
        "a",
        "EXNESS-PERSONAL",
        symbol,
        "buy",
        Decimal("0.1"),
        T0,  # type: ignore[arg-type]
    )


async def test_orders_of_two_symbols_travel_side_by_side(
    threaded: HTTPServer, tmp_path: Path
) -> None:
    handler = InFlight(0.3)
    threaded.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    threaded.expect_request("/symbol_info/US30m").respond_with_json(INFO)
    threaded.expect_request("/order", method="POST").respond_with_handler(handler)
    broker, events = make(threaded, tmp_path)
    await send(broker, leg("NAS100", "pair-000001"), leg("US30", "pair-000002"))
    assert handler.most == 2  # both legs were at the gateway at once
    assert sorted(e.symbol for e in events if isinstance(e, OrderFilled)) == ["NAS100", "US30"]


async def test_orders_of_one_symbol_go_one_after_another_in_order(
    threaded: HTTPServer, tmp_path: Path
) -> None:
    handler = InFlight(0.05)
    threaded.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    threaded.expect_request("/order", method="POST").respond_with_handler(handler)
    broker, events = make(threaded, tmp_path)
    ids = [f"nas-{i:06d}" for i in range(1, 5)]
    await send(broker, *(leg("NAS100", cid) for cid in ids))
    assert handler.most == 1
    sent = [json.loads(r.data)["client_order_id"] for r, _ in threaded.log if r.path == "/order"]
    assert sent == ids
    assert [e.client_id for e in events if isinstance(e, OrderFilled)] == ids


async def test_stopping_while_an_order_is_in_flight_waits_for_its_answer(
    threaded: HTTPServer, tmp_path: Path
) -> None:
    threaded.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    threaded.expect_request("/order", method="POST").respond_with_handler(InFlight(0.3))
    broker, events = make(threaded, tmp_path)
    broker.submit(request())
    with pytest.raises(TimeoutError):  # the caller gives up waiting (Ctrl-C, a deadline) ...
        await asyncio.wait_for(broker.settle(), 0.05)
    await broker.aclose()  # ... the order is not abandoned: its answer still arrives
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderFilled"]
    assert sum(r.path == "/order" for r, _ in threaded.log) == 1


async def test_a_close_during_a_slow_poll_is_reported_once(
    threaded: HTTPServer, tmp_path: Path
) -> None:
    calls: list[int] = []

    def positions(req: Request) -> Response:
        calls.append(1)
        if len(calls) == 2:  # the poll's read: slow, and taken before the close
            time.sleep(0.3)
        rows = [POSITION] if len(calls) <= 2 else []
        return Response(json.dumps(rows), content_type="application/json")

    threaded.expect_request("/health/ready").respond_with_json({"status": "ready"})
    threaded.expect_request("/account").respond_with_json({"login": 1})
    threaded.expect_request("/get_positions").respond_with_handler(positions)
    threaded.expect_request("/symbol_info/USTECm").respond_with_json(INFO)
    threaded.expect_request("/close_position", method="POST").respond_with_json(
        {"result": {"retcode": 10009, "order": 42, "price": "18100", "volume": "0.10"}}
    )
    threaded.expect_request("/history_deals_get").respond_with_json(
        [{"ticket": 10, "position_id": 42, "entry": 1, "volume": "0.10", "price": "18100"}]
    )
    broker, events = make(threaded, tmp_path)
    await broker.start("nas")
    polling = asyncio.create_task(broker.poll())
    await asyncio.sleep(0.1)  # the poll is waiting for its snapshot, which still has 42
    broker.close_position("EXNESS-PERSONAL", "NAS100")
    await broker.settle()
    assert await polling == 0
    assert await broker.poll() == 0
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.side, f.price) for f in fills] == [("sell", Decimal("18100"))]


def hedging(server: HTTPServer) -> None:
    server.expect_request("/health/ready").respond_with_json({"status": "ready"})
    server.expect_request("/account").respond_with_json({"login": 1, "margin_mode": 2})
    server.expect_request("/symbol_info/USTECm").respond_with_json(INFO)


async def test_on_a_hedging_account_an_opposite_order_closes_by_ticket(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    hedging(httpserver)
    httpserver.expect_oneshot_request("/get_positions").respond_with_json([POSITION])  # long 0.1
    httpserver.expect_request("/close_position", method="POST").respond_with_json(
        {"result": {"retcode": 10009, "order": 77, "price": "18100"}}
    )
    broker, events = make(httpserver, tmp_path)
    await broker.start("nas")
    await send(broker, request(side="sell", cid="nas-000002"))
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderFilled"]
    assert (events[1].side, events[1].qty, events[1].price) == (
        "sell",
        Decimal("0.10"),
        Decimal("18100"),
    )
    (close, _) = next(x for x in httpserver.log if x[0].path == "/close_position")
    assert json.loads(close.data) == {"position": {"ticket": 42}}
    assert "Idempotency-Key" not in close.headers  # only /order deduplicates
    assert all(r.path != "/order" for r, _ in httpserver.log)  # no hedge opened


@pytest.mark.parametrize(
    ("after", "outcome"),
    [([], ["OrderAccepted", "OrderFilled"]), ([POSITION], ["OrderRejected"])],
)
async def test_a_close_of_unknown_outcome_is_settled_from_the_ticket(
    httpserver: HTTPServer, tmp_path: Path, after: list[dict[str, object]], outcome: list[str]
) -> None:
    hedging(httpserver)
    httpserver.expect_oneshot_request("/get_positions").respond_with_json([POSITION])
    httpserver.expect_request("/close_position", method="POST").respond_with_data("", status=502)
    httpserver.expect_request("/get_positions").respond_with_json(after)
    httpserver.expect_request("/history_deals_get", query_string=None).respond_with_json(
        [{"ticket": 10, "position_id": 42, "entry": 1, "volume": "0.10", "price": "18090"}]
    )
    broker, events = make(httpserver, tmp_path)
    await broker.start("nas")
    await send(broker, request(side="sell", cid="nas-000002"))
    assert [type(e).__name__ for e in events] == outcome
    if after:  # the ticket is still whole after three reads: it was not closed
        assert "not closed" in events[0].reason
    else:
        assert events[1].price == Decimal("18090")
    assert sum(r.path == "/close_position" for r, _ in httpserver.log) == 1  # never resent


async def test_stops_go_out_as_prices_of_the_symbol(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/symbol_info/USTECm").respond_with_json({**INFO, "digits": 2})
    httpserver.expect_request("/order", method="POST").respond_with_json(
        {"result": {"retcode": 10009, "order": 42, "price": "18000.5", "volume": "0.1"}}
    )
    broker, _ = make(httpserver, tmp_path)
    order = request()
    await send(
        broker,
        OrderRequest(
            *(order.client_id, order.strategy, order.alias, order.label, order.symbol),
            *(order.side, order.qty, order.time),
            Decimal("17000.12567"),  # BY 5.5 PCT of an entry: more decimals than the venue has
            Decimal("19000.1"),
        ),
    )
    body = json.loads(next(r for r, _ in httpserver.log if r.path == "/order").data)
    assert (body["sl"], body["tp"]) == (17000.13, 19000.1)


async def test_a_position_to_recover_whose_symbol_cannot_be_read_refuses_the_start(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """Without its contract size the session could not say what the position is worth."""
    httpserver.expect_request("/health/ready").respond_with_json({"status": "ready"})
    httpserver.expect_request("/account").respond_with_json({"login": 1})
    httpserver.expect_request("/get_positions").respond_with_json([POSITION])
    httpserver.expect_request("/symbol_info/USTECm").respond_with_data("down", status=503)
    broker, _ = make(httpserver, tmp_path)
    with pytest.raises(BrokerRefused) as info:
        await broker.start("nas")
    (d,) = info.value.diagnostics
    assert d.code == "gateway-unavailable" and "position to recover" in d.message
