"""The gateway client against a real HTTP server: headers, bodies, envelopes, retries only on reads."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from qkt.brokers.mt5.client import GatewayClient, GatewayError

pytestmark = pytest.mark.anyio

POSITION = {
    "ticket": 50001,
    "symbol": "EURUSDm",
    "type": 0,
    "volume": "0.10",
    "price_open": "1.08430",
    "price_current": "1.08510",
    "sl": "0.54215",
    "tp": "2.16860",
    "profit": "8.0",
    "magic": 10001,
    "comment": "momentum-000001",
    "time_msc": 1705276860000,
}


def client(server: HTTPServer, **kw: object) -> GatewayClient:
    return GatewayClient(server.url_for("").rstrip("/"), backoff_s=0.001, **kw)  # type: ignore[arg-type]


async def test_reads_accept_wrapped_and_bare_payloads_and_numbers_as_strings(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/get_positions", query_string="magic=10001").respond_with_json(
        {"ok": True, "request_id": "r1", "data": [POSITION, {**POSITION, "ticket": 2, "magic": 7}]}
    )
    httpserver.expect_request("/symbol_info_tick/EURUSDm").respond_with_json(
        {
            "symbol": "EURUSDm",
            "bid": 1.0841,
            "ask": "1.08430",
            "time": 1705276800,
            "time_msc": 1705276800123,
        }
    )
    c = client(httpserver)
    (position,) = await c.positions(
        10001
    )  # the other magic is filtered out even if the gateway sends it
    assert (position.ticket, position.volume, position.price_open) == (
        50001,
        Decimal("0.10"),
        Decimal("1.08430"),
    )
    quote = await c.quote("EURUSDm")
    assert (quote.bid, quote.ask) == (Decimal("1.0841"), Decimal("1.08430"))


async def test_bearer_auth_on_every_request(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/account", headers={"Authorization": "Bearer tok-1"}
    ).respond_with_json(
        {"login": 12345678, "server": "Exness-MT5Trial9", "balance": 10000.0, "trade_mode": 0}
    )
    assert (await client(httpserver, api_key="tok-1").account()).login == 12345678


async def test_reads_retry_5xx_then_succeed(httpserver: HTTPServer) -> None:
    calls = []

    def handler(request: Request) -> Response:
        calls.append(1)
        if len(calls) < 3:
            return Response("busy", status=503)
        return Response(json.dumps({"login": 1}), content_type="application/json")

    httpserver.expect_request("/account").respond_with_handler(handler)
    assert (await client(httpserver, retry_attempts=3).account()).login == 1
    assert len(calls) == 3


async def test_a_read_that_keeps_failing_is_unknown_not_empty(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/get_positions").respond_with_data("{not json", status=200)
    with pytest.raises(GatewayError) as info:
        await client(httpserver, retry_attempts=2).positions(1)
    assert "no answer after 2 attempts" in info.value.diagnostics[0].message


async def test_order_is_sent_once_with_its_idempotency_key_and_exact_body(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_oneshot_request(
        "/order", method="POST", headers={"Idempotency-Key": "momentum-000001"}
    ).respond_with_json(
        {
            "result": {
                "retcode": 10009,
                "order": 42,
                "deal": 42,
                "price": 1.0843,
                "volume": 0.1,
                "comment": "Request executed",
            }
        }
    )
    outcome = await client(httpserver).order(
        symbol="EURUSDm",
        side="buy",
        volume=Decimal("0.1"),
        magic=10001,
        client_order_id="momentum-000001",
        comment="momentum-000001",
        deviation=20,
        sl=Decimal("0.54215"),
        tp=Decimal("2.1686"),
    )
    assert outcome.status == "done" and outcome.result.order == 42
    ((request, _),) = httpserver.log
    assert json.loads(request.data) == {
        "symbol": "EURUSDm",
        "volume": 0.1,
        "type": "BUY",
        "deviation": 20,
        "magic": 10001,
        "client_order_id": "momentum-000001",
        "comment": "momentum-000001",
        "sl": 0.54215,
        "tp": 2.1686,
    }


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (409, {"result": {"retcode": 10004, "comment": "Requote"}}, "rejected"),
        (400, {"error": "invalid volume", "result": {"retcode": 10014}}, "rejected"),
        (502, {"error": "terminal timeout"}, "unknown"),
        (200, {"result": {"retcode": 10019, "comment": "No money"}}, "rejected"),
        (503, None, "unknown"),
    ],
)
async def test_order_outcomes_are_never_retried(
    httpserver: HTTPServer, status: int, body: dict[str, object] | None, expected: str
) -> None:
    if body is None:
        httpserver.expect_request("/order", method="POST").respond_with_data("", status=status)
    else:
        httpserver.expect_request("/order", method="POST").respond_with_json(body, status=status)
    outcome = await client(httpserver, retry_attempts=5).order(
        symbol="EURUSDm",
        side="sell",
        volume=Decimal("1"),
        magic=1,
        client_order_id="c-1",
        comment="c-1",
        deviation=20,
    )
    assert outcome.status == expected
    assert len(httpserver.log) == 1  # sent exactly once


async def test_a_timeout_after_sending_is_unknown(httpserver: HTTPServer) -> None:
    import time

    def slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/order", method="POST").respond_with_handler(slow)
    outcome = await client(httpserver, timeout_ms=100).order(
        symbol="EURUSDm",
        side="buy",
        volume=Decimal("1"),
        magic=1,
        client_order_id="c-2",
        comment="c-2",
        deviation=20,
    )
    assert outcome.status == "unknown"


async def test_unreachable_gateway_means_nothing_was_sent() -> None:
    c = GatewayClient("http://127.0.0.1:9", timeout_ms=200)
    outcome = await c.order(
        symbol="X",
        side="buy",
        volume=Decimal(1),
        magic=1,
        client_order_id="c",
        comment="c",
        deviation=1,
    )
    assert outcome.status == "rejected" and "nothing sent" in outcome.message
    assert await c.ready() is False
