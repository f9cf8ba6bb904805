"""Request signing for Bybit v5 (reference/bybit-v5.md, "Signing").

The signed text is ``timestamp + api_key + recv_window + payload``; the payload is the query
string exactly as it follows ``?`` on the request line (GET) or the body bytes exactly as sent
(POST). Bybit does not canonicalise either, so each is built here once, signed, and sent as
built: the query string goes out as ``path?qs`` (never through httpx's ``params=``, which
re-encodes), the body as ``content=`` those bytes (never ``json=``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

SIGN_TYPE = "2"  # HMAC-SHA256, what pybit and Bybit's own sample send

# Kept verbatim in a query value: unreserved characters, ``,`` (lists such as ``coin=USDT,BTC``)
# and ``%`` (cursors come back already percent-encoded and must be sent back as they came).
_QUERY_SAFE = "-_.~,%"


def sign(secret: str, timestamp: str, api_key: str, recv_window: str, payload: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``timestamp + api_key + recv_window + payload`` keyed with
    ``secret`` (all UTF-8); ``timestamp`` and ``recv_window`` are the exact header texts."""
    text = f"{timestamp}{api_key}{recv_window}{payload}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    api_key: str, secret: str, timestamp_ms: int, recv_window_ms: int, payload: str
) -> dict[str, str]:
    """The ``X-BAPI-*`` headers of one private request whose payload is ``payload``."""
    timestamp, recv_window = str(timestamp_ms), str(recv_window_ms)
    return {
        "X-BAPI-API-KEY": api_key,
        "X-BAPI-TIMESTAMP": timestamp,
        "X-BAPI-RECV-WINDOW": recv_window,
        "X-BAPI-SIGN": sign(secret, timestamp, api_key, recv_window, payload),
        "X-BAPI-SIGN-TYPE": SIGN_TYPE,
    }


STAMP_MARGIN_MS = 250


class Signer:
    """The credentials and the venue's clock: stamps and signs private requests, and masks the
    credentials out of any text. Neither credential appears in its repr.

    Bybit accepts a stamp when ``server - recv_window <= stamp < server + 1000``, so a local
    clock 1 s fast fails every call. :meth:`observe` keeps offset = server - midpoint of the
    local send and receive times of a ``/v5/market/time`` read; a stamp is local + offset - a
    small margin (erring to the past is allowed up to the recv window)."""

    def __init__(self, api_key: str, api_secret: str, recv_window_ms: int = 5000) -> None:
        self._key = api_key
        self._secret = api_secret
        self.recv_window_ms = recv_window_ms
        self.offset_ms: float | None = None  # None until observed

    def __repr__(self) -> str:
        return f"Signer(recv_window_ms={self.recv_window_ms}, offset_ms={self.offset_ms})"

    def observe(self, server_ms: int, sent_ms: float, received_ms: float) -> float:
        self.offset_ms = server_ms - (sent_ms + received_ms) / 2
        return self.offset_ms

    def venue_now_ms(self) -> float:
        """The venue's clock as best known (the local clock before any observation)."""
        return time.time() * 1000 + (self.offset_ms or 0.0)

    def stamp(self) -> int:
        return int(self.venue_now_ms() - min(STAMP_MARGIN_MS, self.recv_window_ms // 2))

    def headers(self, payload: str, timestamp_ms: int | None = None) -> dict[str, str]:
        stamp = self.stamp() if timestamp_ms is None else timestamp_ms
        return signed_headers(self._key, self._secret, stamp, self.recv_window_ms, payload)

    def mask(self, text: str, limit: int = 200) -> str:
        """``text`` on one line, at most ``limit`` characters, key and secret replaced by ***."""
        line = " ".join(text.split())
        for secret in (self._secret, self._key):
            if secret:
                line = line.replace(secret, "***")
        return line[:limit]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def query_string(params: Mapping[str, Any] | None) -> str:
    """``k=v&k=v`` in the mapping's order, ``None`` values left out; the text that is both
    signed and sent. Values are percent-encoded except for unreserved characters, ``,`` and
    ``%`` (an already-encoded cursor goes back unchanged)."""
    if not params:
        return ""
    return "&".join(
        f"{quote(str(k), safe='')}={quote(_text(v), safe=_QUERY_SAFE)}"
        for k, v in params.items()
        if v is not None
    )


def body_bytes(body: Mapping[str, Any]) -> bytes:
    """The body of a POST, serialised once as compact JSON (the bytes signed are the bytes sent).
    Decimals go out as plain-notation strings, the type Bybit documents for prices and sizes."""
    return json.dumps(
        body, separators=(",", ":"), ensure_ascii=False, default=_json_default
    ).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"cannot send a {type(value).__name__} in a Bybit body")
