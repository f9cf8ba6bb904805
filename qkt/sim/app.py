"""The gateway's HTTP surface (reference/mt5-gateway.md) over a :class:`SimState`, plus test hooks.

Test hooks under ``/_sim/``: ``GET /_sim/orders`` (every order request received, with its
Idempotency-Key), ``POST /_sim/step`` (move prices), ``POST /_sim/quote`` (set one quote) and
``POST /_sim/faults`` (latency_ms, status_5xx, timeout_next, malformed_next, drop_after_order,
requote_next).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qkt.sim.state import RETCODE_REQUOTE, SimState


@dataclass
class Faults:
    latency_ms: int = 0
    status_5xx: int = 0
    timeout_next: bool = False
    malformed_next: bool = False
    drop_after_order: bool = False
    requote_next: bool = False


def _num(value: Any) -> Decimal | None:
    return None if value in (None, "", 0, "0") else Decimal(str(value))


def create_app(state: SimState, *, api_key: str | None = None) -> Starlette:
    faults = Faults()
    ids = itertools.count(1)

    def wrap(payload: Any) -> dict[str, Any]:
        return {"ok": True, "request_id": f"sim-{next(ids)}", "data": payload}

    async def gate(request: Request) -> Response | None:
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.timeout_next:  # hang past any client timeout, then drop the request unserved
            faults.timeout_next = False
            await asyncio.sleep(state.timeout_s)
            return Response(status_code=504)
        if faults.status_5xx > 0:
            faults.status_5xx -= 1
            return JSONResponse({"error": "service unavailable"}, status_code=503)
        if faults.malformed_next:
            faults.malformed_next = False
            return Response('{"data": [', media_type="application/json")
        if api_key and request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return None

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            early = await gate(request)
            return early if early is not None else await handler(request)

        return endpoint

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def ready(request: Request) -> Response:
        return JSONResponse({"status": "ready"})

    async def account(request: Request) -> Response:
        with state.lock:
            floating = state.floating()
            return JSONResponse(
                {
                    "login": state.login,
                    "server": state.server,
                    "name": "qkt simulator",
                    "currency": "USD",
                    "balance": float(state.balance),
                    "equity": float(state.balance + floating),
                    "profit": float(floating),
                    "margin": 0.0,
                    "margin_free": float(state.balance + floating),
                    "leverage": 100,
                    "margin_mode": 2 if state.hedging else 0,
                    "trade_mode": 0,
                }
            )

    async def symbol_info(request: Request) -> Response:
        inst = state.instruments.get(request.path_params["symbol"])
        if inst is None:
            return JSONResponse({"error": "unknown symbol"}, status_code=404)
        bid, ask, _ = state.quotes[inst.name]
        return JSONResponse(
            {
                "bid": float(bid),
                "ask": float(ask),
                "digits": inst.digits,
                "point": float(inst.point),
                "trade_stops_level": 0,
                "trade_freeze_level": 0,
                "volume_min": float(inst.volume_min),
                "volume_max": float(inst.volume_max),
                "volume_step": float(inst.volume_step),
                "trade_contract_size": float(inst.contract_size),
            }
        )

    async def tick(request: Request) -> Response:
        symbol = request.path_params["symbol"]
        if symbol not in state.quotes:
            return JSONResponse({"error": "unknown symbol"}, status_code=404)
        bid, ask, msc = state.quotes[symbol]
        return JSONResponse(
            {
                "symbol": symbol,
                "bid": float(bid),
                "ask": float(ask),
                "last": 0.0,
                "volume": 0,
                "time": msc // 1000,
                "time_msc": msc,
            }
        )

    async def positions(request: Request) -> Response:
        magic = request.query_params.get("magic")
        with state.lock:
            rows = []
            for p in state.positions.values():
                if magic is not None and str(p.magic) != magic:
                    continue
                bid, ask, _ = state.quotes[p.symbol]
                rows.append(
                    {
                        "ticket": p.ticket,
                        "symbol": p.symbol,
                        "type": p.type,
                        "volume": str(p.volume),
                        "price_open": str(p.price_open),
                        "price_current": str(bid if p.type == 0 else ask),
                        "sl": str(p.sl or 0),
                        "tp": str(p.tp or 0),
                        "profit": "0",
                        "swap": "0",
                        "magic": p.magic,
                        "time_msc": p.time_msc,
                        "comment": p.comment,
                    }
                )
        return JSONResponse(wrap(rows))

    async def orders(request: Request) -> Response:
        return JSONResponse(wrap([]))

    async def deals(request: Request) -> Response:
        position = request.query_params.get("position")
        with state.lock:
            rows = [d for d in state.deals if position is None or str(d["position_id"]) == position]
        return JSONResponse(wrap(rows))

    async def order(request: Request) -> Response:
        body = await _json(request)
        state.received.append(
            {"body": body, "idempotency_key": request.headers.get("idempotency-key")}
        )
        if faults.requote_next:
            faults.requote_next = False
            return JSONResponse(
                {"error": "Requote", "result": {"retcode": RETCODE_REQUOTE}}, status_code=409
            )
        status, result = state.market_order(body)
        if faults.drop_after_order:
            faults.drop_after_order = False
            return Response(status_code=502)  # placed, but the answer is lost: outcome unknown
        return JSONResponse(
            {"result": result, **({"error": result["comment"]} if status >= 400 else {})},
            status_code=status,
        )

    async def close_position(request: Request) -> Response:
        body = await _json(request)
        ticket = int((body.get("position") or {}).get("ticket", 0))
        status, result = state.close(ticket)  # whole position, whatever volume says
        return JSONResponse({"result": result}, status_code=status)

    async def close_partial(request: Request) -> Response:
        body = await _json(request)
        status, result = state.close(int(body.get("ticket", 0)), _num(body.get("volume")))
        return JSONResponse({"result": result}, status_code=status)

    async def modify(request: Request) -> Response:
        body = await _json(request)
        status, result = state.modify(
            int(body.get("position", 0)), _num(body.get("sl")), _num(body.get("tp"))
        )
        return JSONResponse({"result": result}, status_code=status)

    async def sim_orders(request: Request) -> Response:
        return JSONResponse(wrap(list(state.received)))

    async def sim_step(request: Request) -> Response:
        state.step()
        return JSONResponse({"ok": True})

    async def sim_quote(request: Request) -> Response:
        body = await _json(request)
        state.set_quote(str(body["symbol"]), Decimal(str(body["bid"])), Decimal(str(body["ask"])))
        return JSONResponse({"ok": True})

    async def sim_faults(request: Request) -> Response:
        body = await _json(request)
        for key, value in body.items():
            if hasattr(faults, key):
                setattr(faults, key, type(getattr(faults, key))(value))
        return JSONResponse({"ok": True, "faults": faults.__dict__})

    routes = [
        Route("/health/live", live),
        Route("/health/ready", guarded(ready)),
        Route("/account", guarded(account)),
        Route("/symbol_info/{symbol}", guarded(symbol_info)),
        Route("/symbol_info_tick/{symbol}", guarded(tick)),
        Route("/get_positions", guarded(positions)),
        Route("/orders", guarded(orders)),
        Route("/history_deals_get", guarded(deals)),
        Route("/order", guarded(order), methods=["POST"]),
        Route("/close_position", guarded(close_position), methods=["POST"]),
        Route("/position_close_partial", guarded(close_partial), methods=["POST"]),
        Route("/modify_sl_tp", guarded(modify), methods=["POST"]),
        Route("/_sim/orders", sim_orders),
        Route("/_sim/step", sim_step, methods=["POST"]),
        Route("/_sim/quote", sim_quote, methods=["POST"]),
        Route("/_sim/faults", sim_faults, methods=["POST"]),
    ]
    return Starlette(routes=routes)


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
