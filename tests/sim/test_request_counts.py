"""``GET /_sim/requests``: the simulator counts the HTTP requests it answers, per method and route
template, over real HTTP (what ``benchmarks/gateway_load.py`` reads)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qkt.sim import SimServer, SimState


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with (
        SimServer(SimState(seed=3, symbols=("EURUSDm", "XAUUSDm")), api_key="k") as sim,
        httpx.Client(base_url=sim.url, timeout=5) as client,
    ):
        yield client


def counts(http: httpx.Client) -> dict[str, Any]:
    answer = http.get("/_sim/requests")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["ok"] is True
    return body


def test_requests_are_counted_per_method_and_route_template(http: httpx.Client) -> None:
    auth = {"Authorization": "Bearer k"}
    assert counts(http)["counts"] == {}
    for symbol in ("EURUSDm", "XAUUSDm", "EURUSDm"):
        assert http.get(f"/symbol_info_tick/{symbol}", headers=auth).status_code == 200
    assert http.get("/get_positions", headers=auth, params={"magic": 1}).status_code == 200
    assert http.get("/get_positions").status_code == 401  # refused, but it reached the gateway
    assert http.get("/health/live").status_code == 200
    assert http.get("/no/such/route").status_code == 404
    assert http.get("/order", headers=auth).status_code == 405  # POST only
    body = counts(http)
    assert body["counts"] == {
        "GET /symbol_info_tick/{symbol}": 3,
        "GET /get_positions": 2,
        "GET /health/live": 1,
        "GET (no route)": 1,
        "GET /order": 1,
    }
    assert body["total"] == 8
    assert body["elapsed_s"] >= 0
    assert body["since"]


def test_a_reset_starts_the_counts_again_and_reading_them_counts_nothing(
    http: httpx.Client,
) -> None:
    http.get("/health/live")
    first = counts(http)
    assert counts(http)["counts"] == {"GET /health/live": 1}
    assert http.post("/_sim/requests/reset").status_code == 200
    after = counts(http)
    assert after["counts"] == {} and after["total"] == 0
    assert after["since"] >= first["since"]
    http.post("/_sim/step")
    assert counts(http)["counts"] == {"POST /_sim/step": 1}
