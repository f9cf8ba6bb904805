"""Two accounts of one venue in one strategy: each leg reaches its own gateway with its own magic,
and the same symbol keeps two separate positions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from qkt.brokers.registry import BrokerRegistry
from qkt.config import load_config
from qkt.dsl import parse_strategy
from qkt.feeds.replay import ReplaySource
from qkt.loop import drive
from qkt.session import LiveSession
from tests.conftest import ROOT

STRATEGY = """STRATEGY split VERSION 1
SYMBOLS
p = EXNESS-PERSONAL:EURUSD EVERY 1m
c = EXNESS-CORPORATE:EURUSD EVERY 1m
RULES
WHEN ema(p, 3) crosses ABOVE ema(p, 8) THEN BUY p SIZING 0.1; SELL c SIZING 0.2
"""
INFO = {"volume_min": 0.01, "volume_max": 100, "volume_step": 0.01}


def gateway() -> HTTPServer:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/health/ready").respond_with_json({"status": "ready"})
    server.expect_request("/account").respond_with_json({"login": 1, "trade_mode": 0})
    server.expect_request("/get_positions").respond_with_json([])
    server.expect_request("/symbol_info/EURUSDm").respond_with_json(INFO)
    server.expect_request("/order", method="POST").respond_with_json(
        {"result": {"retcode": 10009, "order": 1, "price": "1.08500"}}
    )
    server.start()
    return server


@pytest.fixture
def gateways() -> Iterator[tuple[HTTPServer, HTTPServer]]:
    personal, corporate = gateway(), gateway()
    yield personal, corporate
    personal.stop()
    corporate.stop()


@pytest.mark.anyio
async def test_each_account_gets_its_own_orders_and_positions(
    gateways: tuple[HTTPServer, HTTPServer], tmp_path: Path
) -> None:
    personal, corporate = gateways
    env = {
        "QKT_NO_CACHE": "1",
        "QKT_BROKER_EXNESS_PERSONAL_GATEWAY_URL": personal.url_for("").rstrip("/"),
        "QKT_BROKER_EXNESS_CORPORATE_GATEWAY_URL": corporate.url_for("").rstrip("/"),
    }
    config = load_config(ROOT / "qkt.config.yaml", env=env, cwd=ROOT)
    parsed = parse_strategy(STRATEGY, "split.qkt")
    assert parsed.strategy is not None
    session = LiveSession(parsed.strategy, BrokerRegistry.from_config(config))
    await drive(session, ReplaySource(ROOT / "examples" / "data" / "eurusd-1m.csv"))

    def orders(server: HTTPServer) -> list[dict[str, object]]:
        return [json.loads(r.data) for r, _ in server.log if r.path == "/order"]

    mine, theirs = orders(personal), orders(corporate)
    assert mine and len(mine) == len(theirs)
    assert {(o["symbol"], o["magic"], o["type"], o["volume"]) for o in mine} == {
        ("EURUSDm", 10005, "BUY", 0.1)
    }
    assert {(o["symbol"], o["magic"], o["type"], o["volume"]) for o in theirs} == {
        ("EURUSDm", 10006, "SELL", 0.2)
    }
    p = session.positions.get("EXNESS-PERSONAL", "EURUSD")
    c = session.positions.get("EXNESS-CORPORATE", "EURUSD")
    assert p.qty == Decimal("0.1") * len(mine)
    assert c.qty == Decimal("-0.2") * len(theirs)
