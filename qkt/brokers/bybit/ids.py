"""The ``orderLinkId`` of an order: Bybit's client order id, derived from qkt's.

Bybit takes at most 36 characters of ``[A-Za-z0-9_-]`` and refuses one it has seen (110072 linear,
170141 spot); it echoes the id on orders and executions, except on the orders it makes itself
(TP/SL triggers, liquidations: ``""``). qkt's client ids are longer and freer
(``momentum-mwvx3k2a-000001``), so the link is ``sssss-`` — five characters naming the session, the
same tag MT5 comments carry (:func:`qkt.brokers.tags.session_tag`) — and thirty of a hash of the
client id: deterministic (a restarted session finds its journaled orders by it), unique for two
client ids, and a client id is never issued twice, so a link is never reused.
"""

from __future__ import annotations

import base64
import hashlib

from qkt.brokers.tags import session_tag

MAX_LINK = 36
_SESSION = 5
_ORDER = MAX_LINK - _SESSION - 1


def order_link_id(session: str, client_id: str) -> str:
    digest = hashlib.blake2b(client_id.encode(), digest_size=20).digest()
    order = base64.b32encode(digest).decode().lower()[:_ORDER]
    return f"{session_tag(session)}-{order}"


def session_of_link(link: str) -> str | None:
    """The session tag of a link qkt made, or None (Bybit's own orders, trades by hand)."""
    if len(link) == MAX_LINK and link[_SESSION] == "-":
        return link[:_SESSION]
    return None
