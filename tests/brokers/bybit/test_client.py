"""The Bybit client against a real HTTP server that checks what Bybit checks: the signature over
the bytes that arrived, the timestamp window, no body on a GET; errors come as HTTP 200."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest
from pybit.unified_trading import HTTP  # type: ignore[import-untyped]
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from qkt.brokers.bybit.client import (
    LIMIT_WAIT_MAX_S,
    MAINNET_URL,
    TESTNET_URL,
    BybitClient,
    BybitError,
    base_url_for,
)
from qkt.brokers.bybit.signing import signed_headers

pytestmark = pytest.mark.anyio

KEY, SECRET = "qkt-test-key-7Hq2", "qkt-test-secret-x9Lw"
Answer = Response | dict[str, Any]
Route = Callable[[Request], Answer]


def ok(result: Any) -> dict[str, Any]:
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 1}


def fail(code: int, message: str) -> dict[str, Any]:
    return {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": 1}


class Venue:
    """A small Bybit: public ``/v5/market/time``; private paths need the headers, a signature
    over the query string or body exactly as received, and a stamp inside the window
    ``server - recv_window <= stamp < server + 1000``. ``skew_ms`` sets its clock against ours."""

    def __init__(self, server: HTTPServer, skew_ms: float = 0) -> None:
        self.skew_ms = skew_ms
        self.routes: dict[str, Route] = {}
        self.seen: list[tuple[Request, bytes, bytes, float]] = []  # request, query, body, now
        self.errors: list[BaseException] = []  # a broken test route, not an answer to test
        self.url = server.url_for("").rstrip("/")
        server.expect_request(re.compile(r"/.*")).respond_with_handler(self._handle)

    def now(self) -> float:
        return time.time() * 1000 + self.skew_ms

    def on(self, path: str, answer: Answer | Route) -> None:
        fixed = isinstance(answer, Response | dict)  # a Response is callable too (WSGI)
        self.routes[path] = (lambda _r: answer) if fixed else answer  # type: ignore[assignment,return-value]

    def count(self, path: str) -> int:
        return sum(1 for request, *_ in self.seen if request.path == path)

    def requests(self, path: str) -> list[tuple[Request, bytes, bytes, float]]:
        return [entry for entry in self.seen if entry[0].path == path]

    def _handle(self, request: Request) -> Response:
        try:
            return self._answer(request)
        except Exception as exc:
            self.errors.append(exc)
            raise

    def _answer(self, request: Request) -> Response:
        body = request.get_data()
        self.seen.append((request, request.query_string, body, self.now()))
        if request.method == "GET" and body:
            return Response("GET with a body", status=403)
        if request.path == "/v5/market/time":
            ms = int(self.now())
            answer: Answer = ok({"timeSecond": str(ms // 1000), "timeNano": str(ms * 1_000_000)})
        elif not request.path.startswith("/v5/market/") and (refusal := self._refusal(request)):
            answer = refusal
        elif request.path in self.routes:
            answer = self.routes[request.path](request)
        else:
            return Response("route not found", status=404)
        if isinstance(answer, Response):
            return answer
        return Response(json.dumps(answer), content_type="application/json")

    def _refusal(self, request: Request) -> Answer | None:
        h = request.headers
        key, stamp, window = (
            h.get("X-BAPI-API-KEY"),
            h.get("X-BAPI-TIMESTAMP"),
            h.get("X-BAPI-RECV-WINDOW"),
        )
        if not key or not stamp or not window or not h.get("X-BAPI-SIGN"):
            return Response("missing auth headers", status=401)
        if key != KEY:
            return fail(10003, "API key is invalid.")
        payload = request.query_string if request.method == "GET" else request.get_data()
        text = f"{stamp}{key}{window}".encode() + payload
        if h["X-BAPI-SIGN"] != hmac.new(SECRET.encode(), text, hashlib.sha256).hexdigest():
            return fail(
                10004, f"Error sign, please check your signature: origin_string[{text.decode()}]"
            )
        now = self.now()
        if not now - int(window) <= int(stamp) < now + 1000:
            return fail(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{stamp}],server_timestamp[{int(now)}],recv_window[{window}]",
            )
        return None


@pytest.fixture
def venue(httpserver: HTTPServer) -> Iterator[Venue]:
    v = Venue(httpserver)
    yield v
    assert not v.errors


def client(venue: Venue, **kw: Any) -> BybitClient:
    kw.setdefault("backoff_s", 0.001)
    return BybitClient(venue.url, KEY, SECRET, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


POSITION = {
    "positionIdx": 0,
    "symbol": "BTCUSDT",
    "side": "Buy",
    "size": "0.010",
    "avgPrice": "42000.1",
    "markPrice": "42000.00",
    "takeProfit": "50000.00",
    "stopLoss": "0.00",
    "leverage": "10",
    "liqPrice": "",
    "seq": 4688002127,
    "unknownField": "ignored",
}


def execution(exec_id: str, at: int, link: str = "qkt-1") -> dict[str, Any]:
    return {
        "execId": exec_id,
        "orderId": "o-1",
        "orderLinkId": link,
        "symbol": "BTCUSDT",
        "side": "Buy",
        "execPrice": "42000.5",
        "execQty": "0.005",
        "execFee": "0.1155",
        "execType": "Trade",
        "execTime": str(at),
        "closedSize": "0",
        "createType": "CreateByUser",
        "stopOrderType": "",
        "isMaker": False,
    }


# ---------------------------------------------------------------- the signed requests as sent
async def test_a_private_get_is_signed_over_its_query_string_exactly_as_sent(venue: Venue) -> None:
    venue.on("/v5/position/list", ok({"list": [POSITION], "nextPageCursor": ""}))
    c = client(venue)
    (position,) = await c.positions("linear", "BTCUSDT")
    assert (position.size, position.signed_size, position.take_profit, position.stop_loss) == (
        Decimal("0.010"),
        Decimal("0.010"),
        Decimal("50000.00"),
        None,  # "0.00" is "not set"
    )
    ((request, query, body, now),) = venue.requests("/v5/position/list")
    assert query == b"category=linear&symbol=BTCUSDT&limit=200" and body == b""
    h = request.headers
    assert (h["X-BAPI-API-KEY"], h["X-BAPI-RECV-WINDOW"], h["X-BAPI-SIGN-TYPE"]) == (
        KEY,
        "5000",
        "2",
    )
    text = h["X-BAPI-TIMESTAMP"] + KEY + "5000" + query.decode()
    assert h["X-BAPI-SIGN"] == hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert abs(int(h["X-BAPI-TIMESTAMP"]) - now) < 1000
    await c.aclose()


async def test_a_post_body_is_sent_as_the_bytes_signed(venue: Venue) -> None:
    venue.on("/v5/order/create", ok({"orderId": "1321003749386327552", "orderLinkId": "qkt-1"}))
    c = client(venue)
    outcome = await c.create_order(
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Market",
            "qty": Decimal("0.010"),
            "positionIdx": 0,
            "orderLinkId": "qkt-1",
            "takeProfit": "50000.0",
        }
    )
    assert (outcome.status, outcome.order_id, outcome.order_link_id, outcome.ret_code) == (
        "accepted",
        "1321003749386327552",
        "qkt-1",
        0,
    )
    ((request, query, body, _),) = venue.requests("/v5/order/create")
    assert query == b"" and request.headers["Content-Type"] == "application/json"
    assert body == (
        b'{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Market",'
        b'"qty":"0.010","positionIdx":0,"orderLinkId":"qkt-1","takeProfit":"50000.0"}'
    )
    stamp = int(request.headers["X-BAPI-TIMESTAMP"])
    assert outcome.valid_until_ms == stamp + 5000 and outcome.answered
    await c.aclose()


async def test_lists_and_cursors_go_out_verbatim_and_pages_are_followed(venue: Venue) -> None:
    cursor = "page_args%3D1707%26symbol_args%3DBTCUSDT"

    def orders(request: Request) -> Answer:
        row = {"orderId": "o", "symbol": "BTCUSDT", "orderStatus": "New", "avgPrice": ""}
        if b"cursor=" not in request.query_string:
            return ok({"list": [{**row, "orderId": "o-1"}], "nextPageCursor": cursor})
        return ok({"list": [{**row, "orderId": "o-2"}], "nextPageCursor": ""})

    venue.on("/v5/order/realtime", orders)
    venue.on("/v5/account/wallet-balance", ok({"list": [{"totalEquity": "10.5", "coin": []}]}))
    c = client(venue)
    rows = await c.open_orders("linear")
    assert [r.order_id for r in rows] == ["o-1", "o-2"] and rows[0].avg_price is None
    first, second = (q for _, q, _, _ in venue.requests("/v5/order/realtime"))
    assert first == b"category=linear&settleCoin=USDT&limit=50"
    assert second == first + b"&cursor=" + cursor.encode()
    assert (await c.wallet_balance("USDT,BTC")).total_equity == Decimal("10.5")
    ((_, query, _, _),) = venue.requests("/v5/account/wallet-balance")
    assert query == b"accountType=UNIFIED&coin=USDT,BTC"
    await c.aclose()


async def test_a_get_without_parameters_signs_the_empty_payload(venue: Venue) -> None:
    venue.on(
        "/v5/user/query-api",
        ok(
            {
                "apiKey": KEY,
                "secret": "",
                "readOnly": 0,
                "permissions": {"ContractTrade": ["Order", "Position"], "Spot": []},
                "expiredAt": "2030-01-01T00:00:00Z",
                "uta": 1,
                "userID": 24617703,
            }
        ),
    )
    c = client(venue)
    info = await c.api_key_info()
    assert not info.read_only and info.uta and info.user_id == 24617703
    assert info.permissions["ContractTrade"] == ["Order", "Position"]
    assert info.expired_at is not None and info.expired_at.year == 2030
    assert KEY not in repr(info)  # the echoed key is not kept
    ((request, query, _, _),) = venue.requests("/v5/user/query-api")
    assert query == b"" and request.full_path in ("/v5/user/query-api", "/v5/user/query-api?")
    await c.aclose()


async def test_pybit_requests_pass_the_test_venue(venue: Venue) -> None:
    """The venue's checks are Bybit's as pybit meets them: its signed GET and POST pass."""
    venue.on("/v5/position/list", ok({"list": [POSITION], "nextPageCursor": ""}))
    venue.on("/v5/order/create", ok({"orderId": "x", "orderLinkId": "p-1"}))
    session = HTTP(testnet=True, api_key=KEY, api_secret=SECRET, max_retries=1)
    session.endpoint = venue.url
    got = await anyio.to_thread.run_sync(
        lambda: session.get_positions(category="linear", symbol="BTCUSDT")
    )
    assert got["result"]["list"][0]["symbol"] == "BTCUSDT"
    placed = await anyio.to_thread.run_sync(
        lambda: session.place_order(
            category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.001"
        )
    )
    assert placed["retCode"] == 0
    ((_, body, _), *_) = [(q, b, n) for _, q, b, n in venue.requests("/v5/order/create")]
    assert b'", "' in body  # pybit's spaced JSON: other bytes, also accepted when signed as sent


# ---------------------------------------------------------------- the clock
@pytest.mark.parametrize("skew_ms", [2000, -2000])
async def test_stamps_follow_a_venue_clock_ahead_or_behind(venue: Venue, skew_ms: int) -> None:
    venue.skew_ms = skew_ms
    venue.on("/v5/position/list", ok({"list": [], "nextPageCursor": ""}))
    c = client(venue, recv_window_ms=1500)
    assert await c.positions("linear") == []  # accepted inside the venue's window
    assert c.offset_ms is not None and abs(c.offset_ms - skew_ms) < 300
    ((request, _, _, now),) = venue.requests("/v5/position/list")
    assert -1500 <= int(request.headers["X-BAPI-TIMESTAMP"]) - now < 1000
    assert abs(await c.server_time() - (time.time() * 1000 + skew_ms)) < 300
    await c.aclose()


async def test_a_local_clock_2s_fast_is_refused_unless_synchronised(venue: Venue) -> None:
    venue.skew_ms = -2000  # the venue is 2 s behind us: our clock is 2 s fast
    venue.on("/v5/position/list", ok({"list": [POSITION], "nextPageCursor": ""}))
    raw = signed_headers(
        KEY, SECRET, int(time.time() * 1000), 5000, "category=linear&symbol=BTCUSDT"
    )
    async with httpx.AsyncClient(base_url=venue.url) as http:
        refused = (
            await http.get("/v5/position/list?category=linear&symbol=BTCUSDT", headers=raw)
        ).json()
    assert refused["retCode"] == 10002  # the venue enforces the window
    c = client(venue)
    assert len(await c.positions("linear", "BTCUSDT")) == 1
    assert venue.count("/v5/market/time") == 1  # synchronised at the first private call
    await c.aclose()


async def test_10002_resynchronises_the_clock_and_retries_the_read(venue: Venue) -> None:
    venue.on("/v5/position/list", ok({"list": [POSITION], "nextPageCursor": ""}))
    c = client(venue)
    await c.sync_time()
    venue.skew_ms = 8000  # the venue's clock jumps: our stamps are now older than recv_window
    assert len(await c.positions("linear", "BTCUSDT")) == 1
    assert venue.count("/v5/market/time") == 2 and venue.count("/v5/position/list") == 2
    assert c.offset_ms is not None and abs(c.offset_ms - 8000) < 300
    await c.aclose()


# ---------------------------------------------------------------- read retries
async def test_10006_waits_for_the_limit_reset_then_retries(venue: Venue) -> None:
    calls: list[float] = []

    def limited(request: Request) -> Answer:
        calls.append(time.monotonic())
        if len(calls) == 1:
            reset = int(venue.now()) + 400
            return Response(
                json.dumps(fail(10006, "Too many visits!")),
                content_type="application/json",
                headers={"X-Bapi-Limit-Reset-Timestamp": str(reset)},
            )
        return ok({"list": [], "nextPageCursor": ""})

    venue.on("/v5/execution/list", limited)
    c = client(venue)
    assert await c.executions("linear") == []
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.3
    await c.aclose()


async def test_a_far_limit_reset_is_waited_for_a_bounded_time(venue: Venue) -> None:
    calls: list[float] = []

    def limited(request: Request) -> Answer:
        calls.append(time.monotonic())
        reset = int(venue.now()) + 60_000
        return Response(
            json.dumps(fail(10006, "Too many visits!")),
            content_type="application/json",
            headers={"X-Bapi-Limit-Reset-Timestamp": str(reset)},
        )

    venue.on("/v5/execution/list", limited)
    c = client(venue, retry_attempts=2)
    with pytest.raises(BybitError) as info:
        await c.executions("linear")
    assert len(calls) == 2 and calls[1] - calls[0] < LIMIT_WAIT_MAX_S + 0.5
    assert info.value.ret_code == 10006
    assert info.value.diagnostics[0].code == "venue-unavailable"
    await c.aclose()


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_reads_retry_5xx_and_429_then_succeed(venue: Venue, status: int) -> None:
    def flaky(request: Request) -> Answer:
        if venue.count("/v5/market/tickers") < 3:
            return Response("<html>gateway</html>", status=status)
        return ok({"list": [{"symbol": "BTCUSDT", "bid1Price": "1.5", "ask1Price": "1.6"}]})

    venue.on("/v5/market/tickers", flaky)
    (ticker,) = await client(venue).tickers("linear", "BTCUSDT")
    assert (ticker.bid1_price, ticker.ask1_price, ticker.last_price) == (
        Decimal("1.5"),
        Decimal("1.6"),
        None,
    )
    assert venue.count("/v5/market/tickers") == 3


async def test_a_read_that_keeps_failing_is_an_error_not_empty(venue: Venue) -> None:
    venue.on("/v5/market/tickers", lambda _r: Response("busy", status=503))
    with pytest.raises(BybitError) as info:
        await client(venue, retry_attempts=3).tickers("linear")
    exc = info.value
    assert (exc.http_status, exc.ret_code, exc.diagnostics[0].code) == (
        503,
        None,
        "venue-unavailable",
    )
    assert "failed after 3 attempts (HTTP 503)" in str(exc) and "\n" not in str(exc)
    assert venue.count("/v5/market/tickers") == 3


async def test_an_unreachable_venue_is_an_error_after_the_retries() -> None:
    c = BybitClient(f"http://127.0.0.1:{free_port()}", KEY, SECRET, backoff_s=0.001)
    with pytest.raises(BybitError) as info:
        await c.tickers("linear")
    assert "no answer after 3 attempts (ConnectError)" in str(info.value)
    assert info.value.http_status is None and info.value.__cause__ is None


@pytest.mark.parametrize(
    ("status", "code"), [(401, "venue-refused"), (403, "venue-refused"), (404, "venue-error")]
)
async def test_http_401_403_404_are_not_retried(venue: Venue, status: int, code: str) -> None:
    venue.on("/v5/position/list", lambda _r: Response("no", status=status))
    with pytest.raises(BybitError) as info:
        await client(venue).positions("linear")
    assert (info.value.http_status, info.value.diagnostics[0].code) == (status, code)
    assert venue.count("/v5/position/list") == 1


@pytest.mark.parametrize(
    ("ret_code", "code"),
    [
        (10001, "venue-error"),
        (10003, "venue-refused"),
        (10005, "venue-refused"),
        (10016, "venue-error"),
    ],
)
async def test_error_envelopes_arrive_as_http_200_and_are_not_retried(
    venue: Venue, ret_code: int, code: str
) -> None:
    venue.on("/v5/order/history", fail(ret_code, "params error: side invalid"))
    with pytest.raises(BybitError) as info:
        await client(venue).order_history("linear", order_link_id="qkt-1")
    exc = info.value
    assert (exc.ret_code, exc.http_status, exc.diagnostics[0].code) == (ret_code, None, code)
    assert f"retCode {ret_code}: params error: side invalid" in exc.diagnostics[0].message
    assert venue.count("/v5/order/history") == 1


async def test_malformed_answers_are_clear_errors(venue: Venue) -> None:
    venue.on(
        "/v5/market/tickers", lambda _r: Response("{not json", content_type="application/json")
    )
    venue.on(
        "/v5/market/instruments-info", ok({"list": [{"symbol": "BTCUSDT", "priceFilter": {}}]})
    )
    c = client(venue, retry_attempts=2)
    with pytest.raises(BybitError) as info:
        await c.tickers("linear")
    assert "malformed answer: not a v5 JSON envelope" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(BybitError) as info:
        await c.instrument("linear", "BTCUSDT")
    assert info.value.diagnostics[0].code == "venue-error"
    assert "unexpected answer (priceFilter.tickSize: Field required)" in str(info.value)


# ---------------------------------------------------------------- market data
async def test_klines_come_back_oldest_first(venue: Venue) -> None:
    newest_first = [
        ["1700000120000", "3", "3.5", "2.5", "3.2", "10", "30"],  # may still be open
        ["1700000060000", "2", "2.5", "1.5", "2.2", "11", "22"],
        ["1700000000000", "1", "1.5", "0.5", "1.2", "12", "12"],
    ]
    venue.on(
        "/v5/market/kline", ok({"category": "linear", "symbol": "BTCUSDT", "list": newest_first})
    )
    bars = await client(venue).klines("linear", "BTCUSDT", "1", start_ms=1700000000000, limit=3)
    assert [b.start_ms for b in bars] == [1700000000000, 1700000060000, 1700000120000]
    assert (bars[0].open, bars[0].close, bars[0].turnover) == (
        Decimal(1),
        Decimal("1.2"),
        Decimal(12),
    )
    ((request, query, _, _),) = venue.requests("/v5/market/kline")
    assert query == b"category=linear&symbol=BTCUSDT&interval=1&start=1700000000000&limit=3"
    assert "X-BAPI-SIGN" not in request.headers  # public: unsigned, no clock sync
    assert venue.count("/v5/market/time") == 0


async def test_instruments_of_linear_and_spot(venue: Venue) -> None:
    linear = {
        "symbol": "BTCUSDT",
        "status": "Trading",
        "priceScale": "2",
        "priceFilter": {"tickSize": "0.10", "minPrice": "0.10", "maxPrice": "199999.80"},
        "lotSizeFilter": {
            "qtyStep": "0.001",
            "minOrderQty": "0.001",
            "maxOrderQty": "100.000",
            "maxMktOrderQty": "500.000",
            "minNotionalValue": "5",
        },
    }
    spot = {
        "symbol": "BTCUSDT",
        "status": "Trading",
        "priceFilter": {"tickSize": "0.01"},
        "lotSizeFilter": {
            "basePrecision": "0.000001",
            "quotePrecision": "0.00000001",
            "minOrderAmt": "1",
            "maxMarketOrderQty": "30",
        },
    }

    def instruments(request: Request) -> Answer:
        if b"symbol=NOPE" in request.query_string:
            return ok({"list": []})
        return ok({"list": [spot if b"category=spot" in request.query_string else linear]})

    venue.on("/v5/market/instruments-info", instruments)
    c = client(venue)
    lin = await c.instrument("linear", "BTCUSDT")
    assert lin is not None and lin.volume_step == Decimal("0.001")
    assert lin.lot_size_filter.max_mkt_order_qty == Decimal(500) and lin.price_scale == 2
    assert lin.lot_size_filter.min_notional_value == Decimal(5)
    sp = await c.instrument("spot", "BTCUSDT")
    assert sp is not None and sp.volume_step == Decimal("0.000001")
    assert (sp.lot_size_filter.min_order_amt, sp.price_filter.tick_size) == (
        Decimal(1),
        Decimal("0.01"),
    )
    assert await c.instrument("linear", "NOPE") is None


# ---------------------------------------------------------------- account reads
async def test_positions_without_a_symbol_ask_for_usdt_settled_ones(venue: Venue) -> None:
    flat = {
        **POSITION,
        "symbol": "ETHUSDT",
        "side": "",
        "size": "0",
        "avgPrice": "",
        "takeProfit": "",
    }
    short = {**POSITION, "symbol": "SOLUSDT", "side": "Sell", "size": "3"}
    venue.on("/v5/position/list", ok({"list": [flat, short], "nextPageCursor": ""}))
    rows = await client(venue).positions("linear")
    assert [(p.symbol, p.signed_size, p.avg_price) for p in rows] == [
        ("ETHUSDT", Decimal(0), None),
        ("SOLUSDT", Decimal(-3), Decimal("42000.1")),
    ]
    ((_, query, _, _),) = venue.requests("/v5/position/list")
    assert query == b"category=linear&limit=200&settleCoin=USDT"


async def test_executions_come_back_oldest_first_and_keep_venue_made_ones(venue: Venue) -> None:
    rows = [execution("e-3", 3000), execution("e-2", 2000, link=""), execution("e-1", 1000)]
    rows[1].update(createType="CreateByTakeProfit", stopOrderType="TakeProfit", closedSize="0.005")
    venue.on("/v5/execution/list", ok({"list": rows, "nextPageCursor": ""}))
    got = await client(venue).executions("linear", start_ms=900, limit=50)
    assert [e.exec_id for e in got] == ["e-1", "e-2", "e-3"]
    assert (got[1].order_link_id, got[1].create_type, got[1].closed_size) == (
        "",
        "CreateByTakeProfit",
        Decimal("0.005"),
    )
    assert (got[0].exec_price, got[0].exec_fee, got[0].exec_time) == (
        Decimal("42000.5"),
        Decimal("0.1155"),
        1000,
    )
    ((_, query, _, _),) = venue.requests("/v5/execution/list")
    assert query == b"category=linear&startTime=900&limit=50"


async def test_wallet_balance_reads_the_unified_account(venue: Venue) -> None:
    account = {
        "accountType": "UNIFIED",
        "totalEquity": "3.31216591",
        "totalWalletBalance": "3.00326056",
        "totalPerpUPL": "0.0001",
        "coin": [
            {"coin": "USDT", "equity": "1.5", "walletBalance": "1.4", "availableToWithdraw": ""}
        ],
    }
    venue.on("/v5/account/wallet-balance", ok({"list": [account]}))
    wallet = await client(venue).wallet_balance()
    assert (wallet.total_equity, wallet.total_wallet_balance, wallet.total_perp_upl) == (
        Decimal("3.31216591"),
        Decimal("3.00326056"),
        Decimal("0.0001"),
    )
    usdt = wallet.coin_balance("USDT")
    assert usdt is not None and usdt.wallet_balance == Decimal("1.4")
    venue.on("/v5/account/wallet-balance", ok({"list": []}))
    with pytest.raises(BybitError, match="no unified account"):
        await client(venue).wallet_balance()


# ---------------------------------------------------------------- writes, sent once
BODY = {
    "category": "linear",
    "symbol": "BTCUSDT",
    "side": "Buy",
    "orderType": "Market",
    "qty": "0.001",
    "orderLinkId": "qkt-9",
}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Response("", status=503), "unknown"),
        (Response("<html>502</html>", status=502), "unknown"),
        (Response(json.dumps(fail(10016, "Internal server error")), status=500), "unknown"),
        (fail(10000, "Server Timeout"), "unknown"),
        (fail(10016, "Server error"), "unknown"),
        (fail(170007, "Timeout waiting for response from backend server."), "unknown"),
        (fail(170146, "Order creation timeout"), "unknown"),
        (fail(170035, "Submitted to the system for processing!"), "unknown"),
        (Response("{not json", content_type="application/json"), "unknown"),
        (fail(110072, "OrderLinkedID is duplicate"), "duplicate"),
        (fail(170141, "Duplicate clientOrderId"), "duplicate"),
        (fail(10001, "params error: side invalid"), "rejected"),
        (fail(10003, "API key is invalid."), "rejected"),
        (fail(10005, "Permission denied"), "rejected"),
        (fail(10006, "Too many visits!"), "rejected"),
        (fail(110007, "ab not enough for new order"), "rejected"),
        (fail(170131, "Insufficient balance."), "rejected"),
        (Response("bad", status=400), "rejected"),
        (Response("access too frequent", status=403), "rejected"),
        (Response("", status=429), "rejected"),
    ],
)
async def test_a_create_is_sent_exactly_once_whatever_the_answer(
    venue: Venue, answer: Answer, expected: str
) -> None:
    venue.on("/v5/order/create", answer)
    outcome = await client(venue, retry_attempts=5).create_order(BODY)
    assert outcome.status == expected and outcome.answered
    assert outcome.order_link_id == "qkt-9"
    assert venue.count("/v5/order/create") == 1


async def test_a_create_that_times_out_after_sending_is_unknown(venue: Venue) -> None:
    def slow(request: Request) -> Answer:
        time.sleep(0.5)
        return ok({"orderId": "late", "orderLinkId": "qkt-9"})

    venue.on("/v5/order/create", slow)
    c = client(venue, timeout_ms=150, retry_attempts=5)
    await c.sync_time()
    outcome = await c.create_order(BODY)
    assert (outcome.status, outcome.answered, outcome.ret_code) == ("unknown", False, None)
    assert "no answer after sending (ReadTimeout)" in outcome.message
    assert outcome.valid_until_ms is not None
    await anyio.sleep(0.5)
    assert venue.count("/v5/order/create") == 1
    await c.aclose()


async def test_a_create_that_cannot_connect_was_not_sent() -> None:
    server = HTTPServer(port=free_port())
    venue = Venue(server)
    server.start()
    try:
        c = client(venue)
        await c.sync_time()
    finally:
        server.stop()
    outcome = await c.create_order(BODY)
    assert (outcome.status, outcome.answered) == ("rejected", False)
    assert "nothing sent (ConnectError)" in outcome.message
    unsynced = await client(venue).create_order(BODY)  # the clock sync fails: nothing is sent
    assert (unsynced.status, unsynced.answered) == ("rejected", False)
    assert "clock not synchronised, nothing sent" in unsynced.message


async def test_10002_on_a_create_is_a_rejection_and_resynchronises(venue: Venue) -> None:
    venue.on("/v5/order/create", ok({"orderId": "o", "orderLinkId": "qkt-9"}))
    c = client(venue)
    await c.sync_time()
    venue.skew_ms = 8000
    outcome = await c.create_order(BODY)
    assert (outcome.status, outcome.ret_code) == ("rejected", 10002)
    assert venue.count("/v5/market/time") == 2 and venue.count("/v5/order/create") == 1
    assert c.offset_ms is not None and abs(c.offset_ms - 8000) < 300
    await c.aclose()


async def test_trading_stop_sends_only_the_legs_given(venue: Venue) -> None:
    answers = iter([ok({}), fail(34040, "not modified"), fail(10001, "can not set tp/sl")])
    venue.on("/v5/position/trading-stop", lambda _r: next(answers))
    c = client(venue)
    first = await c.trading_stop("linear", "BTCUSDT", take_profit=Decimal("50000.0"))
    same = await c.trading_stop("linear", "BTCUSDT", take_profit=Decimal("50000.0"))
    refused = await c.trading_stop("linear", "BTCUSDT", stop_loss=Decimal(0))
    assert [o.status for o in (first, same, refused)] == ["accepted", "accepted", "rejected"]
    bodies = [b for _, _, b, _ in venue.requests("/v5/position/trading-stop")]
    assert bodies[0] == (
        b'{"category":"linear","symbol":"BTCUSDT","tpslMode":"Full","positionIdx":0,'
        b'"takeProfit":"50000.0"}'
    )
    assert json.loads(bodies[2])["stopLoss"] == "0"  # "0" cancels a leg
    with pytest.raises(ValueError):
        await c.trading_stop("linear", "BTCUSDT")
    await c.aclose()


# ---------------------------------------------------------------- secrets
async def test_the_key_and_secret_appear_in_no_message_repr_or_log(
    venue: Venue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"Error sign: origin_string[1700000000000{KEY}5000category=linear] key={KEY} secret={SECRET}"
    venue.on("/v5/position/list", fail(10004, echo))
    venue.on("/v5/order/create", fail(10004, echo))
    venue.on("/v5/order/realtime", fail(10003, f"API key {KEY} is invalid, secret {SECRET}"))
    venue.on("/v5/execution/list", lambda _r: Response(echo, status=400))
    c = client(venue)
    texts = [repr(c)]
    for call in (
        c.positions("linear"),
        c.open_orders("linear"),
        c.executions("linear"),
    ):
        with pytest.raises(BybitError) as info:
            await call
        exc = info.value
        texts += [
            str(exc),
            repr(exc),
            *(d.format() for d in exc.diagnostics),
            repr(exc.diagnostics),
        ]
    outcome = await c.create_order(BODY)
    assert (outcome.status, outcome.ret_code) == ("rejected", 10004)
    assert outcome.message == "signature refused"
    texts += [outcome.message, repr(outcome), outcome.model_dump_json()]
    texts += [record.getMessage() for record in caplog.records]
    assert caplog.records  # httpx did log the requests
    for text in texts:
        assert KEY not in text and SECRET not in text, text
    await c.aclose()


# ---------------------------------------------------------------- plumbing
def test_base_url_for_testnet_mainnet_and_overrides() -> None:
    assert base_url_for(True, None) == TESTNET_URL == "https://api-testnet.bybit.com"
    assert base_url_for(False, None) == MAINNET_URL == "https://api.bybit.com"
    assert base_url_for(False, "https://api.bybit.eu/") == "https://api.bybit.eu"


async def test_the_http_client_is_made_on_first_use_and_dropped_on_close(venue: Venue) -> None:
    c = client(venue)
    assert c._client is None
    await c.server_time()
    assert c._client is not None
    await c.aclose()
    assert c._client is None
    await c.server_time()  # usable again: a new pool in the caller's loop
    await c.aclose()
