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
        (500, None, "unknown"),
        # the real gateway's answers (reference/mt5-gateway.md, "What real gateways do")
        (
            503,
            {"ok": False, "error": "MT5 unavailable", "error_type": "mt5_unavailable"},
            "rejected",
        ),
        (
            423,
            {"ok": False, "error": "kill switch active", "error_type": "kill_switch"},
            "rejected",
        ),
        (
            409,
            {"ok": False, "error": "in progress", "error_type": "idempotency_in_progress"},
            "unknown",
        ),
        (
            409,
            {"ok": False, "error": "key reused", "error_type": "idempotency_conflict"},
            "unknown",
        ),
        (502, {"ok": False, "error": "no reply", "error_type": "unknown_outcome"}, "unknown"),
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


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (503, {"ok": False, "error": "MT5 unavailable"}, "MT5 unavailable, nothing sent"),
        (423, {"ok": False, "error": "halted"}, "trading halted by the gateway's kill switch"),
        (
            400,
            {
                "ok": False,
                "error": "Invalid stops",
                "error_type": "validation_error",
                "details": {"retcode": 10016},
            },
            "retcode 10016: Invalid stops",
        ),
        (401, {"ok": False, "error": "unauthorized"}, "refused the api_key"),
    ],
)
async def test_refusals_say_what_the_gateway_means(
    httpserver: HTTPServer, status: int, body: dict[str, object], says: str
) -> None:
    httpserver.expect_request("/order", method="POST").respond_with_json(body, status=status)
    outcome = await client(httpserver).order(
        symbol="EURUSDm",
        side="buy",
        volume=Decimal("0.1"),
        magic=1,
        client_order_id="c-3",
        comment="c-3",
        deviation=20,
    )
    assert outcome.status == "rejected" and says in outcome.message


async def test_modify_sends_only_the_levels_it_changes_and_clears_with_flags(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/modify_sl_tp", method="POST").respond_with_json(
        {"result": {"retcode": 10009}}
    )
    c = client(httpserver)
    await c.modify_sl_tp(5, sl=Decimal("1.07"))
    await c.modify_sl_tp(5, clear_tp=True)
    bodies = [json.loads(r.data) for r, _ in httpserver.log]
    assert bodies == [{"position": 5, "sl": 1.07}, {"position": 5, "clear_tp": True}]
    assert all("Idempotency-Key" not in r.headers for r, _ in httpserver.log)


async def test_reconcile_reads_one_magic_and_says_when_the_gateway_lacks_it(
    httpserver: HTTPServer,
) -> None:
    position = {"ticket": 61, "identifier": 50, "symbol": "EURUSDm", "type": 0,
                "volume": "0.2", "price_open": "1.1", "magic": 7}  # fmt: skip
    deal = {"ticket": 9, "position_id": 50, "symbol": "EURUSDm", "magic": 7, "entry": 2}
    httpserver.expect_oneshot_request("/reconcile", query_string="magic=7").respond_with_json(
        {"ok": True, "data": {"positions": [position, {**position, "magic": 8}],
                              "orders": [{"ticket": 3, "magic": 7}, {"ticket": 4, "magic": 8}],
                              "deals": [deal]}}
    )  # fmt: skip
    httpserver.expect_oneshot_request("/reconcile").respond_with_json({"error": "no"}, status=404)
    c = client(httpserver)
    snapshot = await c.reconcile(7)
    assert snapshot is not None
    assert [(p.ticket, p.identifier) for p in snapshot.positions] == [(61, 50)]
    assert [o["ticket"] for o in snapshot.orders] == [3]
    assert [d.position_id for d in snapshot.deals] == [50]
    assert await c.reconcile(7) is None  # an older gateway: read positions and deals instead


async def test_readiness_tells_waiting_from_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/health/ready").respond_with_json(
        {"status": "not_ready", "mt5_status": "disconnected", "kill_switch_active": True},
        status=503,
    )
    httpserver.expect_oneshot_request("/health/ready").respond_with_json({}, status=401)
    httpserver.expect_oneshot_request("/health/ready").respond_with_json(
        {"status": "ready", "mt5_status": "connected"}
    )
    c = client(httpserver)
    assert await c.readiness_state() == ("waiting", "has trading halted by its kill switch")
    assert await c.readiness_state() == ("refused", "refused the api_key (HTTP 401)")
    assert (await c.readiness_state())[0] == "ready"
