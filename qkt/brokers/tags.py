"""Order tags a venue keeps for qkt: which session an order belongs to, and which order it is.

MT5 gateways cut an order's comment to 25 characters and terminals keep about 16; common gateways do
not echo client order ids. So the only field that reliably comes back on positions and deals is the
first 16 characters of the comment, and qkt puts a tag there that is unique within them:
``sssss-oooooooooo`` — five characters naming the session (a hash of its name) and ten naming the
order (a hash of its client id). A restarted session recognises its positions by the first five;
an order of unknown outcome is found by all sixteen. Client ids themselves (printed, journaled,
sent as ``client_order_id`` and ``Idempotency-Key``) stay readable.
"""

from __future__ import annotations

import base64
import hashlib
import time

TAG_LENGTH = 16
MAX_CLIENT_ID = 128  # what gateways take as client_order_id / Idempotency-Key
_SEQUENCE = 7  # "-000001": the order's number in its run
_SESSION = 5
_ORDER = TAG_LENGTH - _SESSION - 1
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_last_stamp = 0


def _hash(text: str, size: int) -> str:
    digest = hashlib.blake2b(text.encode(), digest_size=10).digest()
    return base64.b32encode(digest).decode().lower()[:size]


def session_tag(session: str) -> str:
    """The five characters that name ``session`` on every order it sends."""
    return _hash(session, _SESSION)


def order_tag(session: str, client_id: str) -> str:
    """The 16-character comment of the order ``client_id`` of ``session``."""
    return f"{session_tag(session)}-{_hash(client_id, _ORDER)}"


def session_of(comment: str) -> str | None:
    """The session tag of a comment qkt wrote, or None for anything else."""
    if len(comment) >= TAG_LENGTH and comment[_SESSION] == "-":
        return comment[:_SESSION]
    return None


def run_stamp(now_ms: int | None = None) -> str:
    """A short, increasing stamp of this run (milliseconds, base 36): client ids of two runs of
    one session never collide, so a gateway's idempotency cache never answers a new order with an
    old one's result."""
    global _last_stamp
    value = int(time.time() * 1000) if now_ms is None else now_ms
    if now_ms is None:  # two sessions started in the same millisecond still differ
        value = _last_stamp = max(value, _last_stamp + 1)
    out = ""
    while value:
        value, digit = divmod(value, 36)
        out = _DIGITS[digit] + out
    return out or "0"


def client_prefix(name: str, stamp: str | None = None) -> str:
    """The prefix of a session's client ids: ``name-stamp`` (or ``name`` for paper runs), short
    enough that ``prefix-000001`` fits the gateway's :data:`MAX_CLIENT_ID` characters. A longer
    name is cut and followed by a hash of the whole name, so two long names that share their
    first hundred characters still get different ids, and the same name always the same prefix."""
    tail = f"-{stamp}" if stamp else ""
    room = MAX_CLIENT_ID - _SEQUENCE - len(tail)
    if len(name) > room:
        digest = _hash(name, 8)
        name = f"{name[: room - len(digest) - 1]}_{digest}"
    return name + tail


def shortened(name: str) -> bool:
    """Whether client ids of ``name`` carry a shortened name (see :func:`client_prefix`)."""
    return client_prefix(name, run_stamp(2**63)) != f"{name}-{run_stamp(2**63)}"
