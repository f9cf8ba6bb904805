"""Fault switches of the Bybit simulator (``POST /_sim/faults``) and the outermost ASGI layer
that can drop a connection without answering.

Every switch is a JSON field of the ``POST /_sim/faults`` body; counts take ``true`` for 1 and
``false`` for 0, and each use counts one down:

* ``latency_ms``: every ``/v5/`` request waits this long before anything else;
* ``status_5xx``: the next N ``/v5/`` requests of any kind answer HTTP 503 with a non-JSON body,
  before anything is checked or done;
* ``create_5xx_before``: the next N ``order/create`` answer HTTP 502 (a non-JSON body, as from
  Bybit's CDN) and place nothing;
* ``create_5xx_after``: the next N ``order/create`` are placed, then answer HTTP 502;
* ``drop_after_create``: the next N ``order/create`` are placed, then the connection is closed
  without a response (the client sees a transport error);
* ``malformed_next``: the next N ``/v5/`` answers are cut-off JSON (HTTP 200) after the request
  was processed — a create among them is placed;
* ``create_retcode`` (with ``create_retcode_placed``, default false): the next ``order/create``
  answers this retCode (10006 ``Too many visits!``, 10000 ``Server Timeout``, 10016, ...) after
  auth, placed or not as ``create_retcode_placed`` says; 0 turns it off;
* ``clock_offset_ms``: from now on the venue's clock runs this far ahead of the machine's
  (negative: behind) — ``market/time``, the timestamp check, every time it writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DROP = "qkt.sim.drop"
RETCODE_TEXT = {
    10000: "Server Timeout",
    10002: "invalid request, please check your server timestamp or recv_window param",
    10005: "Permission denied, please check your API key permissions.",
    10006: "Too many visits!",
    10016: "Internal server error.",
    110007: "ab not enough for new order",
    170007: "Timeout waiting for response from backend server.",
    170146: "Order creation timeout",
    170035: "Submitted to the system for processing!",
}
BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
UNAVAILABLE = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class Faults:
    latency_ms: int = 0
    status_5xx: int = 0
    create_5xx_before: int = 0
    create_5xx_after: int = 0
    drop_after_create: int = 0
    malformed_next: int = 0
    create_retcode: int = 0
    create_retcode_placed: bool = False

    def update(self, body: dict[str, Any]) -> None:
        """Set the switches ``body`` names; an unknown name or a bad value is a ValueError."""
        unknown = sorted(set(body) - {f.name for f in fields(self)} - {"clock_offset_ms"})
        if unknown:
            raise ValueError(f"unknown fault switch(es): {', '.join(unknown)}")
        for item in fields(self):
            if item.name not in body:
                continue
            value = body[item.name]
            if isinstance(getattr(self, item.name), bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{item.name} must be true or false")
                setattr(self, item.name, value)
            elif isinstance(value, bool):
                setattr(self, item.name, int(value))
            elif isinstance(value, int) and (value >= 0 or item.name == "create_retcode"):
                setattr(self, item.name, value)
            else:
                raise ValueError(f"{item.name} must be a count (an integer >= 0)")

    def take(self, name: str) -> bool:
        """Use one of the counted switch ``name``: True when it was on."""
        left = int(getattr(self, name))
        if left <= 0:
            return False
        setattr(self, name, left - 1)
        return True


class Droppable:
    """The outermost ASGI layer: a response whose scope carries :data:`DROP` is never sent;
    the connection is closed instead (uvicorn's transport, reached through its ``send``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        dropped = False

        async def guarded(message: Message) -> None:
            nonlocal dropped
            if not dropped and message["type"] == "http.response.start" and scope.get(DROP):
                dropped = True
                transport = getattr(getattr(send, "__self__", None), "transport", None)
                if transport is not None:
                    transport.close()
                    await asyncio.sleep(0)  # uvicorn sees the loss before the app returns
                    await asyncio.sleep(0)
                    return
                raise ConnectionAbortedError("dropped by the simulator")
            if dropped:
                return
            await send(message)

        await self.app(scope, receive, guarded)
