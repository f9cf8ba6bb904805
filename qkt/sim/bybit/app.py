"""The Bybit v5 REST surface over a :class:`BybitState`, as Bybit answers it
(reference/bybit-v5.md), plus test hooks.

What a client sees:

* Every ``/v5/`` answer is ``{"retCode", "retMsg", "result", "retExtInfo", "time"}`` with HTTP 200
  for business errors (parameters, balance, duplicates, signature, timestamp, rate limit);
  headers ``Ret_code``, ``Traceid``, ``Timenow``. Unknown paths are HTTP 404 (retCode 10017), a
  GET carrying a body HTTP 403.
* ``/v5/market/*`` (``time``, ``tickers``, ``instruments-info``, ``kline``) take no signature; every
  other route is checked as :mod:`qkt.sim.bybit.auth` says, then against Bybit's rolling
  1-second limits (10006 ``Too many visits!`` past them); its answers carry ``X-Bapi-Limit``,
  ``X-Bapi-Limit-Status``, ``X-Bapi-Limit-Reset-Timestamp``.
* Private routes: ``POST /v5/order/create``, ``/v5/order/cancel``, ``/v5/position/trading-stop``,
  ``/v5/position/set-leverage``; ``GET /v5/order/realtime``, ``/v5/order/history``,
  ``/v5/execution/list``, ``/v5/position/list``, ``/v5/account/wallet-balance``,
  ``/v5/user/query-api``.

Test hooks (no auth; plain JSON with ``ok``): ``GET /_sim/orders`` (every ``order/create`` that
arrived: ``time``, raw ``body``, ``placed``, ``status`` (HTTP), ``retCode``, ``orderId``,
``orderLinkId``, ``fault``), ``GET /_sim/requests`` and ``POST /_sim/requests/reset`` (counts per
method and route template, as the gateway simulator's), ``POST /_sim/step`` (move prices),
``POST /_sim/quote`` (``{symbol, bid, ask[, last]}``) and ``POST /_sim/faults``
(:mod:`qkt.sim.bybit.faults`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from qkt.sim.app import RequestCounter
from qkt.sim.bybit import reads
from qkt.sim.bybit.auth import RateLimiter, authenticate
from qkt.sim.bybit.common import Refused, params_error
from qkt.sim.bybit.faults import BAD_GATEWAY, DROP, RETCODE_TEXT, UNAVAILABLE, Droppable, Faults
from qkt.sim.bybit.state import BybitState

DEFAULT_API_KEY = "qkt-sim-key"
DEFAULT_API_SECRET = "qkt-sim-secret"
Read = Callable[[BybitState, reads.Query], dict[str, Any]]
Write = Callable[[BybitState, dict[str, Any]], dict[str, Any]]
Endpoint = Callable[[Request], Awaitable[Response]]
CUT_JSON = b'{"retCode":0,"retMsg":"OK","result":{"list":[{"symbol":"'


class Venue:
    """The routes of one simulated Bybit host: its fault switches, rate-limit windows and
    request counts live as long as it does."""

    def __init__(self, state: BybitState, api_key: str, api_secret: str) -> None:
        self.state = state
        self.api_key = api_key
        self.api_secret = api_secret
        self.faults = Faults()
        self.limiter = RateLimiter(state.now_ms)
        self.requests: Counter[str] = Counter()
        self.since = datetime.now(UTC)
        self._since_ns = state.time_ns()

    # ------------------------------------------------------------ answers
    def envelope(
        self,
        code: int,
        message: str,
        result: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        now = self.state.now_ms()
        body = {
            "retCode": code,
            "retMsg": message,
            "result": result if result is not None else {},
            "retExtInfo": {},
            "time": now,
        }
        extra = {"Ret_code": str(code), "Traceid": secrets.token_hex(16), "Timenow": str(now)}
        return JSONResponse(body, status, headers={**extra, **(headers or {})})

    def ok(self, result: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
        return self.envelope(0, "OK", result, headers)

    def refused(self, exc: Refused, headers: dict[str, str] | None = None) -> Response:
        return self.envelope(exc.code, exc.message, {}, headers)

    def finish(self, response: Response) -> Response:
        """The ``malformed_next`` switch: the answer is cut off mid-JSON."""
        if self.faults.take("malformed_next"):
            return Response(CUT_JSON, 200, media_type="application/json")
        return response

    async def early(self, request: Request) -> Response | None:
        """What every ``/v5/`` request goes through first: latency, then a 503."""
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        if self.faults.take("status_5xx"):
            return Response(UNAVAILABLE, 503, media_type="text/html")
        return None

    async def admit(self, request: Request) -> tuple[bytes, dict[str, str]] | Response:
        """A private request's payload and rate-limit headers, or the answer refusing it."""
        body = await request.body()
        if request.method == "GET" and body:
            return Response(b"<html><body><h1>403 Forbidden</h1></body></html>", 403,
                            media_type="text/html")  # fmt: skip
        payload = request.scope["query_string"] if request.method == "GET" else body
        try:
            authenticate(
                request.headers, payload, self.api_key, self.api_secret, self.state.now_ms()
            )
        except Refused as exc:
            return self.refused(exc)
        category = request.query_params.get("category", "")
        if request.method == "POST":
            category = str((_loads(body) or {}).get("category", ""))
        budget, within = self.limiter.take(request.url.path, category, self.state.rate_limits)
        headers = self.limiter.headers(budget)
        if not within:
            return self.envelope(10006, "Too many visits!", {}, headers)
        return body, headers

    # ------------------------------------------------------------ route kinds
    def public(self, read: Read) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            early = await self.early(request)
            if early is not None:
                return early
            try:
                answer = self.ok(read(self.state, request.query_params))
            except Refused as exc:
                answer = self.refused(exc)
            return self.finish(answer)

        return endpoint

    def private_read(self, read: Read) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            early = await self.early(request)
            if early is not None:
                return early
            admitted = await self.admit(request)
            if isinstance(admitted, Response):
                return self.finish(admitted)
            _, headers = admitted
            try:
                answer = self.ok(read(self.state, request.query_params), headers)
            except Refused as exc:
                answer = self.refused(exc, headers)
            return self.finish(answer)

        return endpoint

    def private_write(self, write: Write) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            early = await self.early(request)
            if early is not None:
                return early
            admitted = await self.admit(request)
            if isinstance(admitted, Response):
                return self.finish(admitted)
            body, headers = admitted
            try:
                answer = self.ok(write(self.state, _object(body)), headers)
            except Refused as exc:
                answer = self.refused(exc, headers)
            return self.finish(answer)

        return endpoint

    async def create(self, request: Request) -> Response:
        """``POST /v5/order/create``, with every fault switch that concerns placing."""
        raw = await request.body()
        record: dict[str, Any] = {
            "time": self.state.now_ms(),
            "body": raw.decode("utf-8", "replace"),
            "placed": False,
            "status": 200,
            "retCode": None,
            "orderId": None,
            "orderLinkId": None,
            "fault": None,
        }
        self.state.received.append(record)
        answer = await self._create(request, record)
        record["status"] = answer.status_code
        parsed = _loads(bytes(answer.body)) if answer.status_code == 200 else None
        if record["retCode"] is None and parsed:
            record["retCode"] = parsed.get("retCode")
        return answer

    async def _create(self, request: Request, record: dict[str, Any]) -> Response:
        faults = self.faults
        early = await self.early(request)
        if early is not None:
            record["fault"] = "status_5xx"
            return early
        admitted = await self.admit(request)
        if isinstance(admitted, Response):
            return self.finish(admitted)
        body, headers = admitted
        if faults.take("create_5xx_before"):
            record["fault"] = "create_5xx_before"
            return Response(BAD_GATEWAY, 502, media_type="text/html")
        forced, placed_anyway = faults.create_retcode, faults.create_retcode_placed
        faults.create_retcode, faults.create_retcode_placed = 0, False
        text = RETCODE_TEXT.get(forced, "forced by the simulator")
        if forced and not placed_anyway:
            record.update(fault="create_retcode", retCode=forced)
            return self.finish(self.envelope(forced, text, {}, headers))
        try:
            order = self.state.create(_object(body))
        except Refused as exc:
            return self.finish(self.refused(exc, headers))
        record.update(placed=True, orderId=order.order_id, orderLinkId=order.link_id)
        if forced:
            record.update(fault="create_retcode", retCode=forced)
            return self.finish(self.envelope(forced, text, {}, headers))
        if faults.take("create_5xx_after"):
            record["fault"] = "create_5xx_after"
            return Response(BAD_GATEWAY, 502, media_type="text/html")
        if faults.take("drop_after_create"):
            record["fault"] = "drop_after_create"
            request.scope[DROP] = True
            return Response(b"", 200)
        return self.finish(
            self.ok({"orderId": order.order_id, "orderLinkId": order.link_id}, headers)
        )

    # ------------------------------------------------------------ test hooks
    async def sim_orders(self, request: Request) -> Response:
        with self.state.lock:
            return JSONResponse({"ok": True, "data": list(self.state.received)})

    async def sim_requests(self, request: Request) -> Response:
        return JSONResponse({
            "ok": True,
            "since": self.since.isoformat(),
            "elapsed_s": (self.state.time_ns() - self._since_ns) / 1e9,
            "total": self.requests.total(),
            "counts": dict(sorted(self.requests.items())),
        })  # fmt: skip

    async def sim_requests_reset(self, request: Request) -> Response:
        self.requests.clear()
        self.since = datetime.now(UTC)
        self._since_ns = self.state.time_ns()
        return JSONResponse({"ok": True})

    async def sim_step(self, request: Request) -> Response:
        self.state.step()
        return JSONResponse({"ok": True})

    async def sim_quote(self, request: Request) -> Response:
        body = _loads(await request.body()) or {}
        try:
            symbol = str(body["symbol"])
            bid, ask = Decimal(str(body["bid"])), Decimal(str(body["ask"]))
            last = None if body.get("last") is None else Decimal(str(body["last"]))
            if not 0 < bid <= ask:
                raise ValueError("need 0 < bid <= ask")
            self.state.set_quote(symbol, bid, ask, last)
        except KeyError as exc:
            return JSONResponse({"ok": False, "error": f"missing or unknown: {exc}"}, 400)
        except (ValueError, InvalidOperation) as exc:
            return JSONResponse({"ok": False, "error": str(exc) or "bad number"}, 400)
        quote = self.state.market.quotes[symbol]
        row = {"bid": str(quote.bid), "ask": str(quote.ask), "last": str(quote.last)}
        return JSONResponse({"ok": True, "symbol": symbol, **row})

    async def sim_faults(self, request: Request) -> Response:
        body = _loads(await request.body())
        if body is None:
            return JSONResponse({"ok": False, "error": "the body must be a JSON object"}, 400)
        try:
            self.faults.update(body)
            if "clock_offset_ms" in body:
                offset = body["clock_offset_ms"]
                if isinstance(offset, bool) or not isinstance(offset, int):
                    raise ValueError("clock_offset_ms must be an integer")
                self.state.clock_offset_ms = offset
        except ValueError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, 400)
        shown = {**self.faults.__dict__, "clock_offset_ms": self.state.clock_offset_ms}
        return JSONResponse({"ok": True, "faults": shown})

    # ------------------------------------------------------------ errors and routes
    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return self.envelope(10017, "route not found", status=404)
        if status == 405:
            return self.envelope(10017, "route not found", status=400)
        return self.envelope(10016, "Internal server error.", status=status)

    async def internal(self, request: Request, exc: Exception) -> Response:
        return self.envelope(10016, f"Internal server error. ({type(exc).__name__})", status=500)

    def routes(self) -> list[Route]:
        pub, read, write = self.public, self.private_read, self.private_write
        return [
            Route("/v5/market/time", pub(lambda s, q: reads.server_time(s))),
            Route("/v5/market/tickers", pub(reads.tickers)),
            Route("/v5/market/instruments-info", pub(reads.instruments)),
            Route("/v5/market/kline", pub(reads.kline)),
            Route("/v5/order/realtime", read(reads.realtime)),
            Route("/v5/order/history", read(reads.history)),
            Route("/v5/execution/list", read(reads.executions)),
            Route("/v5/position/list", read(reads.positions)),
            Route("/v5/account/wallet-balance", read(reads.wallet)),
            Route("/v5/user/query-api", read(lambda s, q: reads.query_api(s, self.api_key))),
            Route("/v5/order/create", self.create, methods=["POST"]),
            Route("/v5/order/cancel", write(_cancel), methods=["POST"]),
            Route("/v5/position/trading-stop", write(_trading_stop), methods=["POST"]),
            Route("/v5/position/set-leverage", write(_set_leverage), methods=["POST"]),
            Route("/_sim/orders", self.sim_orders, methods=["GET"]),
            Route("/_sim/requests", self.sim_requests, methods=["GET"]),
            Route("/_sim/requests/reset", self.sim_requests_reset, methods=["POST"]),
            Route("/_sim/step", self.sim_step, methods=["POST"]),
            Route("/_sim/quote", self.sim_quote, methods=["POST"]),
            Route("/_sim/faults", self.sim_faults, methods=["POST"]),
        ]


