"""A venue session on its asyncio loop: pacing never blocks the pollers, a refusal reads nothing,
start adopts only its own positions, and every run numbers its orders afresh."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from qkt.brokers.registry import BrokerRegistry
from qkt.brokers.tags import order_tag
from qkt.config import load_config
from qkt.dsl import parse_strategy
from qkt.feeds.replay import ReplaySource, Row
from qkt.feeds.venue import VenueQuotes
from qkt.loop import drive
from qkt.session import LiveSession, SessionRefused

pytestmark = pytest.mark.anyio

STRATEGY = """STRATEGY watch VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN eur.close > 100 THEN BUY eur SIZING 0.1
"""


def session_for(httpserver: HTTPServer, tmp_path: Path) -> LiveSession:
    url = httpserver.url_for("").rstrip("/")
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(
        f"brokers:\n  exness:\n    gateway_url: {url}\n    poll_interval_ms: 20\n"
        "    ready_timeout_ms: 300\n"
    )
    httpserver.expect_request("/health/ready").respond_with_json({"status": "ready"})
    httpserver.expect_request("/account").respond_with_json({"login": 1})
    httpserver.expect_request("/get_positions").respond_with_json([])
    config = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
    parsed = parse_strategy(STRATEGY, "watch.qkt")
    assert parsed.strategy is not None
    return LiveSession(parsed.strategy, BrokerRegistry.from_config(config))


async def test_a_paced_replay_leaves_the_position_poller_running(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text(
        "time,open,high,low,close\n"
        "2026-03-02T10:00:00Z,1.1,1.1,1.1,1.1\n"
        "2026-03-02T10:01:00Z,1.1,1.1,1.1,1.1\n"
        "2026-03-02T10:02:00Z,1.1,1.1,1.1,1.1\n"
    )
    session = session_for(httpserver, tmp_path)
    summary = await drive(session, ReplaySource(csv, 400.0))  # 0.15 s between rows
    reads = sum(r.path == "/get_positions" for r, _ in httpserver.log)
    assert reads > 5  # one at start, then every 20 ms while the replay waited
    assert summary.fills == 0


async def test_a_refused_start_reads_no_row(httpserver: HTTPServer, tmp_path: Path) -> None:
    session = session_for(httpserver, tmp_path)
    httpserver.clear()
    httpserver.expect_request("/health/ready").respond_with_json({"status": "starting"})
    rows_read: list[int] = []

    def rows() -> Iterator[Row]:
        rows_read.append(1)
        yield from ()

    with pytest.raises(SessionRefused) as info:
        await drive(session, rows())
    message = info.value.diagnostics[0].message
    assert "not ready" in message and "after waiting 0.3 s" in message  # waited, within its bound
    assert rows_read == []


async def test_start_adopts_only_the_positions_this_session_opened(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    def position(ticket: int, comment: str, volume: str) -> dict[str, object]:
        return {
            "ticket": ticket,
            "symbol": "EURUSDm",
            "type": 0,
            "volume": volume,
            "price_open": "1.1",
            "magic": 10001,
            "comment": comment,
        }

    session = session_for(httpserver, tmp_path)
    httpserver.clear()
    httpserver.expect_request("/health/ready").respond_with_json({"status": "ready"})
    httpserver.expect_request("/account").respond_with_json({"login": 1})
    httpserver.expect_request("/get_positions").respond_with_json(
        [
            position(1, order_tag("watch", "watch-abc-000001"), "0.3"),  # an earlier run
            position(2, order_tag("other", "other-000001"), "0.5"),  # another session
            position(3, "by hand", "0.7"),
        ]
    )
    httpserver.expect_request("/symbol_info/EURUSDm").respond_with_json(
        {"digits": 5, "trade_contract_size": 100000}
    )
    await session.start()
    assert session.positions.get("EXNESS", "EURUSD").qty == Decimal("0.3")
    await session.aclose()


def test_venue_sessions_number_their_orders_per_run(httpserver: HTTPServer, tmp_path: Path) -> None:
    first, second = session_for(httpserver, tmp_path), session_for(httpserver, tmp_path)
    a, b = first.orders.next_id(), second.orders.next_id()
    assert a.startswith("watch-") and b.startswith("watch-") and a != b
    assert a.endswith("-000001") and b.endswith("-000001")


async def test_a_poller_that_breaks_stops_the_session_with_its_own_error(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    session = session_for(httpserver, tmp_path)
    (broker,) = session.venues.values()

    async def broken() -> int:
        raise RuntimeError("poller bug")

    broker.poll = broken  # type: ignore[method-assign]

    quotes = VenueQuotes(session).rows()  # live quotes: no end of their own
    with pytest.raises(RuntimeError, match="poller bug"):  # not an ExceptionGroup
        await asyncio.wait_for(drive(session, quotes), 10)
    assert broker.client._client is None  # type: ignore[attr-defined]  # connections closed
