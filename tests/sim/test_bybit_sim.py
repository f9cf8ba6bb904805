"""The Bybit v5 simulator over real HTTP, its requests signed here with plain ``hmac`` (and, when
pybit is installed, by pybit's own HTTP session): signatures and timestamps, fills, positions,
TP/SL, order identity, lot-size checks, spot, market data."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from qkt.sim.bybit import DEFAULT_API_KEY, DEFAULT_API_SECRET, BybitSimServer, BybitState, sign

KEY, SECRET = DEFAULT_API_KEY, DEFAULT_API_SECRET


class Signed:
    """A Bybit client in a few lines: each request signed over exactly the bytes it sends."""

    def __init__(self, url: str, key: str = KEY, secret: str = SECRET) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)
        self.key, self.secret = key, secret

    def headers(
        self,
        payload: str,
        *,
        ts: int | None = None,
        window: str = "5000",
        key: str | None = None,
        secret: str | None = None,
        ahead_ms: int = 0,
    ) -> dict[str, str]:
        stamp = str(ts if ts is not None else int(time.time() * 1000) + ahead_ms)
        key = self.key if key is None else key
        text = stamp + key + window + payload
        digest = hmac.new((secret or self.secret).encode(), text.encode(), hashlib.sha256)
        return {
            "X-BAPI-API-KEY": key,
            "X-BAPI-TIMESTAMP": stamp,
            "X-BAPI-RECV-WINDOW": window,
            "X-BAPI-SIGN": digest.hexdigest(),
            "X-BAPI-SIGN-TYPE": "2",
        }

    def get(self, path: str, query: str = "", **sign_with: Any) -> dict[str, Any]:
        return self.get_raw(path, query, **sign_with).json()  # type: ignore[no-any-return]

    def get_raw(self, path: str, query: str = "", **sign_with: Any) -> httpx.Response:
        url = f"{path}?{query}" if query else path
        return self.http.get(url, headers=self.headers(query, **sign_with))

    def post(self, path: str, body: dict[str, Any] | str, **sign_with: Any) -> dict[str, Any]:
        return self.post_raw(path, body, **sign_with).json()  # type: ignore[no-any-return]

    def post_raw(self, path: str, body: dict[str, Any] | str, **sign_with: Any) -> httpx.Response:
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        headers = {"Content-Type": "application/json", **self.headers(text, **sign_with)}
        return self.http.post(path, content=text.encode(), headers=headers)

    def order(self, **fields: Any) -> dict[str, Any]:
        body = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market"}
        return self.post("/v5/order/create", {**body, **fields})

    def quote(self, symbol: str, bid: str, ask: str) -> None:
        answer = self.http.post("/_sim/quote", json={"symbol": symbol, "bid": bid, "ask": ask})
        assert answer.status_code == 200, answer.text

    def faults(self, **switches: Any) -> dict[str, Any]:
        answer = self.http.post("/_sim/faults", json=switches)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]


def ok(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["retCode"] == 0, answer
    assert set(answer) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    return answer["result"]  # type: ignore[no-any-return]


@pytest.fixture
def sim() -> Iterator[BybitSimServer]:
    with BybitSimServer(BybitState(seed=7, symbols=("BTCUSDT", "ETHUSDT"))) as server:
        yield server


@pytest.fixture
def bybit(sim: BybitSimServer) -> Iterator[Signed]:
    client = Signed(sim.url)
    client.quote("BTCUSDT", "50000.0", "50000.2")  # last 50000.1
    yield client
    client.http.close()


# ------------------------------------------------------------------ signing and clock
def test_the_references_worked_examples_sign_as_the_simulator_checks() -> None:
    ts, key, secret = "1700000000000", "qkt-demo-key", "qkt-demo-secret"
    compact = (
        '{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Market",'
        '"qty":"0.001","orderLinkId":"qkt-7f3a-0001"}'
    )
    spaced = json.dumps(json.loads(compact))
    assert sign(secret, ts, key, "5000", b"category=linear&symbol=BTCUSDT") == (
        "e3317c6155ab8b917cb8f9705dbd337d7234c683b91bbb426eb3005046e74483"
    )
    assert sign(secret, ts, key, "5000", compact.encode()) == (
        "727428811fa8ade60272fd7531fdabacec8f196c742283cdeefff8847c110d6d"
    )
    assert sign(secret, ts, key, "5000", spaced.encode()) == (
        "d94687abfd3ddf72c69e6376f9dae00106776d2d1cd8ea326ac9e998e7ff8a3b"
    )
    assert sign(secret, ts, key, "5000", b"symbol=BTCUSDT&category=linear") == (
        "3661b642efa20faddbd98d1a081e0a8390c3fad2a1b8730649e70cd638f1e546"
    )


def test_the_references_signed_requests_are_accepted_byte_for_byte() -> None:
    state = BybitState(time_ns=lambda: 1_700_000_000_400 * 10**6)  # 400 ms after the stamp
    with BybitSimServer(state, api_key="qkt-demo-key", api_secret="qkt-demo-secret") as sim:
        client = Signed(sim.url, "qkt-demo-key", "qkt-demo-secret")
        stamp = {"ts": 1_700_000_000_000}
        listed = ok(client.get("/v5/position/list", "category=linear&symbol=BTCUSDT", **stamp))
        assert listed["list"][0]["size"] == "0.000"
        ok(client.get("/v5/position/list", "symbol=BTCUSDT&category=linear", **stamp))
        compact = (
            '{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Market",'
            '"qty":"0.001","orderLinkId":"qkt-7f3a-0001"}'
        )
        sent = client.post_raw("/v5/order/create", compact, **stamp)
        assert sent.request.headers["X-BAPI-SIGN"] == (
            "727428811fa8ade60272fd7531fdabacec8f196c742283cdeefff8847c110d6d"
        )
        assert ok(sent.json())["orderLinkId"] == "qkt-7f3a-0001"
        # pybit's spaced form signs differently and is just as valid: the duplicate shows it
        # passed the signature check
        again = client.post("/v5/order/create", json.dumps(json.loads(compact)), **stamp)
        assert again["retCode"] == 110072


def test_a_good_signature_is_accepted_and_a_wrong_one_is_10004_without_the_secret(
    bybit: Signed,
) -> None:
    ok(bybit.get("/v5/account/wallet-balance", "accountType=UNIFIED"))
    wrong = bybit.get("/v5/account/wallet-balance", "accountType=UNIFIED", secret="not-it")
    assert wrong["retCode"] == 10004
    assert wrong["retMsg"].startswith(
        "Error sign, please check your signature generation algorithm: origin_string["
    )
    assert "accountType=UNIFIED" in wrong["retMsg"]
    assert KEY not in wrong["retMsg"] and SECRET not in wrong["retMsg"]
    assert wrong["result"] == {}
    body = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market"}
    refused = bybit.post("/v5/order/create", {**body, "qty": "0.001"}, secret="nope")
    assert refused["retCode"] == 10004
    positions = ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))
    assert positions["list"][0]["size"] == "0.000"  # nothing was placed


def test_an_unknown_or_missing_key_is_10003(bybit: Signed) -> None:
    unknown = bybit.get("/v5/account/wallet-balance", "accountType=UNIFIED", key="someone")
    assert (unknown["retCode"], unknown["retMsg"]) == (10003, "API key is invalid.")
    bare = bybit.http.get("/v5/account/wallet-balance?accountType=UNIFIED")
    assert bare.status_code == 200 and bare.json()["retCode"] == 10003


def test_timestamps_outside_the_window_are_10002(bybit: Signed) -> None:
    query = "accountType=UNIFIED"
    ok(bybit.get("/v5/account/wallet-balance", query, ahead_ms=900))
    ok(bybit.get("/v5/account/wallet-balance", query, ahead_ms=-4000))
    shape = re.compile(
        r"invalid request, please check your server timestamp or recv_window param\. "
        r"req_timestamp\[(\d+)\],server_timestamp\[(\d+)\],recv_window\[(\d+)\]"
    )
    for ahead, window in ((1100, "5000"), (-6000, "5000"), (-2500, "2000"), (1100, "15000")):
        refused = bybit.get("/v5/account/wallet-balance", query, ahead_ms=ahead, window=window)
        assert refused["retCode"] == 10002, (ahead, window)
        found = shape.fullmatch(refused["retMsg"])
        assert found is not None, refused["retMsg"]
        assert found.group(3) == window
    ok(bybit.get("/v5/account/wallet-balance", query, ahead_ms=-6000, window="10000"))


def test_the_signed_query_is_the_one_that_arrived_not_a_reencoding(bybit: Signed) -> None:
    raw = "accountType=UNIFIED&coin=USDT,BTC"
    answer = bybit.http.get(f"/v5/account/wallet-balance?{raw}", headers=bybit.headers(raw))
    ok(answer.json())
    encoded = "accountType=UNIFIED&coin=USDT%2CBTC"  # signed one way, sent the other
    wrong = bybit.http.get(f"/v5/account/wallet-balance?{raw}", headers=bybit.headers(encoded))
    assert wrong.json()["retCode"] == 10004


def test_market_data_is_public_and_private_answers_carry_rate_limit_headers(
    bybit: Signed,
) -> None:
    public = bybit.http.get("/v5/market/time")
    result = ok(public.json())
    assert abs(int(result["timeSecond"]) - time.time()) < 5
    assert result["timeNano"].startswith(result["timeSecond"])
    assert "X-Bapi-Limit" not in public.headers
    private = bybit.get_raw("/v5/order/realtime", "category=linear&symbol=BTCUSDT")
    assert private.headers["X-Bapi-Limit"] == "50"
    assert int(private.headers["X-Bapi-Limit-Status"]) == 49
    assert abs(int(private.headers["X-Bapi-Limit-Reset-Timestamp"]) - time.time() * 1000) < 5000
    assert private.headers["Ret_code"] == "0" and private.headers["Traceid"]


def test_past_the_limit_creates_are_10006_until_the_window_frees(bybit: Signed) -> None:
    codes = [bybit.order(qty="0.001")["retCode"] for _ in range(11)]
    assert codes[:10] == [0] * 10 and codes[10] == 10006
    refused = bybit.post_raw(
        "/v5/order/create",
        {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
         "qty": "0.001"},
    )  # fmt: skip
    assert refused.json()["retMsg"] == "Too many visits!"
    assert refused.headers["X-Bapi-Limit-Status"] == "0"
    reset = int(refused.headers["X-Bapi-Limit-Reset-Timestamp"])
    time.sleep(max(0.0, reset / 1000 - time.time()) + 0.05)
    assert bybit.order(qty="0.001")["retCode"] == 0


# ------------------------------------------------------------------ linear trading
def test_a_market_buy_fills_at_the_ask_with_an_execution_and_a_position(bybit: Signed) -> None:
    ack = ok(bybit.order(qty="0.010", orderLinkId="qkt-buy-1"))
    assert ack["orderLinkId"] == "qkt-buy-1" and len(ack["orderId"]) == 36
    found = ok(
        bybit.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT&orderLinkId=qkt-buy-1")
    )
    (row,) = found["list"]
    assert row["orderStatus"] == "Filled" and row["avgPrice"] == "50000.2"
    assert row["cumExecQty"] == "0.010" and row["leavesQty"] == "0.000"
    assert row["price"] != row["avgPrice"]  # a market order shows its protective price
    fills = ok(bybit.get("/v5/execution/list", "category=linear&orderLinkId=qkt-buy-1"))["list"]
    (fill,) = fills
    assert (fill["execPrice"], fill["execQty"], fill["side"]) == ("50000.20", "0.010", "Buy")
    assert Decimal(fill["execFee"]) == Decimal("500.002") * Decimal("0.00055")
    assert fill["createType"] == "CreateByUser" and fill["closedSize"] == "0.000"
    assert fill["execType"] == "Trade" and fill["orderId"] == ack["orderId"]
    (pos,) = ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert (pos["side"], pos["size"], pos["positionIdx"]) == ("Buy", "0.010", 0)
    assert Decimal(pos["avgPrice"]) == Decimal("50000.2")
    wallet = ok(bybit.get("/v5/account/wallet-balance", "accountType=UNIFIED"))["list"][0]
    assert Decimal(wallet["totalWalletBalance"]) == Decimal(10000) - Decimal(fill["execFee"])
    bybit.quote("BTCUSDT", "49000.0", "49000.2")
    sold = ok(bybit.order(side="Sell", qty="0.010", reduceOnly=True, orderLinkId="qkt-close-1"))
    close = ok(bybit.get("/v5/execution/list", "category=linear&orderLinkId=qkt-close-1"))
    assert close["list"][0]["execPrice"] == "49000.00"  # a sell fills at the bid
    assert close["list"][0]["closedSize"] == "0.010" and sold["orderLinkId"] == "qkt-close-1"
    (flat,) = ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert (flat["side"], flat["size"]) == ("", "0.000")


@pytest.mark.parametrize(
    ("bid", "ask", "kind", "price"),
    [
        ("51000.0", "51000.2", "TakeProfit", "51000.00"),
        ("48999.8", "49000.0", "StopLoss", "48999.80"),
    ],
)
def test_tp_and_sl_trigger_on_a_quote_move_as_orders_bybit_creates(
    bybit: Signed, bid: str, ask: str, kind: str, price: str
) -> None:
    ok(bybit.order(qty="0.020", orderLinkId="qkt-br-1", takeProfit="51000", stopLoss="49000",
                   tpslMode="Full", positionIdx=0))  # fmt: skip
    (pos,) = ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert (pos["takeProfit"], pos["stopLoss"]) == ("51000.00", "49000.00")
    legs = ok(bybit.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT"))["list"]
    assert sorted(o["stopOrderType"] for o in legs) == ["StopLoss", "TakeProfit"]
    assert all(o["orderStatus"] == "Untriggered" and o["orderLinkId"] == "" for o in legs)
    bybit.quote("BTCUSDT", "50500.0", "50500.2")  # not yet
    assert len(ok(bybit.get("/v5/execution/list", "category=linear"))["list"]) == 1
    bybit.quote("BTCUSDT", bid, ask)
    newest = ok(bybit.get("/v5/execution/list", "category=linear&symbol=BTCUSDT"))["list"][0]
    assert newest["orderLinkId"] == "" and newest["stopOrderType"] == kind
    assert newest["createType"] == f"CreateBy{kind}"
    assert (newest["side"], newest["execQty"], newest["closedSize"]) == ("Sell", "0.020", "0.020")
    assert newest["execPrice"] == price  # a market exit at the bid, not the level
    (flat,) = ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert (flat["size"], flat["side"], flat["takeProfit"], flat["stopLoss"]) == (
        "0.000", "", "0.00", "0.00",
    )  # fmt: skip
    assert ok(bybit.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT"))["list"] == []
    closed = ok(bybit.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT&openOnly=1"))
    statuses = {o["stopOrderType"]: o["orderStatus"] for o in closed["list"]}
    other = "StopLoss" if kind == "TakeProfit" else "TakeProfit"
    assert statuses[kind] == "Filled" and statuses[other] == "Deactivated"


def test_tp_sl_on_the_wrong_side_and_reduce_only_with_nothing_to_reduce_are_refused(
    bybit: Signed,
) -> None:
    wrong = bybit.order(qty="0.010", takeProfit="49000", tpslMode="Full")
    assert wrong["retCode"] == 10001 and "TakeProfit" in wrong["retMsg"]
    nothing = bybit.order(side="Sell", qty="0.010", reduceOnly=True)
    assert (nothing["retCode"], nothing["retMsg"]) == (110017, "Reduce-only rule not satisfied")
    ok(bybit.order(qty="0.010"))
    same_side = bybit.order(qty="0.010", reduceOnly=True)
    assert same_side["retCode"] == 110017
    ok(bybit.order(side="Sell", qty="0.050", reduceOnly=True, orderLinkId="qkt-trunc"))
    (pos,) = ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert pos["size"] == "0.000"  # truncated to what there was, not reversed
    ok(bybit.order(qty="0.030"))
    assert bybit.order(side="Sell", qty="0", reduceOnly=True)["retCode"] == 10001
    ok(bybit.order(side="Sell", qty="0", reduceOnly=True, closeOnTrigger=True))  # all of it
    (pos,) = ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert pos["size"] == "0.000"
    assert (
        bybit.order(qty="0.010", positionIdx=1)["retMsg"] == "position idx not match position mode"
    )


def test_trading_stop_sets_replaces_and_cancels_the_position_levels(bybit: Signed) -> None:
    stop = {"category": "linear", "symbol": "BTCUSDT", "tpslMode": "Full", "positionIdx": 0}
    flat = bybit.post("/v5/position/trading-stop", {**stop, "takeProfit": "52000"})
    assert flat["retCode"] == 10001
    ok(bybit.order(qty="0.010"))
    ok(
        bybit.post(
            "/v5/position/trading-stop", {**stop, "takeProfit": "52000", "stopLoss": "48000"}
        )
    )
    same = bybit.post("/v5/position/trading-stop", {**stop, "takeProfit": "52000"})
    assert (same["retCode"], same["retMsg"]) == (34040, "not modified")
    ok(bybit.post("/v5/position/trading-stop", {**stop, "stopLoss": "0"}))
    (pos,) = ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert (pos["takeProfit"], pos["stopLoss"]) == ("52000.00", "0.00")
    wrong = bybit.post("/v5/position/trading-stop", {**stop, "stopLoss": "50500"})
    assert wrong["retCode"] == 10001
    bybit.quote("BTCUSDT", "48000.0", "48000.2")  # no stop loss any more
    (pos,) = ok(bybit.get("/v5/position/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert pos["size"] == "0.010"


def test_order_link_ids_are_unique_per_category_and_checked(bybit: Signed) -> None:
    ok(bybit.order(qty="0.001", orderLinkId="qkt-dup"))
    dup = bybit.order(qty="0.001", orderLinkId="qkt-dup")
    assert (dup["retCode"], dup["retMsg"]) == (110072, "OrderLinkedID is duplicate")
    spot = {"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
            "qty": "10", "orderLinkId": "qkt-dup"}  # fmt: skip
    ok(bybit.post("/v5/order/create", spot))  # another category: a new id
    again = bybit.post("/v5/order/create", spot)
    assert (again["retCode"], again["retMsg"]) == (170141, "Duplicate clientOrderId")
    for bad in ("x" * 37, "has space", "semi;colon", "ünï"):
        assert bybit.order(qty="0.001", orderLinkId=bad)["retCode"] == 10001, bad
    ok(bybit.order(qty="0.001", orderLinkId="A-z_0" + "9" * 31))  # 36 characters


def test_quantities_are_checked_against_the_lot_size_filter(bybit: Signed) -> None:
    info = ok(bybit.http.get("/v5/market/instruments-info?category=linear&symbol=BTCUSDT").json())
    lot = info["list"][0]["lotSizeFilter"]
    assert (lot["qtyStep"], lot["minOrderQty"], lot["maxMktOrderQty"]) == (
        "0.001", "0.001", "500.000",
    )  # fmt: skip
    assert lot["minNotionalValue"] == "5"
    assert bybit.order(qty="0.0015")["retCode"] == 10001  # off the step
    below = bybit.order(qty="0.0001")
    assert below["retCode"] == 10001
    assert bybit.order(qty="501")["retCode"] == 10001  # above maxMktOrderQty
    bybit.quote("BTCUSDT", "4000.0", "4000.2")
    small = bybit.order(qty="0.001")  # 4 USDT
    assert (small["retCode"], small["retMsg"]) == (
        110094, "Order does not meet minimum order value 5USDT",
    )  # fmt: skip
    broke = bybit.order(qty="400")
    assert (broke["retCode"], broke["retMsg"]) == (110007, "ab not enough for new order")


def test_limit_orders_rest_fill_when_reached_and_cancel(bybit: Signed) -> None:
    ok(bybit.order(orderType="Limit", qty="0.010", price="49500.0", orderLinkId="qkt-lim-1"))
    ok(bybit.order(orderType="Limit", qty="0.010", price="49000.0", orderLinkId="qkt-lim-2"))
    opened = ok(bybit.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT"))["list"]
    assert [o["orderLinkId"] for o in opened] == ["qkt-lim-2", "qkt-lim-1"]  # newest first
    assert opened[0]["orderStatus"] == "New" and opened[0]["avgPrice"] == ""
    cancel = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "qkt-lim-2"}
    ok(bybit.post("/v5/order/cancel", cancel))
    gone = bybit.post("/v5/order/cancel", cancel)
    assert (gone["retCode"], gone["retMsg"]) == (110001, "Order does not exist.")
    bybit.quote("BTCUSDT", "49400.0", "49400.2")
    (fill,) = ok(bybit.get("/v5/execution/list", "category=linear&orderLinkId=qkt-lim-1"))["list"]
    assert fill["execPrice"] == "49500.00" and fill["isMaker"] is True
    assert fill["feeRate"] == "0.0002"
    post_only = bybit.order(orderType="Limit", qty="0.010", price="50000.0",
                            timeInForce="PostOnly", orderLinkId="qkt-po")  # fmt: skip
    ok(post_only)
    (row,) = ok(bybit.get("/v5/order/history", "category=linear&orderLinkId=qkt-po"))["list"]
    assert row["orderStatus"] == "Cancelled"
    assert row["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"


def test_reads_filter_and_sort_as_bybit_does(bybit: Signed) -> None:
    for n in range(3):
        ok(bybit.order(qty="0.001", orderLinkId=f"qkt-r-{n}"))
        time.sleep(0.003)
    bybit.quote("ETHUSDT", "3000.00", "3000.02")
    ok(bybit.order(symbol="ETHUSDT", qty="0.01", orderLinkId="qkt-eth"))
    fills = ok(bybit.get("/v5/execution/list", "category=linear"))["list"]
    times = [int(f["execTime"]) for f in fills]
    assert times == sorted(times, reverse=True) and fills[0]["orderLinkId"] == "qkt-eth"
    btc = ok(bybit.get("/v5/execution/list", "category=linear&symbol=BTCUSDT"))["list"]
    assert [f["orderLinkId"] for f in btc] == ["qkt-r-2", "qkt-r-1", "qkt-r-0"]
    since = int(btc[0]["execTime"])
    later = ok(bybit.get("/v5/execution/list", f"category=linear&startTime={since}"))["list"]
    assert {f["orderLinkId"] for f in later} == {"qkt-r-2", "qkt-eth"}
    paged = ok(bybit.get("/v5/execution/list", "category=linear&limit=2"))
    assert len(paged["list"]) == 2 and paged["nextPageCursor"]
    rest = ok(
        bybit.get("/v5/execution/list", f"category=linear&limit=2&cursor={paged['nextPageCursor']}")
    )
    assert [f["orderLinkId"] for f in rest["list"]] == ["qkt-r-1", "qkt-r-0"]
    assert rest["nextPageCursor"] == ""
    needs = bybit.get("/v5/order/realtime", "category=linear")
    assert needs["retCode"] == 10001
    closed = ok(
        bybit.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT&orderLinkId=qkt-r-0")
    )
    assert closed["list"][0]["orderStatus"] == "Filled"  # a lookup finds closed orders too
    missing = ok(bybit.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT&orderLinkId=nope"))
    assert missing == {"list": [], "nextPageCursor": "", "category": "linear"}
    held = ok(bybit.get("/v5/position/list", "category=linear&settleCoin=USDT"))["list"]
    assert sorted(p["symbol"] for p in held) == ["BTCUSDT", "ETHUSDT"]
    ok(bybit.order(side="Sell", qty="0.01", symbol="ETHUSDT", reduceOnly=True))
    held = ok(bybit.get("/v5/position/list", "category=linear&settleCoin=USDT"))["list"]
    assert [p["symbol"] for p in held] == ["BTCUSDT"]  # only non-zero positions
    window = bybit.get("/v5/order/history", "category=linear&startTime=0&endTime=999999999999")
    assert window["retCode"] == 10001  # more than 7 days


# ------------------------------------------------------------------ spot
def test_spot_orders_follow_base_precision_min_amount_and_fee_coins(bybit: Signed) -> None:
    info = ok(bybit.http.get("/v5/market/instruments-info?category=spot&symbol=BTCUSDT").json())
    lot = info["list"][0]["lotSizeFilter"]
    assert (lot["basePrecision"], lot["minOrderAmt"]) == ("0.000001", "5")
    spot = {"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market"}
    base = {**spot, "marketUnit": "baseCoin"}
    assert bybit.post("/v5/order/create", {**base, "qty": "0.0000001"})["retCode"] == 170137
    assert bybit.post("/v5/order/create", {**base, "qty": "0.000099"})["retCode"] == 170140
    assert bybit.post("/v5/order/create", {**base, "qty": "0"})["retCode"] == 170136
    assert bybit.post("/v5/order/create", {**spot, "qty": "10.123456789"})["retCode"] == 170148
    assert bybit.post("/v5/order/create", {**base, "qty": "1"})["retCode"] == 170131  # 50k USDT
    ok(bybit.post("/v5/order/create", {**base, "qty": "0.010000", "orderLinkId": "qkt-s1"}))
    (fill,) = ok(bybit.get("/v5/execution/list", "category=spot&orderLinkId=qkt-s1"))["list"]
    assert (fill["execPrice"], fill["execQty"], fill["feeCurrency"]) == ("50000.20", "0.01", "BTC")
    assert Decimal(fill["execFee"]) == Decimal("0.00001")
    ok(bybit.post("/v5/order/create", {**spot, "qty": "100", "orderLinkId": "qkt-s2"}))  # USDT
    (row,) = ok(bybit.get("/v5/order/realtime", "category=spot&orderLinkId=qkt-s2"))["list"]
    assert row["marketUnit"] == "quoteCoin" and row["qty"] == "100"
    assert Decimal(row["cumExecQty"]) == Decimal("0.001999")  # 100 / 50000.2, on the grid
    wallet = ok(bybit.get("/v5/account/wallet-balance", "accountType=UNIFIED&coin=BTC"))
    (btc,) = wallet["list"][0]["coin"]
    bought = ok(bybit.get("/v5/execution/list", "category=spot&symbol=BTCUSDT"))["list"]
    received = sum(Decimal(f["execQty"]) - Decimal(f["execFee"]) for f in bought)
    assert Decimal(btc["walletBalance"]) == received  # a buy's fee is taken in BTC
    sell = {**spot, "side": "Sell", "qty": "0.005", "orderLinkId": "qkt-s3"}
    ok(bybit.post("/v5/order/create", sell))
    (out,) = ok(bybit.get("/v5/execution/list", "category=spot&orderLinkId=qkt-s3"))["list"]
    assert (out["execPrice"], out["feeCurrency"]) == ("50000.00", "USDT")
    assert (
        bybit.post("/v5/order/create", {**spot, "symbol": "NOPEUSDT", "qty": "1"})["retCode"]
        == 170121
    )


# ------------------------------------------------------------------ market data and account
def test_tickers_list_every_symbol_of_a_category_without_symbol(bybit: Signed) -> None:
    rows = ok(bybit.http.get("/v5/market/tickers?category=linear").json())["list"]
    assert [r["symbol"] for r in rows] == ["BTCUSDT", "ETHUSDT"]
    btc = rows[0]
    assert (btc["bid1Price"], btc["ask1Price"], btc["lastPrice"]) == (
        "50000.00", "50000.20", "50000.10",
    )  # fmt: skip
    assert {"markPrice", "indexPrice", "fundingRate", "nextFundingTime"} <= set(btc)
    one = ok(bybit.http.get("/v5/market/tickers?category=spot&symbol=ETHUSDT").json())["list"]
    assert [r["symbol"] for r in one] == ["ETHUSDT"] and "fundingRate" not in one[0]
    assert bybit.http.get("/v5/market/tickers?category=bogus").json()["retCode"] == 10001


def test_klines_come_newest_first_with_the_open_bar_over_seeded_history(bybit: Signed) -> None:
    now = time.time() * 1000
    for interval, size_ms in (("1", 60_000), ("15", 900_000), ("60", 3_600_000), ("D", 86_400_000)):
        answer = bybit.http.get(
            f"/v5/market/kline?category=linear&symbol=BTCUSDT&interval={interval}&limit=5"
        )
        rows = ok(answer.json())["list"]
        starts = [int(r[0]) for r in rows]
        assert starts == sorted(starts, reverse=True), interval
        assert all(isinstance(v, str) for r in rows for v in r) and len(rows[0]) == 7
        assert starts[0] <= now < starts[0] + size_ms  # the open bar comes first
        if interval == "1":
            assert rows[0][4] == "50000.10"  # its close is the last price
            assert len(rows) == 5 and starts[0] - starts[-1] == 4 * 60_000
    week = ok(bybit.http.get("/v5/market/kline?category=linear&symbol=BTCUSDT&interval=W").json())
    monday = int(week["list"][0][0]) // 86_400_000
    assert (monday - 4) % 7 == 0  # weeks open on Mondays (UTC)
    every = ok(bybit.http.get("/v5/market/kline?symbol=ETHUSDT&interval=1&limit=1000").json())
    assert len(every["list"]) == 1000
    assert bybit.http.get("/v5/market/kline?symbol=BTCUSDT&interval=2").json()["retCode"] == 10001
    start = int(every["list"][10][0])
    ranged = ok(
        bybit.http.get(f"/v5/market/kline?symbol=ETHUSDT&interval=1&end={start}&limit=3").json()
    )
    assert [int(r[0]) for r in ranged["list"]] == [start, start - 60_000, start - 120_000]


def test_wallet_and_key_facts(bybit: Signed) -> None:
    (account,) = ok(bybit.get("/v5/account/wallet-balance", "accountType=UNIFIED"))["list"]
    assert (account["accountType"], account["totalEquity"]) == ("UNIFIED", "10000")
    assert account["totalWalletBalance"] == "10000"
    assert [c["coin"] for c in account["coin"]] == ["USDT"]  # zero balances left out
    assert bybit.get("/v5/account/wallet-balance", "accountType=CONTRACT")["retCode"] == 10001
    ok(bybit.order(qty="0.100"))
    bybit.quote("BTCUSDT", "51000.0", "51000.2")
    (account,) = ok(bybit.get("/v5/account/wallet-balance", "accountType=UNIFIED"))["list"]
    upl = Decimal(account["totalPerpUPL"])
    assert upl == (Decimal("51000.1") - Decimal("50000.2")) * Decimal("0.1")
    assert Decimal(account["totalEquity"]) == Decimal(account["totalWalletBalance"]) + upl
    key = ok(bybit.get("/v5/user/query-api"))
    assert (key["readOnly"], key["uta"], key["apiKey"]) == (0, 1, KEY)
    assert "Order" in key["permissions"]["ContractTrade"] and key["permissions"]["Spot"]
    assert SECRET not in json.dumps(key)


def test_a_read_only_key_reads_but_cannot_trade() -> None:
    with BybitSimServer(BybitState(read_only=True)) as sim:
        client = Signed(sim.url)
        assert ok(client.get("/v5/user/query-api"))["readOnly"] == 1
        assert client.order(qty="0.001")["retCode"] == 10005


def test_a_replay_script_drives_the_quotes_in_process() -> None:
    state = BybitState(symbols=("BTCUSDT", "ETHUSDT"))
    state.follow([("BTCUSDT", Decimal("70000.0"), Decimal("70000.4")),
                  (None, Decimal("70010.0"), Decimal("70010.2"))])  # fmt: skip
    assert state.market.quotes["BTCUSDT"].bid == Decimal("70000.0")  # starts at its first row
    state.step()
    state.step()
    assert state.market.quotes["BTCUSDT"].ask == Decimal("70010.2")
    assert state.market.quotes["ETHUSDT"].bid == Decimal("70010.00")  # a row for every symbol
    bars = state.market.candles("BTCUSDT", "1")
    assert bars[-1][4] == Decimal("70010.1") and len(bars) > 3 * 1440


# ------------------------------------------------------------------ pybit
def test_requests_signed_by_pybit_are_accepted(sim: BybitSimServer) -> None:
    http_module = pytest.importorskip("pybit.unified_trading")
    session = http_module.HTTP(testnet=True, api_key=KEY, api_secret=SECRET, max_retries=1)
    session.endpoint = sim.url  # pybit builds every URL from this
    assert int(session.get_server_time()["result"]["timeSecond"]) > 0
    placed = session.place_order(
        category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.002",
        orderLinkId="pybit-1", takeProfit="99000", stopLoss="40000", tpslMode="Full",
        positionIdx=0,
    )  # fmt: skip
    assert placed["retCode"] == 0 and placed["result"]["orderLinkId"] == "pybit-1"
    positions = session.get_positions(category="linear", symbol="BTCUSDT")
    assert positions["result"]["list"][0]["size"] == "0.002"
    fills = session.get_executions(category="linear", orderLinkId="pybit-1", limit=10)
    assert fills["result"]["list"][0]["orderLinkId"] == "pybit-1"
    wallet = session.get_wallet_balance(accountType="UNIFIED", coin="USDT,BTC")
    assert wallet["retCode"] == 0
    stop = session.set_trading_stop(
        category="linear", symbol="BTCUSDT", tpslMode="Full", positionIdx=0, takeProfit="98000"
    )
    assert stop["retCode"] == 0
