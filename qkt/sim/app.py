"""The gateway's HTTP surface over a :class:`SimState`, as real mt5-gateways answer
(reference/mt5-gateway.md, "What real gateways do"), plus test hooks.

What a client sees:

* Every JSON answer carries ``ok`` and ``request_id`` (an ``X-Request-ID`` header sent is echoed);
  lists come as ``{"data": [...]}``; ``/orders`` as ``{"total", "orders"}`` (``?magic=`` ignored).
  Errors are ``{"ok": false, "error", "error_type", "request_id", "details"?}``; unknown routes are
  404 ``not_found``.
* ``Authorization: Bearer <api_key>`` (when the server has one) on every route but
  ``GET /health/live``; ``/health/ready`` is 200 ``ready`` or 503 ``not_ready``.
* ``POST /order``: the body's fields are checked (400 ``validation_error``), volume rounded down to
  the step, the terminal's ``order_check`` refuses with 400 and ``details.retcode``; success
  echoes ``client_order_id``. Idempotency by ``client_order_id`` / ``Idempotency-Key`` (1-128
  characters, both must match): the same key and body replay the stored answer with
  ``Idempotent-Replayed: true``, another body is 409 ``idempotency_conflict``; successes and 502s
  are kept in memory for ``SimState.idempotency_ttl_s`` (lost with the server).
* ``/close_position`` closes the whole position, ``/position_close_partial`` part of it,
  ``/modify_sl_tp`` keeps an omitted level (``clear_sl``/``clear_tp`` remove one); none of them
  deduplicates. ``DELETE /orders/{ticket}`` cancels a pending order.
* ``/history_deals_get`` needs ``from_date``/``to_date`` (broker wall clock) and returns every deal
  of the window even with ``position=`` (unless ``SimState.deals_filter_position``);
  ``/reconcile?magic=N`` (unless ``SimState.reconcile`` is False); bars from ``/fetch_data_range``
  and ``/fetch_data_pos`` in UTC (unless ``SimState.bars`` is False).

Test hooks under ``/_sim/`` (no auth): ``GET /_sim/orders`` (every order request that passed auth,
with its Idempotency-Key), ``GET /_sim/requests`` (how many HTTP requests were answered, per
method and route template — ``GET /symbol_info_tick/{symbol}``, ``(no route)`` for a path none
matches — since the start or since ``POST /_sim/requests/reset``; these two are not counted),
``POST /_sim/step`` (move prices), ``POST /_sim/quote`` (set one quote), ``POST /_sim/symbol``
(change or create an instrument: trade_mode, volume_min/step/max, trade_stops_level, visible,
price, digits, contract_size) and ``POST /_sim/faults``:

* ``latency_ms``: every guarded request waits that long first;
* ``status_5xx``: the next N requests answer 503; ``timeout_next``: the next request hangs
  ``SimState.timeout_s`` and gets a bare 504; ``malformed_next``: the next answer is broken JSON;
* ``not_ready_ms``: for that many ms the terminal is disconnected (ready 503, other routes 503
  ``mt5_unavailable``); ``kill_switch``: ready 503 with ``kill_switch_active``, trading routes 423;
* ``unavailable_next``: the next order answers 503 ``mt5_unavailable``, nothing placed;
  ``requote_next``: the next order answers 409 ``requote``, nothing placed;
  ``drop_after_order``: the next order is placed and answers 502 ``unknown_outcome``;
  ``in_progress_next``: the next order is placed (and its answer stored) but answers 409
  ``idempotency_in_progress``, as if a request with the same key were still running;
* ``empty_positions_next``: the next ``/get_positions`` answers ``[]`` whatever is open;
* ``place_after_ms``: the terminal places the next order only after that long, whether or not
  the client still waits; ``answer_after_ms``: the next order is placed at once and its answer
  comes that long after (a huge value: never, for a client's timeout).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from qkt.brokers.mt5.clock import parse_wall_date
from qkt.sim.state import (
    MAX_BAR_RANGE,
    RETCODE_DONE,
    RETCODE_INVALID_STOPS,
    RETCODE_INVALID_VOLUME,
    RETCODE_PLACED,
    RETCODE_REQUOTE,
    TIMEFRAMES,
    TYPE_NAMES,
    Bar,
    Instrument,
    Invalid,
    SimOrder,
    SimPosition,
    SimState,
    decimal_of,
    int_of,
    parse_order,
    round_down,
)

Handler = Callable[[Request], Awaitable[Response]]
MAX_KEY = 128
MAX_BARS = 100_000


@dataclass
class Faults:
    latency_ms: int = 0
    status_5xx: int = 0
    timeout_next: bool = False
    malformed_next: bool = False
    drop_after_order: bool = False
    requote_next: bool = False
    unavailable_next: bool = False
    in_progress_next: bool = False
    empty_positions_next: bool = False
    kill_switch: bool = False
    not_ready_ms: int = 0  # set: the terminal is disconnected for that long from now
    # The next order: the terminal places it only after this long (a client that gave up waiting
    # does not stop it), or places it at once and the answer comes this long after (a huge value:
    # the answer never comes).
    place_after_ms: int = 0
    answer_after_ms: int = 0


@dataclass
class Stored:
    fingerprint: str
    status: int
    body: dict[str, Any]
    at: float


class IdempotencyStore:
    """Answers of ``POST /order`` by key, in memory, each kept ``ttl_s`` on ``clock``."""

    def __init__(self, clock: Callable[[], float], ttl_s: float) -> None:
        self._clock = clock
        self._ttl = ttl_s
        self._items: dict[str, Stored] = {}

    def get(self, key: str) -> Stored | None:
        now = self._clock()
        for old in [k for k, v in self._items.items() if now - v.at >= self._ttl]:
            del self._items[old]
        return self._items.get(key)

    def put(self, key: str, fingerprint: str, status: int, body: dict[str, Any]) -> None:
        self._items[key] = Stored(fingerprint, status, body, self._clock())


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class Gateway:
    """The routes of one simulated gateway process: its faults and idempotency store live as
    long as it does."""

    def __init__(self, state: SimState, api_key: str | None) -> None:
        self.state = state
        self.api_key = api_key
        self.faults = Faults()
        self.not_ready_until = 0.0
        self.store = IdempotencyStore(lambda: state.monotonic(), state.idempotency_ttl_s)
        self._ids = itertools.count(1)
        self.requests: Counter[str] = Counter()
        self.requests_since = (datetime.now(UTC), state.monotonic())

    # ------------------------------------------------------------ envelope
    def rid(self, request: Request) -> str:
        scope = request.scope
        if "sim_request_id" not in scope:
            scope["sim_request_id"] = request.headers.get("x-request-id") or (
                f"sim-{next(self._ids)}"
            )
        return str(scope["sim_request_id"])

    def ok(
        self,
        request: Request,
        payload: dict[str, Any],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        rid = self.rid(request)
        body = {"ok": True, "request_id": rid, **payload}
        return JSONResponse(body, status, headers={"X-Request-ID": rid, **(headers or {})})

    def error_body(
        self,
        request: Request,
        error_type: str,
        text: str,
        details: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error": text,
            "error_type": error_type,
            "request_id": self.rid(request),
        }
        if details is not None:
            body["details"] = details
        body.update(extra)
        return body

    def fail(
        self,
        request: Request,
        status: int,
        error_type: str,
        text: str,
        details: dict[str, Any] | None = None,
        **extra: Any,
    ) -> JSONResponse:
        body = self.error_body(request, error_type, text, details, **extra)
        return JSONResponse(body, status, headers={"X-Request-ID": self.rid(request)})

    def invalid(self, request: Request, text: str, retcode: int | None = None) -> JSONResponse:
        details = None if retcode is None else {"retcode": retcode}
        return self.fail(request, 400, "validation_error", text, details)

    # ------------------------------------------------------------ gate
    def not_ready(self) -> bool:
        return self.state.monotonic() < self.not_ready_until

    async def gate(self, request: Request) -> Response | None:
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.timeout_next:  # hang past any client timeout, then drop the request unserved
            faults.timeout_next = False
            await asyncio.sleep(self.state.timeout_s)
            return Response(status_code=504)
        if faults.status_5xx > 0:
            faults.status_5xx -= 1
            return self.fail(request, 503, "service_unavailable", "service unavailable")
        if faults.malformed_next:
            faults.malformed_next = False
            return Response('{"data": [', media_type="application/json")
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.fail(request, 401, "authentication_error", "invalid or missing api key")
        return None

    def guarded(self, handler: Handler, *, record: bool = False, ready: bool = True) -> Handler:
        async def endpoint(request: Request) -> Response:
            early = await self.gate(request)
            if early is not None:
                return early
            if record:
                self.state.received.append(
                    {
                        "body": await _json(request),
                        "idempotency_key": request.headers.get("idempotency-key"),
                    }
                )
            if ready and self.not_ready():
                return self.fail(request, 503, "mt5_unavailable", "MT5 unavailable")
            return await handler(request)

        return endpoint

    def kill(self, request: Request) -> Response | None:
        if self.faults.kill_switch:
            return self.fail(request, 423, "kill_switch", "kill switch is active: trading halted")
        return None

    # ------------------------------------------------------------ rows
    def position_row(self, p: SimPosition) -> dict[str, Any]:
        bid, ask, _ = self.state.quotes[p.symbol]
        return {
            "ticket": p.ticket,
            "identifier": p.identifier,
            "symbol": p.symbol,
            "type": p.type,
            "volume": str(p.volume),
            "price_open": str(p.price_open),
            "price_current": str(bid if p.type == 0 else ask),
            "sl": str(p.sl or 0),
            "tp": str(p.tp or 0),
            "profit": str(self.state.position_profit(p)),
            "swap": "0",
            "magic": p.magic,
            "comment": p.comment,
            "time": p.time_msc // 1000,
            "time_msc": p.time_msc,
        }

    def order_row(self, o: SimOrder) -> dict[str, Any]:
        bid, ask, _ = self.state.quotes[o.symbol]
        return {
            "ticket": o.ticket,
            "symbol": o.symbol,
            "type": o.type,
            "type_str": TYPE_NAMES[o.type],
            "volume_initial": str(o.volume),
            "volume_current": str(o.volume),
            "price_open": str(o.price),
            "price_current": str(ask if o.type % 2 == 0 else bid),
            "sl": str(o.sl or 0),
            "tp": str(o.tp or 0),
            "magic": o.magic,
            "comment": o.comment,
            "type_time": o.type_time,
            "type_filling": o.type_filling,
            "time_setup": o.time_msc // 1000,
            "time_setup_msc": o.time_msc,
            "time_expiration": o.expiration,
            "state": 1,  # ORDER_STATE_PLACED
        }

    def symbol_row(self, inst: Instrument) -> dict[str, Any]:
        bid, ask, _ = self.state.quotes[inst.name]
        return {
            "name": inst.name,
            "bid": float(bid),
            "ask": float(ask),
            "digits": inst.digits,
            "point": float(inst.point),
            "spread": inst.spread_points,
            "trade_mode": inst.trade_mode,
            "visible": inst.visible,
            "trade_stops_level": inst.trade_stops_level,
            "trade_freeze_level": 0,
            "volume_min": float(inst.volume_min),
            "volume_max": float(inst.volume_max),
            "volume_step": float(inst.volume_step),
            "trade_contract_size": float(inst.contract_size),
        }

    # ------------------------------------------------------------ health and reads
    async def live(self, request: Request) -> Response:
        return self.ok(request, {"status": "alive"})

    async def ready(self, request: Request) -> Response:
        down, killed = self.not_ready(), self.faults.kill_switch
        if not down and not killed:
            return self.ok(
                request, {"status": "ready", "mt5_status": "connected", "kill_switch_active": False}
            )
        why = "MT5 terminal is not connected" if down else "kill switch is active"
        body = {
            "ok": False,
            "request_id": self.rid(request),
            "status": "not_ready",
            "mt5_status": "disconnected" if down else "connected",
            "error": why,
            "kill_switch_active": killed,
        }
        return JSONResponse(body, 503, headers={"X-Request-ID": self.rid(request)})

    async def account(self, request: Request) -> Response:
        state = self.state
        with state.lock:
            floating = state.floating()
            equity = state.balance + floating
            return self.ok(
                request,
                {
                    "login": state.login,
                    "server": state.server,
                    "name": "qkt simulator",
                    "currency": "USD",
                    "balance": float(state.balance),
                    "equity": float(equity),
                    "profit": float(floating),
                    "margin": 0.0,
                    "margin_free": float(equity),
                    "margin_level": 0.0,
                    "leverage": 100,
                    "margin_mode": 2 if state.hedging else 0,
                    "trade_mode": 0,
                },
            )

    def unknown_symbol(self, request: Request, symbol: str) -> JSONResponse:
        return self.fail(request, 404, "not_found", f"Symbol {symbol} not found")

    async def symbol_info(self, request: Request) -> Response:
        symbol = request.path_params["symbol"]
        with self.state.lock:
            inst = self.state.instruments.get(symbol)
            if inst is None:
                return self.unknown_symbol(request, symbol)
            return self.ok(request, self.symbol_row(inst))

    async def tick(self, request: Request) -> Response:
        symbol = request.path_params["symbol"]
        with self.state.lock:
            if symbol not in self.state.instruments:
                return self.unknown_symbol(request, symbol)
            bid, ask, msc = self.state.quotes[symbol]
        row = {
            "symbol": symbol,
            "bid": float(bid),
            "ask": float(ask),
            "last": 0.0,
            "volume": 0,
            "flags": 6,
            "time": msc // 1000,
            "time_msc": msc,
        }
        return self.ok(request, row)

    async def positions(self, request: Request) -> Response:
        query = request.query_params
        if self.faults.empty_positions_next:  # the terminal failed to count its positions
            self.faults.empty_positions_next = False
            return self.ok(request, {"data": []})
        magic = _int_or_none(query.get("magic"))  # a non-integer magic is ignored
        ticket = _int_or_none(query.get("ticket"))
        symbol = query.get("symbol")
        with self.state.lock:
            rows = [
                self.position_row(p)
                for p in self.state.positions.values()
                if (magic is None or p.magic == magic)
                and (ticket is None or p.ticket == ticket)
                and (symbol is None or p.symbol == symbol)
            ]
        return self.ok(request, {"data": rows})

    async def orders(self, request: Request) -> Response:
        query = request.query_params  # ?magic= is ignored, as real gateways do
        ticket = _int_or_none(query.get("ticket"))
        symbol = query.get("symbol")
        with self.state.lock:
            rows = [
                self.order_row(o)
                for o in self.state.orders.values()
                if (ticket is None or o.ticket == ticket) and (symbol is None or o.symbol == symbol)
            ]
        return self.ok(request, {"total": len(rows), "orders": rows})

    async def deals(self, request: Request) -> Response:
        query = request.query_params
        state = self.state
        if not query.get("from_date") or not query.get("to_date"):
            return self.invalid(request, "from_date and to_date are required")
        try:
            start = parse_wall_date(query["from_date"], state.zone)
            end = parse_wall_date(query["to_date"], state.zone)
        except ValueError:
            return self.invalid(request, "from_date and to_date must be ISO-8601 dates")
        position: int | None = None
        if query.get("position") is not None:
            try:
                position = int_of(query["position"], "position")
            except Invalid as exc:
                return self.invalid(request, str(exc))
        with state.lock:
            rows = [
                dict(d)
                for d in state.deals
                if start <= state.utc_of(d["time_msc"]) <= end
                and (
                    position is None
                    or not state.deals_filter_position
                    or d["position_id"] == position
                )
            ]
        return self.ok(request, {"data": rows})

    async def reconcile(self, request: Request) -> Response:
        state = self.state
        if not state.reconcile:
            return self.not_found(request)
        try:
            magic = int_of(request.query_params.get("magic"), "magic")
        except Invalid:
            return self.invalid(request, "magic must be an integer")
        since = datetime.now(UTC) - timedelta(hours=24)
        with state.lock:
            data = {
                "magic": magic,
                "positions": [
                    self.position_row(p) for p in state.positions.values() if p.magic == magic
                ],
                "orders": [self.order_row(o) for o in state.orders.values() if o.magic == magic],
                "deals": [
                    dict(d)
                    for d in state.deals
                    if d["magic"] == magic and state.utc_of(d["time_msc"]) >= since
                ],
            }
        return self.ok(request, {"data": data})

    # ------------------------------------------------------------ bars (UTC)
    def bar_query(self, request: Request) -> tuple[str, str] | JSONResponse:
        if not self.state.bars:
            return self.not_found(request)
        query = request.query_params
        symbol, timeframe = query.get("symbol", ""), query.get("timeframe", "")
        if timeframe not in TIMEFRAMES:
            return self.invalid(request, f"timeframe must be one of {', '.join(TIMEFRAMES)}")
        if symbol not in self.state.instruments:
            return self.unknown_symbol(request, symbol)
        return symbol, timeframe

    async def bars_range(self, request: Request) -> Response:
        asked = self.bar_query(request)
        if isinstance(asked, JSONResponse):
            return asked
        query = request.query_params
        try:
            start, end = _utc(query.get("from_date")), _utc(query.get("to_date"))
        except ValueError:
            return self.invalid(request, "from_date and to_date must be ISO-8601 dates (UTC)")
        if end < start:
            return self.invalid(request, "to_date is before from_date")
        if end - start > MAX_BAR_RANGE:
            return self.invalid(request, "the range must not exceed 31 days")
        low, high = start.timestamp(), end.timestamp()
        bars = [b for b in self.state.bars_of(*asked) if low <= b[0] <= high]
        return self.ok(request, {"data": [_bar_row(b) for b in bars]})

    async def bars_pos(self, request: Request) -> Response:
        asked = self.bar_query(request)
        if isinstance(asked, JSONResponse):
            return asked
        query = request.query_params
        try:
            start = int_of(query.get("start", "0"), "start")
            count = int_of(query.get("count"), "count")
        except Invalid:
            return self.invalid(request, "start and count must be integers")
        if start < 0 or not 1 <= count <= MAX_BARS:
            return self.invalid(request, f"start must be >= 0 and count between 1 and {MAX_BARS}")
        bars = self.state.bars_of(*asked)
        stop = max(len(bars) - start, 0)
        return self.ok(request, {"data": [_bar_row(b) for b in bars[max(stop - count, 0) : stop]]})

    # ------------------------------------------------------------ trading
    async def order(self, request: Request) -> Response:
        body = await _json_or_none(request)
        if body is None:
            return self.invalid(request, "the body must be a JSON object")
        killed = self.kill(request)
        if killed is not None:
            return killed
        header = request.headers.get("idempotency-key")
        cid = body.get("client_order_id")
        if cid is not None and not isinstance(cid, str):
            return self.invalid(request, "client_order_id must be a string")
        if cid is not None and header is not None and cid != header:
            return self.invalid(request, "client_order_id and Idempotency-Key differ")
        key = cid if cid is not None else header
        if key is not None and not 1 <= len(key) <= MAX_KEY:
            return self.invalid(request, f"the idempotency key must be 1 to {MAX_KEY} characters")
        try:
            spec = parse_order(body, key, self.state.max_order_volume)
        except Invalid as exc:
            return self.invalid(request, str(exc))
        fingerprint = json.dumps(body, sort_keys=True, separators=(",", ":"))
        if key is not None:
            stored = self.store.get(key)
            if stored is not None and stored.fingerprint != fingerprint:
                return self.fail(
                    request,
                    409,
                    "idempotency_conflict",
                    "this idempotency key was used with a different request",
                )
            if stored is not None:
                replay = {**stored.body, "request_id": self.rid(request)}
                headers = {"Idempotent-Replayed": "true", "X-Request-ID": self.rid(request)}
                return JSONResponse(replay, stored.status, headers=headers)
        faults = self.faults
        if faults.unavailable_next:
            faults.unavailable_next = False
            return self.fail(request, 503, "mt5_unavailable", "MT5 unavailable")
        if faults.requote_next:
            faults.requote_next = False
            return self.fail(
                request, 409, "requote", "Requote", {"retcode": RETCODE_REQUOTE}, retryable=True
            )
        place_after, faults.place_after_ms = faults.place_after_ms, 0
        answer_after, faults.answer_after_ms = faults.answer_after_ms, 0
        if place_after:
            await asyncio.sleep(place_after / 1000)
        retcode, result = self.state.send(spec)
        if answer_after:
            await asyncio.sleep(answer_after / 1000)
        if retcode not in (RETCODE_DONE, RETCODE_PLACED):
            return self.invalid(request, str(result["comment"]), retcode)
        placed = retcode == RETCODE_PLACED
        answer: dict[str, Any] = {
            "ok": True,
            "request_id": self.rid(request),
            "message": "Order placed successfully" if placed else "Order executed successfully",
            "state": "placed" if placed else "executed",
            "result": result,
            "client_order_id": key,
            "partial_fill": False,
        }
        status = 200
        if faults.drop_after_order:  # placed, but the terminal's answer is lost
            faults.drop_after_order = False
            answer = self.error_body(
                request,
                "unknown_outcome",
                "the order may have been placed: reconcile before retrying",
                client_order_id=key,
                retry_guidance="reconcile",
            )
            status = 502
        if key is not None:
            self.store.put(key, fingerprint, status, answer)
        if faults.in_progress_next:
            faults.in_progress_next = False
            return self.fail(
                request,
                409,
                "idempotency_in_progress",
                "a request with this idempotency key is still in progress",
            )
        return JSONResponse(answer, status, headers={"X-Request-ID": self.rid(request)})

    def trade_answer(
        self, request: Request, status: int, result: dict[str, Any], message: str
    ) -> Response:
        if status != 200:
            retcode = result.get("retcode")
            return self.invalid(request, str(result["comment"]), retcode)
        payload = {"message": message, "state": "executed", "result": result}
        return self.ok(request, {**payload, "partial_fill": False})

    async def close_position(self, request: Request) -> Response:
        killed = self.kill(request)
        if killed is not None:
            return killed
        body = await _json(request)
        position = body.get("position")
        try:
            if not isinstance(position, dict):
                raise Invalid("position must be an object with a ticket")
            ticket = int_of(position.get("ticket"), "position.ticket")
        except Invalid as exc:
            return self.invalid(request, str(exc))
        # The whole position, whatever volume the body gives.
        status, result = self.state.close(ticket, comment="Close position")
        return self.trade_answer(request, status, result, "Position closed")

    async def close_partial(self, request: Request) -> Response:
        killed = self.kill(request)
        if killed is not None:
            return killed
        body = await _json(request)
        state = self.state
        try:
            ticket = int_of(body.get("ticket"), "ticket")
            if body.get("volume") is None:
                raise Invalid("volume is required")
            volume = decimal_of(body["volume"], "volume")
        except Invalid as exc:
            return self.invalid(request, str(exc))
        with state.lock:
            pos = state.positions.get(ticket)
            if pos is None:
                return self.invalid(request, f"Position {ticket} not found")
            if not 0 < volume < pos.volume:
                return self.invalid(
                    request, f"volume must be above 0 and below the position's {pos.volume}"
                )
            inst = state.instruments[pos.symbol]
            volume = round_down(volume, inst.volume_step)
            if volume < inst.volume_min:
                return self.invalid(request, "Invalid volume", RETCODE_INVALID_VOLUME)
            status, result = state.close(ticket, volume, comment="Partial close")
        return self.trade_answer(request, status, result, "Position partially closed")

    async def modify(self, request: Request) -> Response:
        killed = self.kill(request)
        if killed is not None:
            return killed
        body = await _json(request)
        state = self.state
        try:
            ticket = int_of(body.get("position"), "position")
            levels: dict[str, Decimal | None] = {}
            for name in ("sl", "tp"):
                clear = _truthy(body.get(f"clear_{name}", False))
                if name in body:
                    if clear:
                        raise Invalid(f"{name} and clear_{name} together")
                    if body[name] is None:
                        raise Invalid(f"{name} must be a price (clear_{name} removes it)")
                    level = decimal_of(body[name], name)
                    if level <= 0:
                        raise Invalid(f"{name} must be a positive price (clear_{name} removes it)")
                    levels[name] = level
                elif clear:
                    levels[name] = None
            if not levels:
                raise Invalid("nothing to modify: give sl, tp, clear_sl or clear_tp")
        except Invalid as exc:
            return self.invalid(request, str(exc))
        with state.lock:
            pos = state.positions.get(ticket)
            if pos is None:
                return self.invalid(request, f"Position {ticket} not found")
            sl = levels.get("sl", pos.sl)  # an omitted level is kept
            tp = levels.get("tp", pos.tp)
            status, result = state.modify(ticket, sl, tp)
        if status != 200 and result.get("retcode") == RETCODE_INVALID_STOPS:
            return self.invalid(request, "Invalid stops", RETCODE_INVALID_STOPS)
        return self.trade_answer(request, status, result, "SL/TP modified")

    async def cancel_order(self, request: Request) -> Response:
        try:
            ticket = int_of(request.path_params["ticket"], "ticket")
        except Invalid as exc:
            return self.invalid(request, str(exc))
        if not self.state.cancel(ticket):
            return self.fail(request, 404, "not_found", f"Order {ticket} not found")
        result = {
            "retcode": RETCODE_DONE,
            "order": ticket,
            "deal": 0,
            "comment": "Request executed",
        }
        return self.ok(request, {"message": "Order cancelled successfully", "result": result})

    # ------------------------------------------------------------ test hooks
    async def sim_orders(self, request: Request) -> Response:
        return self.ok(request, {"data": list(self.state.received)})

    async def sim_requests(self, request: Request) -> Response:
        at, started = self.requests_since
        return self.ok(
            request,
            {
                "since": at.isoformat(),
                "elapsed_s": self.state.monotonic() - started,
                "total": self.requests.total(),
                "counts": dict(sorted(self.requests.items())),
            },
        )

    async def sim_requests_reset(self, request: Request) -> Response:
        self.requests.clear()
        self.requests_since = (datetime.now(UTC), self.state.monotonic())
        return self.ok(request, {})

    async def sim_step(self, request: Request) -> Response:
        self.state.step()
        return self.ok(request, {})

    async def sim_quote(self, request: Request) -> Response:
        body = await _json(request)
        self.state.set_quote(
            str(body["symbol"]), Decimal(str(body["bid"])), Decimal(str(body["ask"]))
        )
        return self.ok(request, {})

    async def sim_symbol(self, request: Request) -> Response:
        body = await _json(request)
        name = body.get("symbol")
        if not isinstance(name, str) or not name:
            return self.invalid(request, "symbol is required")
        state = self.state
        try:
            with state.lock:
                inst = state.instruments.get(name)
                if inst is None:
                    inst = Instrument(
                        name,
                        decimal_of(body.get("price", "100.00"), "price"),
                        int_of(body.get("digits", 2), "digits"),
                        decimal_of(body.get("contract_size", 1), "contract_size"),
                    )
                    state.add_instrument(inst)
                for key in ("volume_min", "volume_step", "volume_max"):
                    if key in body:
                        setattr(inst, key, decimal_of(body[key], key))
                for key in ("trade_mode", "trade_stops_level"):
                    if key in body:
                        setattr(inst, key, int_of(body[key], key))
                if "visible" in body:
                    inst.visible = _truthy(body["visible"])
                row = self.symbol_row(inst)
        except Invalid as exc:
            return self.invalid(request, str(exc))
        return self.ok(request, row)

    async def sim_faults(self, request: Request) -> Response:
        body = await _json(request)
        faults = self.faults
        for item in fields(faults):
            if item.name not in body:
                continue
            value = body[item.name]
            if isinstance(getattr(faults, item.name), bool):
                setattr(faults, item.name, _truthy(value))
            else:
                setattr(faults, item.name, int(value))
        if "not_ready_ms" in body:
            self.not_ready_until = self.state.monotonic() + faults.not_ready_ms / 1000
        return self.ok(request, {"faults": faults.__dict__})

    # ------------------------------------------------------------ errors
    def not_found(self, request: Request) -> JSONResponse:
        return self.fail(request, 404, "not_found", f"no route {request.url.path}")

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return self.not_found(request)
        kind = {405: "method_not_allowed"}.get(status, "internal_error")
        return self.fail(request, status, kind, str(getattr(exc, "detail", exc)))

    async def internal(self, request: Request, exc: Exception) -> Response:
        return self.fail(request, 500, "internal_error", f"{type(exc).__name__}: {exc}")

    def routes(self) -> list[Route]:
        g = self.guarded
        return [
            Route("/health/live", self.live),
            Route("/health/ready", g(self.ready, ready=False)),
            Route("/account", g(self.account)),
            Route("/symbol_info/{symbol}", g(self.symbol_info)),
            Route("/symbol_info_tick/{symbol}", g(self.tick)),
            Route("/get_positions", g(self.positions)),
            Route("/orders", g(self.orders)),
            Route("/orders/{ticket}", g(self.cancel_order), methods=["DELETE"]),
            Route("/history_deals_get", g(self.deals)),
            Route("/reconcile", g(self.reconcile)),
            Route("/fetch_data_range", g(self.bars_range)),
            Route("/fetch_data_pos", g(self.bars_pos)),
            Route("/order", g(self.order, record=True), methods=["POST"]),
            Route("/close_position", g(self.close_position), methods=["POST"]),
            Route("/position_close_partial", g(self.close_partial), methods=["POST"]),
            Route("/modify_sl_tp", g(self.modify), methods=["POST"]),
            Route("/_sim/orders", self.sim_orders),
            Route("/_sim/requests", self.sim_requests, methods=["GET"]),
            Route("/_sim/requests/reset", self.sim_requests_reset, methods=["POST"]),
            Route("/_sim/step", self.sim_step, methods=["POST"]),
            Route("/_sim/quote", self.sim_quote, methods=["POST"]),
            Route("/_sim/symbol", self.sim_symbol, methods=["POST"]),
            Route("/_sim/faults", self.sim_faults, methods=["POST"]),
        ]


class RequestCounter:
    """Counts each HTTP request into ``counts`` once it has been answered, by method and the
    template of the route that took it (``(no route)`` when none did); requests to the routes in
    ``quiet`` are not counted."""

    def __init__(
        self, app: ASGIApp, counts: Counter[str], routes: list[Route], quiet: tuple[str, ...]
    ) -> None:
        self.app = app
        self.counts = counts
        self.templates: dict[Any, str] = {route.endpoint: route.path for route in routes}
        self.quiet = quiet

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            template = self.templates.get(scope.get("endpoint"), "(no route)")
            if template not in self.quiet:
                self.counts[f"{scope['method']} {template}"] += 1


def create_app(state: SimState, *, api_key: str | None = None) -> Starlette:
    gateway = Gateway(state, api_key)
    routes = gateway.routes()
    quiet = ("/_sim/requests", "/_sim/requests/reset")
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestCounter, counts=gateway.requests, routes=routes, quiet=quiet)
        ],
        exception_handlers={HTTPException: gateway.http_error, Exception: gateway.internal},
    )


def _int_or_none(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _utc(text: str | None) -> datetime:
    """An ISO-8601 moment of the bar endpoints: UTC when it names no offset."""
    if not text:
        raise ValueError("missing date")
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _bar_row(bar: Bar) -> dict[str, Any]:
    t, o, h, lo, c, ticks, spread = bar
    return {
        "time": t,
        "open": o,
        "high": h,
        "low": lo,
        "close": c,
        "tick_volume": ticks,
        "spread": spread,
        "real_volume": 0,
    }


async def _json_or_none(request: Request) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def _json(request: Request) -> dict[str, Any]:
    """The body as a JSON object, ``{}`` when it is not one."""
    return await _json_or_none(request) or {}
