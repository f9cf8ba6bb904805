"""Every fault switch of the Bybit simulator (``POST /_sim/faults``), its record of creates
(``GET /_sim/orders``) and its request counts (``GET /_sim/requests``), over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qkt.sim.bybit import BybitSimServer, BybitState
from tests.sim.test_bybit_sim import Signed, ok

BUY = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market"}


@pytest.fixture
def bybit() -> Iterator[Signed]:
    with BybitSimServer(BybitState(seed=11)) as sim:
        client = Signed(sim.url)
        client.quote("BTCUSDT", "60000.0", "60000.2")
        yield client
        client.http.close()


def placed(bybit: Signed, link: str) -> list[dict[str, Any]]:
    """The order ``link`` as the venue knows it (realtime finds it open or closed)."""
    query = f"category=linear&symbol=BTCUSDT&orderLinkId={link}"
    return ok(bybit.get("/v5/order/realtime", query))["list"]  # type: ignore[no-any-return]


def received(bybit: Signed) -> list[dict[str, Any]]:
    answer = bybit.http.get("/_sim/orders").json()
    assert answer["ok"] is True
    return answer["data"]  # type: ignore[no-any-return]


def test_latency_delays_every_route(bybit: Signed) -> None:
    bybit.faults(latency_ms=300)
    started = time.monotonic()
    ok(bybit.http.get("/v5/market/time").json())
    ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))
    assert time.monotonic() - started >= 0.6
    bybit.faults(latency_ms=0)
    started = time.monotonic()
    ok(bybit.http.get("/v5/market/time").json())
    assert time.monotonic() - started < 0.3


def test_status_5xx_answers_any_route_503_before_anything(bybit: Signed) -> None:
    bybit.faults(status_5xx=2)
    first = bybit.http.get("/v5/market/tickers?category=linear")
    assert first.status_code == 503 and "json" not in first.headers["content-type"]
    second = bybit.post_raw("/v5/order/create", {**BUY, "qty": "0.001", "orderLinkId": "f-503"})
    assert second.status_code == 503
    assert placed(bybit, "f-503") == []
    assert bybit.http.get("/v5/market/time").status_code == 200


def test_a_5xx_before_placing_places_nothing(bybit: Signed) -> None:
    bybit.faults(create_5xx_before=True)
    answer = bybit.post_raw("/v5/order/create", {**BUY, "qty": "0.001", "orderLinkId": "f-before"})
    assert answer.status_code == 502
    with pytest.raises(json.JSONDecodeError):
        answer.json()
    assert placed(bybit, "f-before") == []
    (record,) = received(bybit)
    assert record["placed"] is False and record["status"] == 502
    assert record["fault"] == "create_5xx_before"
    assert json.loads(record["body"])["orderLinkId"] == "f-before"
    ok(bybit.order(qty="0.001", orderLinkId="f-before"))  # the switch is spent: the id is free


def test_a_5xx_after_placing_leaves_the_order_placed(bybit: Signed) -> None:
    bybit.faults(create_5xx_after=1)
    answer = bybit.post_raw("/v5/order/create", {**BUY, "qty": "0.001", "orderLinkId": "f-after"})
    assert answer.status_code == 502
    (row,) = placed(bybit, "f-after")
    assert row["orderStatus"] == "Filled"
    again = bybit.order(qty="0.001", orderLinkId="f-after")
    assert again["retCode"] == 110072  # the duplicate proves the original exists
    assert [r["placed"] for r in received(bybit)] == [True, False]


def test_a_dropped_answer_is_a_transport_error_after_placing(bybit: Signed) -> None:
    bybit.faults(drop_after_create=True)
    with pytest.raises(httpx.TransportError):
        bybit.post_raw("/v5/order/create", {**BUY, "qty": "0.001", "orderLinkId": "f-drop"})
    (row,) = placed(bybit, "f-drop")
    assert row["orderStatus"] == "Filled"
    (record,) = received(bybit)
    assert record["placed"] is True and record["fault"] == "drop_after_create"
    ok(bybit.order(qty="0.001", orderLinkId="f-next"))  # the next one is answered


def test_malformed_json_is_the_next_answer_whatever_it_is(bybit: Signed) -> None:
    bybit.faults(malformed_next=1)
    answer = bybit.post_raw("/v5/order/create", {**BUY, "qty": "0.001", "orderLinkId": "f-cut"})
    assert answer.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        answer.json()
    assert len(placed(bybit, "f-cut")) == 1  # processed, its answer broken
    bybit.faults(malformed_next=1)
    with pytest.raises(json.JSONDecodeError):
        bybit.http.get("/v5/market/time").json()
    ok(bybit.http.get("/v5/market/time").json())


@pytest.mark.parametrize(
    ("code", "text", "placed_anyway"),
    [(10006, "Too many visits!", False), (10000, "Server Timeout", True),
     (10016, "Internal server error.", False)],
)  # fmt: skip
def test_a_forced_retcode_answers_the_next_create(
    bybit: Signed, code: int, text: str, placed_anyway: bool
) -> None:
    bybit.faults(create_retcode=code, create_retcode_placed=placed_anyway)
    answer = bybit.order(qty="0.001", orderLinkId="f-code")
    assert (answer["retCode"], answer["retMsg"], answer["result"]) == (code, text, {})
    assert len(placed(bybit, "f-code")) == (1 if placed_anyway else 0)
    (record,) = received(bybit)
    assert (record["retCode"], record["placed"]) == (code, placed_anyway)
    assert bybit.order(qty="0.001", orderLinkId="f-code-2")["retCode"] == 0  # only the next


def test_a_clock_offset_moves_the_venue_time_and_the_timestamp_check(bybit: Signed) -> None:
    before = int(ok(bybit.http.get("/v5/market/time").json())["timeSecond"])
    shown = bybit.faults(clock_offset_ms=-3000)
    assert shown["faults"]["clock_offset_ms"] == -3000
    after = int(ok(bybit.http.get("/v5/market/time").json())["timeSecond"])
    assert -5 <= after - before <= -2
    late = bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT")
    assert late["retCode"] == 10002  # this machine's clock is now 3 s fast for the venue
    assert abs(late["time"] - (time.time() * 1000 - 3000)) < 1000
    ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT", ahead_ms=-3000))
    bybit.faults(clock_offset_ms=4000)  # 4 s slow is within the 5 s window
    ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))
    stale = bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT", window="3000")
    assert stale["retCode"] == 10002


def test_unknown_switches_and_bad_values_are_refused(bybit: Signed) -> None:
    for body in ({"no_such": 1}, {"latency_ms": -1}, {"create_retcode_placed": 1},
                 {"clock_offset_ms": "soon"}):  # fmt: skip
        answer = bybit.http.post("/_sim/faults", json=body)
        assert answer.status_code == 400 and answer.json()["ok"] is False, body
    every = bybit.faults()["faults"]
    assert set(every) == {
        "latency_ms", "status_5xx", "create_5xx_before", "create_5xx_after",
        "drop_after_create", "malformed_next", "create_retcode", "create_retcode_placed",
        "clock_offset_ms",
    }  # fmt: skip


def test_every_create_is_recorded_with_its_raw_body_and_outcome(bybit: Signed) -> None:
    spaced = json.dumps({**BUY, "qty": "0.001", "orderLinkId": "rec-1"})
    ok(bybit.post("/v5/order/create", spaced))
    bybit.post("/v5/order/create", spaced, secret="wrong")
    bybit.order(qty="0.0001", orderLinkId="rec-2")
    first, second, third = received(bybit)
    assert first["body"] == spaced and first["placed"] is True and first["retCode"] == 0
    assert first["orderLinkId"] == "rec-1" and first["orderId"]
    assert (second["placed"], second["retCode"]) == (False, 10004)
    assert (third["placed"], third["retCode"]) == (False, 10001)


def test_requests_are_counted_per_route_as_the_gateway_simulator_does(bybit: Signed) -> None:
    bybit.http.post("/_sim/requests/reset")
    bybit.http.get("/v5/market/time")
    bybit.http.get("/v5/market/time")
    bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT")
    bybit.http.get("/v5/no/such")
    counts = bybit.http.get("/_sim/requests").json()
    assert counts["counts"] == {
        "GET /v5/market/time": 2,
        "GET /v5/position/list": 1,
        "GET (no route)": 1,
    }
    assert counts["total"] == 4 and counts["ok"] is True and counts["elapsed_s"] >= 0
    missing = bybit.http.get("/v5/no/such")
    assert missing.status_code == 404 and missing.json()["retCode"] == 10017
    with_body = bybit.http.request("GET", "/v5/position/list?category=linear", content=b"{}")
    assert with_body.status_code == 403  # a GET must not carry a body
    wrong_method = bybit.http.get("/v5/order/create")
    assert wrong_method.status_code == 400 and wrong_method.json()["retCode"] == 10017
