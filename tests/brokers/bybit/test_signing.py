"""Signing: the reference's worked example as fixed vectors, and pybit as an outside reference."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from pybit._http_manager import (  # type: ignore[import-untyped]
    _V5HTTPManager,
    generate_signature,
)
from pybit.unified_trading import HTTP  # type: ignore[import-untyped]

from qkt.brokers.bybit.signing import Signer, body_bytes, query_string, sign, signed_headers

KEY, SECRET, STAMP, WINDOW = "qkt-demo-key", "qkt-demo-secret", "1700000000000", "5000"
ORDER = {
    "category": "linear",
    "symbol": "BTCUSDT",
    "side": "Buy",
    "orderType": "Market",
    "qty": "0.001",
    "orderLinkId": "qkt-7f3a-0001",
}
# reference/bybit-v5.md, "Worked example"
GET_SIGN = "e3317c6155ab8b917cb8f9705dbd337d7234c683b91bbb426eb3005046e74483"
GET_SWAPPED_SIGN = "3661b642efa20faddbd98d1a081e0a8390c3fad2a1b8730649e70cd638f1e546"
POST_SIGN = "727428811fa8ade60272fd7531fdabacec8f196c742283cdeefff8847c110d6d"
POST_SPACED_SIGN = "d94687abfd3ddf72c69e6376f9dae00106776d2d1cd8ea326ac9e998e7ff8a3b"


def pybit_session() -> HTTP:
    return HTTP(testnet=True, api_key=KEY, api_secret=SECRET)


def test_worked_example_get_in_both_parameter_orders() -> None:
    qs = query_string({"category": "linear", "symbol": "BTCUSDT"})
    assert qs == "category=linear&symbol=BTCUSDT"
    assert sign(SECRET, STAMP, KEY, WINDOW, qs) == GET_SIGN
    swapped = query_string({"symbol": "BTCUSDT", "category": "linear"})
    assert swapped == "symbol=BTCUSDT&category=linear"  # the order given is the order sent
    assert sign(SECRET, STAMP, KEY, WINDOW, swapped) == GET_SWAPPED_SIGN


def test_worked_example_post_in_both_separator_forms() -> None:
    body = body_bytes(ORDER)
    assert body == (
        b'{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Market",'
        b'"qty":"0.001","orderLinkId":"qkt-7f3a-0001"}'
    )
    assert sign(SECRET, STAMP, KEY, WINDOW, body.decode()) == POST_SIGN
    spaced = json.dumps(ORDER)  # pybit's form: the same dictionary, other bytes, other signature
    assert sign(SECRET, STAMP, KEY, WINDOW, spaced) == POST_SPACED_SIGN


def test_signatures_are_lowercase_hex_and_headers_carry_the_exact_texts() -> None:
    headers = signed_headers(KEY, SECRET, 1700000000000, 5000, "category=linear&symbol=BTCUSDT")
    assert headers == {
        "X-BAPI-API-KEY": KEY,
        "X-BAPI-TIMESTAMP": STAMP,
        "X-BAPI-RECV-WINDOW": WINDOW,
        "X-BAPI-SIGN": GET_SIGN,
        "X-BAPI-SIGN-TYPE": "2",
    }
    assert GET_SIGN.lower() == GET_SIGN and len(GET_SIGN) == 64


def test_pybit_signs_the_worked_example_the_same() -> None:
    session = pybit_session()
    for payload, expected in [
        ("category=linear&symbol=BTCUSDT", GET_SIGN),
        ("symbol=BTCUSDT&category=linear", GET_SWAPPED_SIGN),
        (body_bytes(ORDER).decode(), POST_SIGN),
        (json.dumps(ORDER), POST_SPACED_SIGN),
    ]:
        assert session._auth(payload, 5000, 1700000000000) == expected
        assert generate_signature(False, SECRET, f"{STAMP}{KEY}{WINDOW}{payload}") == expected


def test_qkt_signs_what_pybit_would_send() -> None:
    """pybit builds its own payloads (sorted GET parameters, spaced JSON): signed by qkt over
    the same text, the signature is pybit's."""
    session = pybit_session()
    params = {"symbol": "ETHUSDT", "category": "linear", "limit": 50}
    get_payload = _V5HTTPManager.prepare_payload("GET", dict(params))
    post_payload = _V5HTTPManager.prepare_payload("POST", {**ORDER, "qty": 0.5, "positionIdx": 0})
    for payload in (get_payload, post_payload):
        assert sign(SECRET, STAMP, KEY, WINDOW, payload) == session._auth(
            payload, 5000, 1700000000000
        )


@settings(max_examples=60, deadline=None)
@given(
    key=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    secret=st.text(min_size=1, max_size=60),
    stamp=st.integers(min_value=0, max_value=10**13),
    window=st.integers(min_value=1, max_value=120_000),
    payload=st.text(max_size=300),
)
def test_qkt_and_pybit_agree_on_any_key_secret_stamp_window_and_payload(
    key: str, secret: str, stamp: int, window: int, payload: str
) -> None:
    session = HTTP(testnet=True, api_key=key, api_secret=secret)
    ours = signed_headers(key, secret, stamp, window, payload)["X-BAPI-SIGN"]
    assert ours == session._auth(payload, window, stamp)


def test_query_string_is_built_once_in_order_and_left_as_sent() -> None:
    assert query_string(None) == "" and query_string({}) == ""
    assert query_string({"a": "1", "skip": None, "b": 2, "flag": True}) == "a=1&b=2&flag=true"
    # lists keep their commas and cursors, already percent-encoded, go back unchanged
    assert query_string({"coin": "USDT,BTC"}) == "coin=USDT,BTC"
    cursor = "page_args%3D1707%26symbol_args%3DBTCUSDT"
    assert query_string({"cursor": cursor}) == f"cursor={cursor}"
    # anything else that needs it is encoded before signing: the signed text is the sent text
    assert query_string({"note": "a b&c"}) == "note=a%20b%26c"
    assert query_string({"price": Decimal("1E+2")}) == "price=100"


def test_body_is_compact_json_with_decimals_as_strings() -> None:
    assert body_bytes({"qty": Decimal("0.010"), "positionIdx": 0, "reduceOnly": True}) == (
        b'{"qty":"0.010","positionIdx":0,"reduceOnly":true}'
    )


def test_signer_stamps_with_the_offset_and_never_shows_its_credentials() -> None:
    signer = Signer(KEY, SECRET, recv_window_ms=5000)
    assert signer.offset_ms is None
    signer.observe(server_ms=10_000, sent_ms=11_000, received_ms=12_000)
    assert signer.offset_ms == -1500
    headers = signer.headers("x", timestamp_ms=1700000000000)
    assert headers["X-BAPI-SIGN"] == sign(SECRET, STAMP, KEY, WINDOW, "x")
    assert KEY not in repr(signer) and SECRET not in repr(signer)
    echoed = f"origin_string[{STAMP}{KEY}{WINDOW}x] secret={SECRET}\nsecond line"
    masked = signer.mask(echoed)
    assert KEY not in masked and SECRET not in masked and "\n" not in masked
