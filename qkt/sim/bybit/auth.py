"""Authentication of private requests, as Bybit checks it (reference/bybit-v5.md, "Signing"),
and the per-endpoint rolling 1-second rate limits.

Checked in this order, each refusal an HTTP 200 envelope:

* ``X-BAPI-API-KEY`` missing or not the server's key: 10003 ``API key is invalid.``
* ``X-BAPI-TIMESTAMP`` (epoch ms; ``X-BAPI-RECV-WINDOW`` 5000 when absent) outside
  ``server_time - recv_window <= timestamp < server_time + 1000``: 10002 ``invalid request,
  please check your server timestamp or recv_window param. req_timestamp[..],server_timestamp
  [..],recv_window[..]``
* ``X-BAPI-SIGN`` not the lowercase-hex HMAC-SHA256, keyed by the secret, of
  ``timestamp + api_key + recv_window + payload`` (the header texts as sent; the payload the
  query string exactly as it arrived after ``?`` for GET, the raw body bytes for POST):
  10004 ``Error sign, please check your signature generation algorithm: origin_string[..]``
  echoing the signed text with the key masked (the secret is never part of any answer).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from qkt.sim.bybit.common import Refused

DEFAULT_RECV_WINDOW = "5000"
FUTURE_MS = 1000
MASK = "***"


def sign(secret: str, timestamp: str, api_key: str, recv_window: str, payload: bytes) -> str:
    text = (timestamp + api_key + recv_window).encode() + payload
    return hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


def authenticate(
    headers: Mapping[str, str], payload: bytes, api_key: str, api_secret: str, server_ms: int
) -> None:
    """Raise :class:`Refused` (10003, 10002 or 10004) unless the request is signed right."""
    key = headers.get("x-bapi-api-key")
    if not key or not hmac.compare_digest(key.encode(), api_key.encode()):
        raise Refused(10003, "API key is invalid.")
    timestamp = headers.get("x-bapi-timestamp", "")
    window = headers.get("x-bapi-recv-window") or DEFAULT_RECV_WINDOW
    if not timestamp.isdigit() or not window.isdigit() or int(window) <= 0:
        raise Refused(
            10002,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{timestamp}],server_timestamp[{server_ms}],recv_window[{window}]",
        )
    if not server_ms - int(window) <= int(timestamp) < server_ms + FUTURE_MS:
        raise Refused(
            10002,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{timestamp}],server_timestamp[{server_ms}],recv_window[{window}]",
        )
    expected = sign(api_secret, timestamp, key, window, payload)
    given = headers.get("x-bapi-sign", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        shown = timestamp + MASK + window + payload.decode("utf-8", "replace")
        raise Refused(
            10004,
            f"Error sign, please check your signature generation algorithm: origin_string[{shown}]",
        )


LIMITS = {
    ("/v5/order/create", "linear"): 10,
    ("/v5/order/create", "spot"): 20,
    ("/v5/order/cancel", "linear"): 10,
    ("/v5/order/cancel", "spot"): 20,
    ("/v5/position/trading-stop", ""): 10,
    ("/v5/position/set-leverage", ""): 10,
}
READ_LIMIT = 50


@dataclass
class Budget:
    limit: int
    left: int
    reset_ms: int


class RateLimiter:
    """Bybit's per-UID limits: each endpoint (and category, for creates and cancels) a rolling
    1-second window. :meth:`take` counts a request and tells what the headers say."""

    def __init__(self, now_ms: Callable[[], int]) -> None:
        self.now_ms = now_ms
        self.windows: dict[tuple[str, str], deque[int]] = {}

    def take(self, path: str, category: str, enforce: bool) -> tuple[Budget, bool]:
        """(the budget after this request, whether it is within the limit)."""
        key = (path, category if (path, category) in LIMITS else "")
        limit = LIMITS.get(key, READ_LIMIT)
        now = self.now_ms()
        window = self.windows.setdefault(key, deque())
        while window and window[0] <= now - 1000:
            window.popleft()
        if enforce and len(window) >= limit:
            return Budget(limit, 0, window[0] + 1000), False
        window.append(now)
        return Budget(limit, max(0, limit - len(window)), now), True

    def headers(self, budget: Budget) -> dict[str, str]:
        return {
            "X-Bapi-Limit": str(budget.limit),
            "X-Bapi-Limit-Status": str(budget.left),
            "X-Bapi-Limit-Reset-Timestamp": str(budget.reset_ms),
        }