def _cancel(state: BybitState, body: dict[str, Any]) -> dict[str, Any]:
    order = state.cancel(body)
    return {"orderId": order.order_id, "orderLinkId": order.link_id}


def _trading_stop(state: BybitState, body: dict[str, Any]) -> dict[str, Any]:
    state.trading_stop(body)
    return {}


def _set_leverage(state: BybitState, body: dict[str, Any]) -> dict[str, Any]:
    state.set_leverage(body)
    return {}


def _loads(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _object(raw: bytes) -> dict[str, Any]:
    data = _loads(raw)
    if data is None:
        raise params_error("params error: the body must be a JSON object")
    return data


class BybitApp(Droppable):
    """The simulator as an ASGI app; ``venue`` holds its fault switches and counts."""

    def __init__(self, venue: Venue, app: ASGIApp) -> None:
        super().__init__(app)
        self.venue = venue


def create_app(
    state: BybitState,
    *,
    api_key: str = DEFAULT_API_KEY,
    api_secret: str = DEFAULT_API_SECRET,
) -> BybitApp:
    venue = Venue(state, api_key, api_secret)
    routes = venue.routes()
    quiet = ("/_sim/requests", "/_sim/requests/reset")
    inner = Starlette(
        routes=routes,
        middleware=[Middleware(RequestCounter, counts=venue.requests, routes=routes, quiet=quiet)],
        exception_handlers={HTTPException: venue.http_error, Exception: venue.internal},
    )
    return BybitApp(venue, inner)
