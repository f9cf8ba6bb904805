"""Venue quotes: each MT5 route's stream is priced by its own gateway's /symbol_info_tick."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from qkt.brokers.registry import BrokerRegistry
from qkt.config import load_config
from qkt.dsl import parse_strategy
from qkt.engine.clock import WallClock
from qkt.engine.events import VenueNotice
from qkt.feeds.venue import VenueQuotes
from qkt.session import LiveSession

STRATEGY = """STRATEGY venue VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN eur.close > 2 THEN CLOSE eur
"""


@pytest.mark.anyio
async def test_quotes_are_polled_per_route_and_failures_reported_once(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    url = httpserver.url_for("").rstrip("/")
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(
        f"brokers:\n  exness:\n    gateway_url: {url}\n    retry_attempts: 1\n"
        "    tick_poll_interval_ms: 10\n"
    )
    httpserver.expect_request("/health/ready").respond_with_json({"status": "ready"})
    httpserver.expect_request("/account").respond_with_json({"login": 1})
    httpserver.expect_request("/get_positions").respond_with_json([])
    for msc, bid in ((1000, "1.1000"), (1000, "1.1000"), (2000, "1.1010")):
        httpserver.expect_oneshot_request("/symbol_info_tick/EURUSDm").respond_with_json(
            {"symbol": "EURUSDm", "bid": bid, "ask": "1.1002", "time_msc": msc}
        )
    httpserver.expect_oneshot_request("/symbol_info_tick/EURUSDm").respond_with_data(
        "x", status=500
    )
    httpserver.expect_oneshot_request("/symbol_info_tick/EURUSDm").respond_with_data(
        "x", status=500
    )
    config = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
    parsed = parse_strategy(STRATEGY, "v.qkt")
    assert parsed.strategy is not None
    session = LiveSession(parsed.strategy, BrokerRegistry.from_config(config), clock=WallClock())
    notices: list[VenueNotice] = []
    session.bus.subscribe(VenueNotice, notices.append)
    rows = []
    async with contextlib.aclosing(VenueQuotes(session).rows()) as source:
        rows += [await anext(source), await anext(source)]
        await asyncio.sleep(0.2)  # the poller keeps reading: every read now fails
        httpserver.expect_request("/symbol_info_tick/EURUSDm").respond_with_json(
            {"symbol": "EURUSDm", "bid": "1.1020", "ask": "1.1022", "time_msc": 3000}
        )
        rows.append(await anext(source))  # the gateway answers again
    assert [(r.label, r.symbol, r.tick.bid if r.tick else None) for r in rows] == [
        ("EXNESS", "EURUSD", 1.1),
        ("EXNESS", "EURUSD", 1.101),  # the repeated quote (same time_msc) is not a new row
        ("EXNESS", "EURUSD", 1.102),
    ]
    failed = sum(
        r.path == "/symbol_info_tick/EURUSDm" and s.status_code == 500 for r, s in httpserver.log
    )
    assert failed > 5  # it kept polling through the outage ...
    assert [(n.level, n.broker) for n in notices] == [("warning", "exness"), ("info", "exness")]
    assert "quotes of EURUSDm cannot be read" in notices[0].message  # ... and said so once
    session.on_row(rows[1])
    assert session.prices.quote("EXNESS", "EURUSD", "buy") is not None


@pytest.mark.anyio
async def test_a_slow_symbol_does_not_hold_back_the_others(tmp_path: Path) -> None:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        ticks = itertools.count(1000)

        def eur(request: Request) -> Response:
            body = {"bid": "1.1", "ask": "1.1002", "time_msc": next(ticks)}
            return Response(json.dumps(body), content_type="application/json")

        def gold(request: Request) -> Response:
            time.sleep(1.0)  # a terminal busy with this symbol
            body = {"bid": "2900", "ask": "2900.5", "time_msc": next(ticks)}
            return Response(json.dumps(body), content_type="application/json")

        server.expect_request("/symbol_info_tick/EURUSDm").respond_with_handler(eur)
        server.expect_request("/symbol_info_tick/XAUUSDm").respond_with_handler(gold)
        url = server.url_for("").rstrip("/")
        cfg = tmp_path / "qkt.config.yaml"
        cfg.write_text(
            f"brokers:\n  exness:\n    gateway_url: {url}\n    tick_poll_interval_ms: 20\n"
        )
        config = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
        two = STRATEGY.replace(
            "eur = EXNESS:EURUSD EVERY 1m",
            "eur = EXNESS:EURUSD EVERY 1m\ngold = EXNESS:XAUUSD EVERY 1m",
        )
        parsed = parse_strategy(two, "two.qkt")
        assert parsed.strategy is not None
        session = LiveSession(parsed.strategy, BrokerRegistry.from_config(config))
        async with contextlib.aclosing(VenueQuotes(session).rows()) as source:
            first = [(await anext(source)).symbol for _ in range(5)]
        assert first == ["EURUSD"] * 5  # while gold's first answer is still on its way
    finally:
        server.clear()
        server.stop()


CANDLES = """STRATEGY nyclose VERSION 1
SYMBOLS
eur = ICMARKETS:EURUSD EVERY 1s
RULES
WHEN eur.close > 0 THEN LOG "bar"
"""


@pytest.mark.anyio
async def test_a_new_york_close_server_gives_candles_aligned_to_utc(tmp_path: Path) -> None:
    """The server writes tick times on its own clock (UTC+2/+3): the candles they make are of
    the UTC minute and second they happened in, not two or three hours ahead."""
    from datetime import UTC, datetime

    from qkt.engine.events import LogEvent
    from qkt.sim import SimServer, SimState

    state = SimState(seed=2, symbols=("EURUSD.raw",), server_time_zone="ny-close")
    with SimServer(state, tick_ms=50) as sim:
        cfg = tmp_path / "qkt.config.yaml"  # icmarkets: a built-in ny-close profile
        cfg.write_text(
            f"brokers:\n  icmarkets:\n    gateway_url: {sim.url}\n    tick_poll_interval_ms: 20\n"
        )
        config = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
        parsed = parse_strategy(CANDLES, "c.qkt")
        assert parsed.strategy is not None
        logs: list[LogEvent] = []
        session = LiveSession(
            parsed.strategy,
            BrokerRegistry.from_config(config),
            clock=WallClock(),
            on_event=lambda e: logs.append(e) if isinstance(e, LogEvent) else None,
        )
        await session.start()
        candles: list[Any] = []
        on_bar = session.runtime.on_bar

        def seen(alias: str, candle: Any) -> Any:
            candles.append(candle)
            return on_bar(alias, candle)

        session.runtime.on_bar = seen  # type: ignore[method-assign]
        rows = []
        async with contextlib.aclosing(VenueQuotes(session).rows()) as source:
            while not logs:  # until a 1s candle closes
                row = await anext(source)
                rows.append(row)
                session.on_row(row)
        await session.aclose()
    now = datetime.now(UTC)
    assert all(abs((r.time - now).total_seconds()) < 30 for r in rows)  # UTC, not UTC+2/+3
    (candle,) = candles
    assert abs((candle.time - now).total_seconds()) < 30 and candle.time.microsecond == 0
