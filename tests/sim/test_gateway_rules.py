"""The simulator answers as real mt5-gateways and MQL5 do (reference/mt5-gateway.md, "What real
gateways do"), checked through real HTTP the way a client would notice it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from qkt.brokers.mt5.clock import to_utc, wall_date
from qkt.config.timezones import server_zone
from qkt.sim import SimServer, SimState


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Gateway:
    """A client of one simulated gateway: raw HTTP, answers as JSON."""

    def __init__(self, sim: SimServer, key: str | None = None) -> None:
        self.sim = sim
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=sim.url, headers=headers, timeout=5)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.http.post(path, json=body, headers=headers)

    def data(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def order(
        self, side: str = "BUY", volume: str = "0.1", key: str | None = None, **extra: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {"symbol": "EURUSDm", "type": side, "volume": volume, "magic": 7}
        if key is not None:
            body["client_order_id"] = key
        return self.post("/order", {**body, **extra})

    def filled(self, side: str = "BUY", volume: str = "0.1", **extra: Any) -> dict[str, Any]:
        response = self.order(side, volume, **extra)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def positions(self, **params: Any) -> list[dict[str, Any]]:
        return self.data("/get_positions", **params)  # type: ignore[no-any-return]

    def deals(self, **params: Any) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        zone = self.sim.state.zone
        window = {
            "from_date": wall_date(now - timedelta(hours=1), zone),
            "to_date": wall_date(now + timedelta(hours=1), zone),
        }
        return self.data("/history_deals_get", **{**window, **params})  # type: ignore[no-any-return]

    def faults(self, **switches: Any) -> None:
        self.post("/_sim/faults", switches).raise_for_status()

    def quote(self, bid: str, ask: str, symbol: str = "EURUSDm") -> None:
        self.post("/_sim/quote", {"symbol": symbol, "bid": bid, "ask": ask}).raise_for_status()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gw(clock: Clock) -> Iterator[Gateway]:
    state = SimState(seed=3, symbols=("EURUSDm", "XAUUSDm"), monotonic=clock)
    with SimServer(state) as sim:
        gateway = Gateway(sim)
        yield gateway
        gateway.http.close()


def quote_of(gw: Gateway) -> tuple[Decimal, Decimal]:
    tick = gw.get("/symbol_info_tick/EURUSDm").json()
    return Decimal(str(tick["bid"])), Decimal(str(tick["ask"]))


def assert_error(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["ok"] is False and body["error_type"] == error_type
    assert body["error"] and body["request_id"]
    return body


# ---------------------------------------------------------------- envelope, auth, health
def test_every_answer_carries_ok_and_a_request_id_and_lists_come_wrapped(gw: Gateway) -> None:
    account = gw.get("/account").json()
    assert account["ok"] is True and account["request_id"] and account["login"] == 12345678
    info = gw.get("/symbol_info/EURUSDm").json()
    assert info["ok"] is True and info["digits"] == 5
    tick = gw.get("/symbol_info_tick/EURUSDm").json()
    assert tick["ok"] is True and tick["bid"] < tick["ask"]
    gw.filled()
    positions = gw.get("/get_positions").json()
    assert positions["ok"] is True and positions["request_id"] != account["request_id"]
    assert isinstance(positions["data"], list) and len(positions["data"]) == 1
    assert gw.get("/health/ready").json()["ok"] is True
    traced = gw.http.get("/account", headers={"X-Request-ID": "trace-1"})
    assert traced.json()["request_id"] == "trace-1"


def test_pending_orders_come_as_total_and_orders_and_ignore_magic(gw: Gateway) -> None:
    bid, _ = quote_of(gw)
    below = str(bid - Decimal("0.00500"))
    placed = gw.post(
        "/order",
        {"symbol": "EURUSDm", "type": "BUY_LIMIT", "volume": 0.2, "price": below, "magic": 7},
    )
    assert placed.status_code == 200 and placed.json()["state"] == "placed"
    assert placed.json()["result"]["retcode"] == 10008
    answer = gw.get("/orders", magic=999).json()  # a magic no order has: ignored
    assert answer["ok"] is True and answer["request_id"] and answer["total"] == 1
    (row,) = answer["orders"]
    assert (row["ticket"], row["symbol"], row["magic"]) == (
        placed.json()["result"]["order"],
        "EURUSDm",
        7,
    )
    assert (row["type"], row["type_str"]) == (2, "BUY_LIMIT")
    assert Decimal(row["volume_initial"]) == Decimal(row["volume_current"]) == Decimal("0.2")
    assert gw.positions() == []
    gw.quote(str(Decimal(below) - Decimal("0.0001")), below)  # the ask reaches the limit
    assert gw.get("/orders").json()["total"] == 0
    (position,) = gw.positions()
    assert position["ticket"] == row["ticket"] and Decimal(position["volume"]) == Decimal("0.2")


def test_errors_have_the_gateway_envelope(gw: Gateway) -> None:
    body = assert_error(gw.get("/symbol_info/NOPE"), 404, "not_found")
    assert "NOPE" in body["error"]
    assert_error(gw.get("/symbol_info_tick/NOPE"), 404, "not_found")
    assert_error(gw.get("/no/such/route"), 404, "not_found")


def test_auth_on_every_endpoint_but_liveness() -> None:
    with SimServer(SimState(symbols=("EURUSDm",)), api_key="sekret") as sim:
        anonymous, wrong, right = Gateway(sim), Gateway(sim, "nope"), Gateway(sim, "sekret")
        assert anonymous.get("/health/live").status_code == 200
        for path in ("/health/ready", "/account", "/get_positions", "/orders", "/reconcile"):
            assert_error(anonymous.get(path), 401, "authentication_error")
        assert_error(wrong.get("/health/ready"), 401, "authentication_error")
        assert_error(wrong.order(), 401, "authentication_error")
        assert sim.state.received == []
        ready = right.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready" and ready.json()["mt5_status"] == "connected"


def test_a_disconnected_terminal_is_not_ready_for_a_while(gw: Gateway, clock: Clock) -> None:
    gw.faults(not_ready_ms=5000)
    ready = gw.get("/health/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready" and body["error"]
    assert body["mt5_status"] != "connected" and body["kill_switch_active"] is False
    assert_error(gw.get("/account"), 503, "mt5_unavailable")
    assert_error(gw.order(), 503, "mt5_unavailable")
    clock.now += 4.9
    assert gw.get("/health/ready").status_code == 503
    clock.now += 0.2
    assert gw.get("/health/ready").status_code == 200
    assert gw.get("/account").status_code == 200
    assert gw.positions() == []  # nothing was placed meanwhile


def test_the_kill_switch_halts_trading_and_readiness(gw: Gateway) -> None:
    ticket = gw.filled()["result"]["order"]
    gw.faults(kill_switch=True)
    ready = gw.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["kill_switch_active"] is True
    assert ready.json()["status"] == "not_ready"
    assert_error(gw.order(key="k-2"), 423, "kill_switch")
    assert_error(gw.post("/close_position", {"position": {"ticket": ticket}}), 423, "kill_switch")
    partial = gw.post("/position_close_partial", {"ticket": ticket, "volume": 0.05})
    assert_error(partial, 423, "kill_switch")
    assert_error(gw.post("/modify_sl_tp", {"position": ticket, "sl": 1.0}), 423, "kill_switch")
    assert gw.get("/account").status_code == 200  # reads still answer
    (position,) = gw.positions()
    assert Decimal(position["volume"]) == Decimal("0.1") and position["sl"] in ("0", 0)
    gw.faults(kill_switch=False)
    assert gw.get("/health/ready").status_code == 200
    assert gw.order(key="k-2").status_code == 200


def test_mt5_unavailable_places_nothing(gw: Gateway) -> None:
    gw.faults(unavailable_next=True)
    assert_error(gw.order(key="k-1"), 503, "mt5_unavailable")
    assert gw.positions() == []
    assert gw.order(key="k-1").status_code == 200  # not stored: the same key places it now
    assert len(gw.positions()) == 1


def test_in_progress_is_answered_but_the_order_is_placed(gw: Gateway) -> None:
    gw.faults(in_progress_next=True)
    assert_error(gw.order(key="k-1"), 409, "idempotency_in_progress")
    (position,) = gw.positions()
    again = gw.order(key="k-1")  # the request that was running has finished: its answer
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["result"]["order"] == position["ticket"]
    assert len(gw.positions()) == 1


def test_a_dropped_answer_is_502_unknown_outcome_and_replayed(gw: Gateway) -> None:
    gw.faults(drop_after_order=True)
    assert_error(gw.order(key="k-1"), 502, "unknown_outcome")
    assert len(gw.positions()) == 1  # it was placed
    again = gw.order(key="k-1")
    assert again.status_code == 502 and again.headers["Idempotent-Replayed"] == "true"
    assert len(gw.positions()) == 1


def test_a_requote_places_nothing(gw: Gateway) -> None:
    gw.faults(requote_next=True)
    requote = gw.order(key="k-1")
    assert requote.status_code == 409 and requote.json()["error_type"] == "requote"
    assert gw.positions() == []


def test_the_terminal_failing_to_count_answers_an_empty_list_once(gw: Gateway) -> None:
    gw.filled()
    gw.faults(empty_positions_next=True)
    empty = gw.get("/get_positions")
    assert empty.status_code == 200 and empty.json()["data"] == []
    assert len(gw.positions()) == 1
    assert len(gw.data("/reconcile", magic=7)["positions"]) == 1


# ---------------------------------------------------------------- POST /order
def test_order_fields_are_checked_by_the_gateway(gw: Gateway) -> None:
    assert_error(gw.order(key="k-1", stoplimit=1.1), 400, "validation_error")
    assert_error(gw.order(volume="100.01"), 400, "validation_error")  # over MAX_ORDER_VOLUME
    assert_error(gw.order(deviation=1001), 400, "validation_error")
    assert_error(gw.order(deviation=-1), 400, "validation_error")
    assert_error(gw.order(magic=-1), 400, "validation_error")
    assert_error(gw.order(magic=2**32), 400, "validation_error")
    assert_error(gw.order(type="BUY_STOP_LIMIT"), 400, "validation_error")
    assert_error(gw.post("/order", [1, 2]), 400, "validation_error")
    assert gw.positions() == []
    assert gw.order(deviation=1000, magic=2**32 - 1).status_code == 200


def test_a_smaller_maximum_volume_is_the_gateways() -> None:
    with SimServer(SimState(symbols=("EURUSDm",), max_order_volume=Decimal(1))) as sim:
        gw = Gateway(sim)
        assert_error(gw.order(volume="1.5"), 400, "validation_error")
        assert gw.order(volume="1").status_code == 200


def test_volume_is_rounded_down_to_the_step(gw: Gateway) -> None:
    answer = gw.filled(volume="0.129")
    assert Decimal(answer["result"]["volume"]) == Decimal("0.12")
    (position,) = gw.positions()
    assert Decimal(position["volume"]) == Decimal("0.12")
    refused = assert_error(gw.order(volume="0.009"), 400, "validation_error")  # rounds to 0
    assert refused["details"]["retcode"] == 10014 and "result" not in refused


def test_a_missing_magic_is_derived_from_the_idempotency_key() -> None:
    def magics(*keys: str) -> list[int]:
        with SimServer(SimState(symbols=("EURUSDm",), hedging=True)) as sim:
            gw = Gateway(sim)
            for key in keys:
                body = {"symbol": "EURUSDm", "type": "BUY", "volume": 0.1}
                assert gw.post("/order", body, **{"Idempotency-Key": key}).status_code == 200
            return [p["magic"] for p in gw.positions()]

    first = magics("key-a", "key-b")
    assert len(set(first)) == 2 and all(0 < m < 2**32 for m in first)
    assert magics("key-a") == first[:1]  # the same key, the same magic, on any gateway


def test_the_terminals_check_refuses_with_a_retcode_and_no_result(gw: Gateway) -> None:
    bid, ask = quote_of(gw)
    cases = [
        ({"sl": str(ask + Decimal("0.01"))}, 10016),  # a buy's stop above the fill
        ({"tp": str(bid - Decimal("0.01"))}, 10016),  # a buy's target below it
        ({"sl": str(bid - Decimal("0.010001"))}, 10016),  # not a price of the symbol
        ({"volume": "500"}, None),  # the gateway's own limit: no retcode
    ]
    for extra, retcode in cases:
        body = assert_error(gw.order(**extra), 400, "validation_error")
        assert "result" not in body
        assert body.get("details", {}).get("retcode") == retcode
    sell = assert_error(gw.order("SELL", sl=str(bid - Decimal("0.01"))), 400, "validation_error")
    assert sell["details"]["retcode"] == 10016
    unknown = gw.post("/order", {"symbol": "NOPE", "type": "BUY", "volume": 0.1})
    assert "result" not in assert_error(unknown, 400, "validation_error")
    assert gw.positions() == []


def test_a_fill_answers_the_gateways_success_body(gw: Gateway) -> None:
    bid, ask = quote_of(gw)
    body = gw.filled(key="cid-1", sl=str(bid - Decimal("0.01")), tp=str(ask + Decimal("0.01")))
    assert body["ok"] is True and body["request_id"] and body["message"]
    assert body["state"] == "executed" and body["partial_fill"] is False
    assert body["client_order_id"] == "cid-1"
    result = body["result"]
    assert result["retcode"] == 10009 and result["comment"] == "Request executed"
    assert Decimal(str(result["price"])) == ask
    assert Decimal(str(result["ask"])) == ask and Decimal(str(result["bid"])) == bid
    assert Decimal(str(result["volume"])) == Decimal("0.1")
    assert result["order"] and result["deal"] and result["order"] != result["deal"]
    (position,) = gw.positions()
    assert position["ticket"] == result["order"]
    header_only = gw.post(
        "/order",
        {"symbol": "EURUSDm", "type": "BUY", "volume": 0.1, "magic": 7},
        **{"Idempotency-Key": "cid-2"},
    )
    assert header_only.json()["client_order_id"] == "cid-2"


# ---------------------------------------------------------------- idempotency
def test_the_same_key_and_body_replay_the_stored_answer(gw: Gateway) -> None:
    first = gw.order(key="cid-1", **{})
    headers = {"Idempotency-Key": "cid-1"}
    again = gw.post("/order", {"symbol": "EURUSDm", "type": "BUY", "volume": "0.1", "magic": 7,
                               "client_order_id": "cid-1"}, **headers)  # fmt: skip
    assert first.status_code == again.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["result"] == first.json()["result"]
    (position,) = gw.positions()
    assert Decimal(position["volume"]) == Decimal("0.1")  # placed once
    conflict = gw.order(volume="0.2", key="cid-1")
    assert_error(conflict, 409, "idempotency_conflict")
    assert Decimal(gw.positions()[0]["volume"]) == Decimal("0.1")
    assert len(gw.sim.state.received) == 3  # every request reached the gateway


def test_idempotency_keys_are_checked(gw: Gateway) -> None:
    mismatch = gw.post(
        "/order",
        {"symbol": "EURUSDm", "type": "BUY", "volume": 0.1, "client_order_id": "a"},
        **{"Idempotency-Key": "b"},
    )
    assert_error(mismatch, 400, "validation_error")
    assert_error(gw.order(key=""), 400, "validation_error")
    assert_error(gw.order(key="k" * 129), 400, "validation_error")
    assert gw.positions() == []
    assert gw.order(key="k" * 128).status_code == 200


def test_refusals_are_not_stored(gw: Gateway) -> None:
    bid, _ = quote_of(gw)
    refused = gw.order(key="cid-1", sl=str(bid + Decimal("0.01")))
    assert refused.status_code == 400
    again = gw.order(key="cid-1", sl=str(bid + Decimal("0.01")))
    assert again.status_code == 400 and "Idempotent-Replayed" not in again.headers
    assert gw.order(key="cid-1").status_code == 200  # another body: no conflict with a refusal


def test_stored_answers_last_an_hour_and_die_with_the_gateway(clock: Clock) -> None:
    state = SimState(symbols=("EURUSDm",), monotonic=clock, hedging=True)
    with SimServer(state) as sim:
        gw = Gateway(sim)
        gw.filled(key="cid-1")
        clock.now += 3599
        assert gw.order(key="cid-1").headers.get("Idempotent-Replayed") == "true"
        clock.now += 2
        assert "Idempotent-Replayed" not in gw.order(key="cid-1").headers
        assert len(gw.positions()) == 2
    with SimServer(state) as restarted:  # the same account, a new gateway process
        again = Gateway(restarted).order(key="cid-1")
        assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
        assert len(state.positions) == 3


def test_closes_and_modifies_do_not_deduplicate(gw: Gateway) -> None:
    ticket = gw.filled(volume="0.5")["result"]["order"]
    key = {"Idempotency-Key": "same"}
    for _ in range(2):
        partial = gw.post("/position_close_partial", {"ticket": ticket, "volume": 0.1}, **key)
        assert partial.status_code == 200 and "Idempotent-Replayed" not in partial.headers
    assert Decimal(gw.positions()[0]["volume"]) == Decimal("0.3")
    closed = gw.post("/close_position", {"position": {"ticket": ticket}}, **key)
    assert closed.status_code == 200
    assert gw.positions() == []


# ---------------------------------------------------------------- netting and hedging
def test_netting_one_position_per_symbol_for_the_account(gw: Gateway) -> None:
    first = gw.filled(volume="0.1")
    second = gw.filled(volume="0.1", magic=8)  # another magic nets into the same position
    (position,) = gw.positions()
    assert position["magic"] == 7 and Decimal(position["volume"]) == Decimal("0.2")
    assert position["ticket"] == position["identifier"] == first["result"]["order"]
    assert second["result"]["order"] != position["ticket"]  # an order ticket, not a position's
    assert gw.positions(magic=8) == []
    gold = gw.post("/order", {"symbol": "XAUUSDm", "type": "SELL", "volume": 0.1, "magic": 8})
    assert gold.status_code == 200
    assert len(gw.positions()) == 2


def test_a_same_side_order_adds_at_the_weighted_price_and_sets_the_levels_it_gives(
    gw: Gateway,
) -> None:
    gw.quote("1.10000", "1.10010")
    opened = gw.filled(volume="0.1", sl="1.09000", tp="1.12000")
    gw.quote("1.10290", "1.10300")
    added = gw.filled(volume="0.3", sl="1.09500")  # gives a stop, no target
    (position,) = gw.positions()
    assert position["ticket"] == position["identifier"] == opened["result"]["order"]
    assert Decimal(position["volume"]) == Decimal("0.4")
    assert Decimal(position["price_open"]) == Decimal("1.102275").quantize(Decimal("0.00001"))
    assert Decimal(position["sl"]) == Decimal("1.09500")  # replaced
    assert Decimal(position["tp"]) == Decimal("1.12000")  # kept
    deals = gw.deals()
    assert [(d["order"], d["entry"]) for d in deals] == [
        (opened["result"]["order"], 0),
        (added["result"]["order"], 0),
    ]
    assert {d["position_id"] for d in deals} == {position["identifier"]}


def test_an_opposite_order_reduces_then_closes_the_position(gw: Gateway) -> None:
    opened = gw.filled(volume="0.3")["result"]["order"]
    gw.filled("SELL", "0.1")
    (position,) = gw.positions()
    assert (position["ticket"], position["identifier"], position["type"]) == (opened, opened, 0)
    assert Decimal(position["volume"]) == Decimal("0.2")
    gw.filled("SELL", "0.2")
    assert gw.positions() == []
    assert [(d["type"], d["entry"], d["position_id"]) for d in gw.deals()] == [
        (0, 0, opened),
        (1, 1, opened),
        (1, 1, opened),
    ]


def test_a_reversal_keeps_the_identifier_and_takes_the_reversing_orders_ticket(
    gw: Gateway,
) -> None:
    bid, ask = quote_of(gw)
    opened = gw.filled(volume="0.2", sl=str(bid - Decimal("0.01")), comment="first")
    reversing = gw.filled("SELL", "0.5", magic=9, comment="second")
    (position,) = gw.positions()
    assert position["identifier"] == opened["result"]["order"]
    assert position["ticket"] == reversing["result"]["order"]
    assert (position["type"], Decimal(position["volume"])) == (1, Decimal("0.3"))
    assert Decimal(position["price_open"]) == bid  # the sell's fill
    assert Decimal(position["sl"]) == Decimal(position["tp"]) == 0  # the sell set none
    assert (position["magic"], position["comment"]) == (9, "second")
    deals = gw.deals()
    assert [(d["entry"], Decimal(d["volume"])) for d in deals] == [
        (0, Decimal("0.2")),
        (2, Decimal("0.5")),  # ONE deal for the reversal
    ]
    assert all(d["position_id"] == position["identifier"] for d in deals)
    assert deals[1]["order"] == reversing["result"]["order"] and deals[1]["comment"] == "second"
    # Its stop at the venue closes it with a deal on the same identifier.
    stop = str(ask + Decimal("0.01"))
    modified = gw.post("/modify_sl_tp", {"position": position["ticket"], "sl": stop})
    assert modified.status_code == 200
    gw.quote(stop, str(Decimal(stop) + Decimal("0.0001")))
    assert gw.positions() == []
    last = gw.deals()[-1]
    assert (last["entry"], last["reason"], last["position_id"]) == (1, 4, position["identifier"])
    assert Decimal(last["price"]) == Decimal(stop)


def test_a_reversal_takes_the_reversing_orders_levels() -> None:
    with SimServer(SimState(symbols=("EURUSDm",))) as sim:
        gw = Gateway(sim)
        bid, ask = quote_of(gw)
        gw.filled(volume="0.1", sl=str(bid - Decimal("0.01")))
        gw.filled("SELL", "0.3", sl=str(ask + Decimal("0.02")), tp=str(bid - Decimal("0.02")))
        (position,) = gw.positions()
        assert Decimal(position["sl"]) == ask + Decimal("0.02")
        assert Decimal(position["tp"]) == bid - Decimal("0.02")


def test_hedging_every_order_opens_its_own_position() -> None:
    with SimServer(SimState(symbols=("EURUSDm",), hedging=True)) as sim:
        gw = Gateway(sim)
        assert gw.get("/account").json()["margin_mode"] == 2
        orders = [gw.filled(side, "0.1")["result"]["order"] for side in ("BUY", "BUY", "SELL")]
        positions = gw.positions()
        assert [p["ticket"] for p in positions] == orders
        assert all(p["ticket"] == p["identifier"] for p in positions)
        assert [p["type"] for p in positions] == [0, 0, 1]
        assert [d["entry"] for d in gw.deals()] == [0, 0, 0]


# ---------------------------------------------------------------- deals and comments
def test_deals_carry_the_mt5_fields(gw: Gateway) -> None:
    order = gw.filled(comment="entry")["result"]
    gw.post("/close_position", {"position": {"ticket": order["order"]}})
    opening, closing = gw.deals()
    for deal in (opening, closing):
        for name in ("ticket", "order", "position_id", "symbol", "type", "entry", "volume",
                     "price", "profit", "magic", "comment", "reason", "time", "time_msc"):  # fmt: skip
            assert name in deal
        assert deal["time"] == deal["time_msc"] // 1000
    assert (opening["ticket"], opening["order"], opening["comment"]) == (
        order["deal"],
        order["order"],
        "entry",
    )
    assert (opening["entry"], opening["reason"], opening["magic"]) == (0, 0, 7)
    assert (closing["entry"], closing["type"], closing["position_id"]) == (1, 1, order["order"])
    assert closing["order"] != order["order"]  # the close is an order of its own


def test_deal_history_needs_a_window_and_returns_all_of_it(gw: Gateway) -> None:
    first = gw.filled()["result"]["order"]
    gold = gw.post("/order", {"symbol": "XAUUSDm", "type": "BUY", "volume": 0.1, "magic": 7})
    second = gold.json()["result"]["order"]
    now = datetime.now(UTC)
    zone = gw.sim.state.zone
    assert_error(gw.get("/history_deals_get"), 400, "validation_error")
    assert_error(gw.get("/history_deals_get", position=first), 400, "validation_error")
    assert_error(gw.get("/history_deals_get", from_date=wall_date(now, zone)), 400,
                 "validation_error")  # fmt: skip
    bad = gw.get("/history_deals_get", from_date="yesterday", to_date="today")
    assert_error(bad, 400, "validation_error")
    # A real gateway's quirk: position= still answers every deal of the window.
    assert {d["position_id"] for d in gw.deals(position=first)} == {first, second}
    past = gw.data(
        "/history_deals_get",
        from_date=wall_date(now - timedelta(days=2), zone),
        to_date=wall_date(now - timedelta(days=1), zone),
    )
    assert past == []
    zulu = gw.data(
        "/history_deals_get",
        from_date=wall_date(now - timedelta(minutes=5), zone) + "Z",
        to_date=wall_date(now + timedelta(minutes=5), zone) + "Z",
    )
    assert len(zulu) == 2


def test_a_gateway_that_filters_deals_by_position() -> None:
    state = SimState(symbols=("EURUSDm", "XAUUSDm"), deals_filter_position=True)
    with SimServer(state) as sim:
        gw = Gateway(sim)
        first = gw.filled()["result"]["order"]
        gw.post("/order", {"symbol": "XAUUSDm", "type": "BUY", "volume": 0.1, "magic": 7})
        assert [d["position_id"] for d in gw.deals(position=first)] == [first]
        assert len(gw.deals()) == 2


@pytest.mark.parametrize(("kept", "length"), [(16, 16), (64, 25)])
def test_comments_are_cut_by_the_gateway_and_the_terminal(kept: int, length: int) -> None:
    with SimServer(SimState(symbols=("EURUSDm",), comment_kept=kept)) as sim:
        gw = Gateway(sim)
        comment = "qkt-abcdefghijklmnopqrstuvwxyz-0123456789"
        gw.filled(comment=comment)
        (position,) = gw.positions()
        (deal,) = gw.deals()
        assert position["comment"] == deal["comment"] == comment[:length]
        assert "client_order_id" not in position


# ---------------------------------------------------------------- broker time
def test_times_are_the_brokers_wall_clock() -> None:
    state = SimState(symbols=("EURUSDm",), server_time_zone="ny-close")
    zone = server_zone("ny-close")
    with SimServer(state) as sim:
        gw = Gateway(sim)
        gw.filled()
        tick = gw.get("/symbol_info_tick/EURUSDm").json()
        (position,) = gw.positions()
        now = datetime.now(UTC)
        for stamp in (tick["time_msc"], position["time_msc"]):
            assert abs(to_utc(stamp, zone) - now) < timedelta(seconds=5)
            assert round((stamp / 1000 - now.timestamp()) / 3600) in (2, 3)
        # Date parameters are read on the broker's clock too.
        assert len(gw.deals()) == 1
        utc_digits = {
            "from_date": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S"),
            "to_date": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S"),
        }
        assert gw.data("/history_deals_get", **utc_digits) == []
        (deal,) = gw.deals()
        assert abs(to_utc(deal["time_msc"], zone) - now) < timedelta(seconds=5)
        # Bars stay in UTC.
        (bar,) = gw.data("/fetch_data_pos", symbol="EURUSDm", timeframe="M1", start=0, count=1)
        assert 0 <= now.timestamp() - bar["time"] < 120


def test_an_unknown_server_time_zone_is_refused() -> None:
    from typer.testing import CliRunner

    from cli.main import app

    args = ["sim", "gateway", "--port", "5999", "--server-time-zone", "Mars/Olympus"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "--server-time-zone" in result.output and "IANA" in result.output


# ---------------------------------------------------------------- closing and modifying
def test_close_position_closes_the_whole_position(gw: Gateway) -> None:
    ticket = gw.filled(volume="0.4")["result"]["order"]
    assert_error(gw.post("/close_position", {"position": {"ticket": 424242}}), 400,
                 "validation_error")  # fmt: skip
    closed = gw.post("/close_position", {"position": {"ticket": ticket, "volume": 0.1}})
    assert closed.status_code == 200 and closed.json()["result"]["retcode"] == 10009
    assert Decimal(str(closed.json()["result"]["volume"])) == Decimal("0.4")
    assert gw.positions() == []


def test_a_partial_close_takes_less_than_the_position(gw: Gateway) -> None:
    ticket = gw.filled(volume="0.4", comment="entry")["result"]["order"]
    for volume in (0.4, 0.5, 0, -0.1):
        partial = gw.post("/position_close_partial", {"ticket": ticket, "volume": volume})
        assert_error(partial, 400, "validation_error")
    assert_error(gw.post("/position_close_partial", {"ticket": 9999, "volume": 0.1}), 400,
                 "validation_error")  # fmt: skip
    done = gw.post("/position_close_partial", {"ticket": ticket, "volume": 0.15})
    assert done.status_code == 200 and done.json()["result"]["retcode"] == 10009
    (position,) = gw.positions()
    assert Decimal(position["volume"]) == Decimal("0.25") and position["comment"] == "entry"
    last = gw.deals()[-1]
    assert (last["comment"], last["entry"], Decimal(last["volume"])) == (
        "Partial close",
        1,
        Decimal("0.15"),
    )


def test_modify_keeps_an_omitted_level_and_clears_only_when_told(gw: Gateway) -> None:
    bid, ask = quote_of(gw)
    sl, tp = bid - Decimal("0.01"), ask + Decimal("0.01")
    ticket = gw.filled(sl=str(sl), tp=str(tp))["result"]["order"]

    def levels() -> tuple[Decimal, Decimal]:
        (p,) = gw.positions()
        return Decimal(p["sl"]), Decimal(p["tp"])

    tighter = sl + Decimal("0.005")
    assert gw.post("/modify_sl_tp", {"position": ticket, "sl": str(tighter)}).status_code == 200
    assert levels() == (tighter, tp)
    assert_error(gw.post("/modify_sl_tp", {"position": ticket, "tp": None}), 400,
                 "validation_error")  # fmt: skip
    assert_error(gw.post("/modify_sl_tp", {"position": ticket, "sl": str(ask + Decimal("0.01"))}),
                 400, "validation_error")  # fmt: skip
    assert_error(gw.post("/modify_sl_tp", {"position": 999999, "sl": str(sl)}), 400,
                 "validation_error")  # fmt: skip
    assert levels() == (tighter, tp)
    assert gw.post("/modify_sl_tp", {"position": ticket, "clear_tp": True}).status_code == 200
    assert levels() == (tighter, Decimal(0))
    both = {"position": ticket, "tp": str(tp), "clear_sl": True}
    assert gw.post("/modify_sl_tp", both).status_code == 200
    assert levels() == (Decimal(0), tp)


# ---------------------------------------------------------------- reconcile
def test_reconcile_answers_what_the_gateway_knows_of_one_magic(gw: Gateway) -> None:
    ours = gw.filled()["result"]["order"]
    gw.post("/order", {"symbol": "XAUUSDm", "type": "BUY", "volume": 0.1, "magic": 8})
    bid, _ = quote_of(gw)
    pending = {"symbol": "EURUSDm", "type": "BUY_STOP", "volume": 0.1, "magic": 7,
               "price": str(bid + Decimal("0.01"))}  # fmt: skip
    order = gw.post("/order", pending).json()["result"]["order"]
    answer = gw.get("/reconcile", magic=7).json()
    assert answer["ok"] is True and answer["request_id"]
    data = answer["data"]
    assert data["magic"] == 7
    assert [p["ticket"] for p in data["positions"]] == [ours]
    assert [o["ticket"] for o in data["orders"]] == [order]
    assert [d["order"] for d in data["deals"]] == [ours]
    assert_error(gw.get("/reconcile"), 400, "validation_error")
    assert {p["magic"] for p in gw.positions(magic="seven")} == {7, 8}  # not an integer: ignored
    assert [p["magic"] for p in gw.positions(magic=8)] == [8]


def test_an_older_gateway_has_no_reconcile_and_no_bars() -> None:
    with SimServer(SimState(symbols=("EURUSDm",), reconcile=False, bars=False)) as sim:
        gw = Gateway(sim)
        assert gw.get("/reconcile", magic=7).status_code == 404
        assert (
            gw.get("/fetch_data_pos", symbol="EURUSDm", timeframe="M1", count=5).status_code == 404
        )
        now = datetime.now(UTC)
        ranged = gw.get(
            "/fetch_data_range",
            symbol="EURUSDm",
            timeframe="M1",
            from_date=(now - timedelta(hours=1)).isoformat(),
            to_date=now.isoformat(),
        )
        assert ranged.status_code == 404


# ---------------------------------------------------------------- bars
def test_bars_by_range_and_by_position_in_utc(gw: Gateway) -> None:
    now = datetime.now(UTC)
    hour = gw.data(
        "/fetch_data_range",
        symbol="EURUSDm",
        timeframe="M1",
        from_date=(now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        to_date=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert 59 <= len(hour) <= 61
    times = [b["time"] for b in hour]
    assert times == sorted(times) and all(t % 60 == 0 for t in times)
    assert all(b["low"] <= min(b["open"], b["close"]) <= max(b["open"], b["close"]) <= b["high"]
               for b in hour)  # fmt: skip
    for name in ("tick_volume", "spread"):
        assert all(isinstance(b[name], int) for b in hour)
    last = gw.data("/fetch_data_pos", symbol="EURUSDm", timeframe="M1", start=0, count=10)
    assert len(last) == 10 and 0 <= now.timestamp() - last[-1]["time"] < 120  # the newest
    assert last[-2]["close"] == last[-1]["open"]  # the history ends where the quotes start
    bid, _ = quote_of(gw)
    assert Decimal(str(last[-1]["close"])) == bid
    earlier = gw.data("/fetch_data_pos", symbol="EURUSDm", timeframe="M1", start=1, count=9)
    assert earlier == last[:-1]
    days = gw.data("/fetch_data_pos", symbol="EURUSDm", timeframe="D1", start=0, count=10)
    assert 3 <= len(days) <= 4 and all(d["time"] % 86400 == 0 for d in days)


def test_bigger_timeframes_aggregate_the_minutes(gw: Gateway) -> None:
    minutes = gw.data("/fetch_data_pos", symbol="EURUSDm", timeframe="M1", start=0, count=2000)
    hours = gw.data("/fetch_data_pos", symbol="EURUSDm", timeframe="H1", start=0, count=10)
    assert all(h["time"] % 3600 == 0 for h in hours)
    full = hours[-3]  # a whole hour in the past
    inside = [m for m in minutes if full["time"] <= m["time"] < full["time"] + 3600]
    assert len(inside) == 60
    assert (full["open"], full["close"]) == (inside[0]["open"], inside[-1]["close"])
    assert full["high"] == max(m["high"] for m in inside)
    assert full["low"] == min(m["low"] for m in inside)
    assert full["tick_volume"] == sum(m["tick_volume"] for m in inside)


def test_bar_requests_are_checked(gw: Gateway) -> None:
    now = datetime.now(UTC)
    window = {"from_date": (now - timedelta(days=32)).isoformat(), "to_date": now.isoformat()}
    ranged = gw.get("/fetch_data_range", symbol="EURUSDm", timeframe="M1", **window)
    assert_error(ranged, 400, "validation_error")
    assert_error(gw.get("/fetch_data_pos", symbol="EURUSDm", timeframe="W1", count=5), 400,
                 "validation_error")  # fmt: skip
    assert_error(gw.get("/fetch_data_pos", symbol="EURUSDm", timeframe="M1"), 400,
                 "validation_error")  # fmt: skip
    assert_error(gw.get("/fetch_data_pos", symbol="NOPE", timeframe="M1", count=5), 404,
                 "not_found")  # fmt: skip


def test_bars_are_seeded() -> None:
    def history(seed: int) -> list[Any]:
        with SimServer(SimState(seed=seed, symbols=("EURUSDm",))) as sim:
            return Gateway(sim).data(  # type: ignore[no-any-return]
                "/fetch_data_pos", symbol="EURUSDm", timeframe="M5", start=1, count=50
            )

    one = history(1)
    assert [b["close"] for b in one] == [b["close"] for b in history(1)]
    assert [b["close"] for b in one] != [b["close"] for b in history(2)]


# ---------------------------------------------------------------- instruments
def test_symbol_info_says_how_the_instrument_trades(gw: Gateway) -> None:
    info = gw.get("/symbol_info/EURUSDm").json()
    for name in ("trade_contract_size", "volume_min", "volume_max", "volume_step", "point",
                 "trade_stops_level"):  # fmt: skip
        assert name in info
    assert (info["trade_mode"], info["visible"], info["digits"]) == (4, True, 5)


def test_an_instrument_can_be_disabled_close_only_or_stepped_otherwise(gw: Gateway) -> None:
    gw.filled(volume="0.3")
    changed = gw.post("/_sim/symbol", {"symbol": "EURUSDm", "trade_mode": 3})
    assert changed.json()["trade_mode"] == 3
    opening = assert_error(gw.order(), 400, "validation_error")  # close-only: no adding
    assert opening["details"]["retcode"]
    assert_error(gw.order("SELL", "0.5"), 400, "validation_error")  # nor reversing
    assert gw.order("SELL", "0.1").status_code == 200  # reducing is fine
    gw.post("/_sim/symbol", {"symbol": "EURUSDm", "trade_mode": 0})
    assert gw.get("/symbol_info/EURUSDm").json()["trade_mode"] == 0
    assert_error(gw.order("SELL", "0.1"), 400, "validation_error")
    gw.post("/_sim/symbol", {"symbol": "EURUSDm", "trade_mode": 4, "volume_step": "0.1",
                             "volume_min": "0.1", "volume_max": "1"})  # fmt: skip
    assert Decimal(gw.filled(volume="0.29")["result"]["volume"]) == Decimal("0.2")
    assert gw.order(volume="1.1").json()["details"]["retcode"] == 10014


def test_an_unknown_symbol_can_be_created_for_a_test(gw: Gateway) -> None:
    assert gw.get("/symbol_info/US30m").status_code == 404
    created = gw.post("/_sim/symbol", {"symbol": "US30m", "trade_mode": 4, "volume_min": "1"})
    assert created.status_code == 200
    info = gw.get("/symbol_info/US30m").json()
    assert info["volume_min"] == 1 and info["bid"] < info["ask"]
    body = {"symbol": "US30m", "type": "BUY", "volume": 1, "magic": 7}
    assert gw.post("/order", body).status_code == 200
