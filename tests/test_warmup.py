"""Warm-up from the venue: a live session's streams are fed the gateway's bar history before live
bars count, over real HTTP (``/fetch_data_range``), without any rule firing on it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from qkt.brokers.registry import BrokerRegistry
from qkt.config import load_config
from qkt.config.timezones import server_zone
from qkt.dsl import parse_strategy
from qkt.engine.clock import SimulatedClock
from qkt.engine.events import Bar, LogEvent, VenueNotice
from qkt.engine.runtime import Runtime
from qkt.feeds.replay import Row
from qkt.feeds.warmup import bar_of, source_timeframe, warm_up
from qkt.loop import drive
from qkt.session import LiveSession

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 2, 10, 30, 30, tzinfo=UTC)  # a Monday, mid-minute
ISO = "%Y-%m-%dT%H:%M:%SZ"


def epoch(hh: int, mm: int, day: datetime = NOW) -> int:
    return int(day.replace(hour=hh, minute=mm, second=0).timestamp())


def row(t: int, o: float, h: float | None = None, lo: float | None = None, c: float | None = None,
        volume: int = 10) -> dict[str, Any]:  # fmt: skip
    close = o if c is None else c
    return {
        "time": t,
        "open": o,
        "high": max(o, close) if h is None else h,
        "low": min(o, close) if lo is None else lo,
        "close": close,
        "tick_volume": volume,
        "spread": 7,
    }


class History:
    """``/fetch_data_range`` over rows per timeframe, as a real gateway answers it (ranges over 31
    days refused); every query is kept."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]], envelope: str = "data") -> None:
        self.rows = rows
        self.envelope = envelope
        self.asked: list[dict[str, str]] = []

    def __call__(self, request: Request) -> Response:
        query = dict(request.args)
        self.asked.append(query)
        lo = datetime.strptime(query["from_date"], ISO).replace(tzinfo=UTC).timestamp()
        hi = datetime.strptime(query["to_date"], ISO).replace(tzinfo=UTC).timestamp()
        if hi - lo > 31 * 86400:
            body = {"ok": False, "error": "range must not exceed 31 days", "request_id": "r"}
            return Response(json.dumps(body), status=400, content_type="application/json")
        found = [r for r in self.rows.get(query["timeframe"], []) if lo <= r["time"] <= hi]
        body = {"bars": found} if self.envelope == "bars" else {"ok": True, "request_id": "r"}
        if self.envelope == "data":
            body["data"] = found
        return Response(json.dumps(body), content_type="application/json")

    def span(self, query: dict[str, str]) -> timedelta:
        return datetime.strptime(query["to_date"], ISO) - datetime.strptime(query["from_date"], ISO)


def gateway(httpserver: HTTPServer, history: Callable[[Request], Response] | None) -> None:
    httpserver.expect_request("/health/ready").respond_with_json({"status": "ready"})
    httpserver.expect_request("/account").respond_with_json({"login": 1})
    httpserver.expect_request("/reconcile").respond_with_json({"error": "not found"}, status=404)
    httpserver.expect_request("/get_positions").respond_with_json({"ok": True, "data": []})
    httpserver.expect_request("/history_deals_get").respond_with_json({"ok": True, "data": []})
    if history is None:  # an older gateway: the route does not exist
        httpserver.expect_request("/fetch_data_range").respond_with_data("Not Found", status=404)
    else:
        httpserver.expect_request("/fetch_data_range").respond_with_handler(history)


def session_of(
    httpserver: HTTPServer, tmp_path: Path, strategy: str, events: list[Any], zone: str = "UTC"
) -> LiveSession:
    url = httpserver.url_for("").rstrip("/")
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(
        f"brokers:\n  exness:\n    gateway_url: {url}\n    poll_interval_ms: 600000\n"
        f"    retry_attempts: 1\n    server_time_zone: {zone!r}\n"
    )
    config = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
    parsed = parse_strategy(strategy, "s.qkt")
    assert parsed.strategy is not None, parsed.diagnostics
    return LiveSession(
        parsed.strategy,
        BrokerRegistry.from_config(config),
        clock=SimulatedClock(NOW),
        on_event=events.append,
    )


def live_bar(t: int, close: float, symbol: str = "EURUSD") -> Row:
    opened = datetime.fromtimestamp(t, UTC)
    bar = Bar(symbol, opened, 60, close, close, close, close)
    return Row(symbol, bar, None, bar.end, "EXNESS")


def notices(events: list[Any]) -> list[VenueNotice]:
    return [e for e in events if isinstance(e, VenueNotice)]


def logs(events: list[Any]) -> list[str]:
    return [e.message for e in events if isinstance(e, LogEvent)]


READY = """STRATEGY ready VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN eur.close > ema(eur, 3) THEN LOG "above its average"
"""


def flat_minutes(first: int, last: int, price: float = 1.10) -> list[dict[str, Any]]:
    return [row(t, price) for t in range(epoch(10, first), epoch(10, last) + 1, 60)]


async def test_a_warmed_stream_is_ready_on_the_first_live_bar_and_its_rule_fires(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    # 10:30 is still open at 10:30:30: the gateway answers it, warm-up must drop it.
    history = History({"M1": [*flat_minutes(0, 29), row(epoch(10, 30), 9.99)]})
    gateway(httpserver, history)
    events: list[Any] = []
    session = session_of(httpserver, tmp_path, READY, events)
    await drive(session, [live_bar(epoch(10, 30), 1.20)], warm=True)
    # ema(eur, 3): three warm bars at 1.10, then 1.20 -> 1.15 < 1.20 on the first live bar
    assert logs(events) == ["above its average"]
    (asked,) = history.asked
    assert asked == {
        "symbol": "EURUSDm",
        "timeframe": "M1",
        "from_date": "2026-03-02T10:27:00Z",
        "to_date": "2026-03-02T10:30:30Z",
    }
    (notice,) = notices(events)
    assert (notice.broker, notice.level) == ("exness", "info")
    assert notice.message == "warm-up of eur: 3 bars from EURUSDm M1 history"


async def test_a_replay_never_warms_from_the_venue(httpserver: HTTPServer, tmp_path: Path) -> None:
    history = History({"M1": flat_minutes(0, 29)})
    gateway(httpserver, history)
    events: list[Any] = []
    session = session_of(httpserver, tmp_path, READY, events)
    await drive(session, [live_bar(epoch(10, 30), 1.20)])
    assert history.asked == []
    assert logs(events) == []  # cold: ema(eur, 3) is null on the first bar
    assert notices(events) == []


TWO = """STRATEGY two VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
gbp = EXNESS:GBPUSD EVERY 1m
RULES
WHEN eur.close > ema(eur, 3) THEN LOG "eur above"
WHEN gbp.close > ema(gbp, 3) THEN LOG "gbp above"
"""


async def test_a_gateway_without_bar_history_starts_cold_and_says_so_once(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    gateway(httpserver, None)
    events: list[Any] = []
    session = session_of(httpserver, tmp_path, TWO, events)
    rows = [live_bar(epoch(10, 30), 1.20), live_bar(epoch(10, 30), 1.30, "GBPUSD")]
    await drive(session, rows, warm=True)
    assert logs(events) == []  # cold: no average yet
    (notice,) = notices(events)
    assert notice.level == "warning"
    assert notice.message == (
        "the gateway serves no bar history (/fetch_data_range): eur, gbp start cold"
    )
    asked = [r for r, _ in httpserver.log if r.path == "/fetch_data_range"]
    assert len(asked) == 1  # the second symbol is not asked again


async def test_a_gateway_that_cannot_answer_leaves_the_stream_cold_and_the_session_running(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    gateway(httpserver, lambda request: Response("down", status=503))
    events: list[Any] = []
    session = session_of(httpserver, tmp_path, READY, events)
    await drive(session, [live_bar(epoch(10, 30), 1.20), live_bar(epoch(10, 31), 1.2)], warm=True)
    (notice,) = notices(events)
    assert notice.level == "warning"
    assert notice.message.startswith("warm-up of eur: starts cold, EURUSDm M1 history cannot be")
    assert notice.message.endswith("/fetch_data_range: no answer after 1 attempts (HTTP 503)")
    assert session.runtime.streams["eur"].bar is not None  # live bars still count


async def test_fewer_bars_than_asked_start_partly_warm_and_say_so(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    history = History({"M1": flat_minutes(28, 29)})  # two bars where five are asked
    gateway(httpserver, history)
    events: list[Any] = []
    strategy = READY.replace("EVERY 1m", "EVERY 1m WARMUP 5 BARS")
    session = session_of(httpserver, tmp_path, strategy, events)
    await drive(session, [], warm=True)
    (notice,) = notices(events)
    assert notice.level == "warning"
    assert notice.message == (
        "warm-up of eur: only 2 of 5 bars in EURUSDm M1 history; its indicators start partly warm"
    )
    # It looked further back for the rest (a closed market), within a bound.
    assert 1 < len(history.asked) < 10
    assert history.asked[1]["to_date"] == history.asked[0]["from_date"]


async def test_a_weekend_is_looked_past(httpserver: HTTPServer, tmp_path: Path) -> None:
    monday = NOW.replace(hour=0, minute=2)  # Monday 00:02:30; the market opened at 00:00
    friday = NOW.replace(day=27, month=2, hour=21)
    rows = [row(int(friday.timestamp()) + 60 * i, 1.10) for i in range(59)]
    rows += [row(epoch(0, 0, monday), 1.10), row(epoch(0, 1, monday), 1.10)]
    history = History({"M1": rows})
    gateway(httpserver, history)
    events: list[Any] = []
    session = session_of(httpserver, tmp_path, READY.replace("ema(eur, 3)", "ema(eur, 9)"), events)
    await session.start()
    got = await warm_up(session, now=lambda: monday)
    await session.aclose()
    assert got == {"eur": 9}
    bar = session.runtime.streams["eur"].bar
    assert bar is not None and bar.time == datetime.fromtimestamp(epoch(0, 1, monday), UTC)


async def test_long_histories_are_asked_in_ranges_of_at_most_31_days(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    hour = 3600
    last = epoch(9, 0)  # the last closed H1 bar at 10:30:30
    history = History({"H1": [row(last - i * hour, 1.1 + i * 1e-5) for i in range(1500)]})
    gateway(httpserver, history)
    events: list[Any] = []
    strategy = READY.replace("EVERY 1m", "EVERY 1h WARMUP 1000 BARS")
    session = session_of(httpserver, tmp_path, strategy, events)
    await drive(session, [], warm=True)
    assert len(history.asked) >= 2
    assert all(q["timeframe"] == "H1" for q in history.asked)
    assert all(history.span(q) <= timedelta(days=31) for q in history.asked)
    (notice,) = notices(events)
    assert notice.message == "warm-up of eur: 1000 bars from EURUSDm H1 history"
    bar = session.runtime.streams["eur"].bar
    assert bar is not None and bar.time == datetime.fromtimestamp(last, UTC)


AGGREGATED = """STRATEGY agg VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 2m WARMUP 3 BARS
RULES
WHEN eur.close > 100 THEN LOG "never"
"""


async def test_a_2m_stream_is_built_from_m1_bars_and_its_open_candle_carries_on_live(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    now = NOW.replace(minute=31)  # 10:31:30: the 10:30 candle (2m) is half done
    minutes = [row(epoch(10, m), 1.0 + m / 100, 1.5 + m / 100, 0.5 + m / 100, 1.0 + m / 100 + 0.001,
                   volume=m) for m in range(20, 32)]  # fmt: skip
    history = History({"M1": minutes})
    gateway(httpserver, history)
    events: list[Any] = []
    session = session_of(httpserver, tmp_path, AGGREGATED, events)
    await session.start()
    got = await warm_up(session, now=lambda: now)
    assert got == {"eur": 3}  # candles 10:24, 10:26, 10:28
    assert {q["timeframe"] for q in history.asked} == {"M1"}
    candle = session.runtime.streams["eur"].bar
    assert candle == Bar("EURUSD", datetime.fromtimestamp(epoch(10, 28), UTC), 120,
                         1.28, 1.79, 0.78, 1.291, 28 + 29)  # fmt: skip
    # The 10:30 M1 bar (closed) waits in the candle the first live bar completes.
    session.on_row(live_bar(epoch(10, 31), 1.40))
    candle = session.runtime.streams["eur"].bar
    assert candle == Bar("EURUSD", datetime.fromtimestamp(epoch(10, 30), UTC), 120,
                         1.30, 1.80, 0.80, 1.40, 30)  # fmt: skip
    assert logs(events) == []
    await session.aclose()


CROSS = """STRATEGY cross VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m WARMUP 8 BARS
RULES
WHEN ema(eur, 2) crosses ABOVE ema(eur, 4) THEN BUY eur SIZING 0.1 ; LOG "crossed above"
WHEN ema(eur, 2) > ema(eur, 4) THEN LOG "above"
WHEN ema(eur, 2) crosses BELOW ema(eur, 4) THEN LOG "crossed below"
"""


async def test_a_cross_inside_the_warm_up_does_not_fire_on_the_first_live_bar(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    closes = [1.10] * 6 + [1.20, 1.25]  # the fast average crosses above on the 7th bar
    history = History({"M1": [row(epoch(10, 22 + i), c) for i, c in enumerate(closes)]})
    gateway(httpserver, history)
    events: list[Any] = []
    session = session_of(httpserver, tmp_path, CROSS, events)
    live = [live_bar(epoch(10, 30), 1.26), live_bar(epoch(10, 31), 1.00)]
    await drive(session, live, warm=True)
    # Still above on the first live bar: neither the cross nor the level fires again; the next
    # bar crosses below, live, and fires.
    assert logs(events) == ["crossed below"]
    paths = {r.path for r, _ in httpserver.log}
    assert "/order" not in paths and not any(p.startswith("/symbol_info") for p in paths)
    assert [n.message for n in notices(events)] == [
        "warm-up of eur: 8 bars from EURUSDm M1 history"
    ]


SEED = """STRATEGY momentum VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN ema(eur, 9) crosses ABOVE ema(eur, 21)
THEN BUY eur SIZING 0.1 BRACKET STOP_LOSS BY 50 PCT TAKE_PROFIT BY 100 PCT
"""


async def test_the_default_warm_up_is_the_longest_indicator_period(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    history = History({"M1": flat_minutes(0, 29)})
    gateway(httpserver, history)
    events: list[Any] = []
    session = session_of(httpserver, tmp_path, SEED, events)
    await session.start()
    assert await warm_up(session) == {"eur": 21}
    await session.aclose()
    assert history.asked[0]["from_date"] == "2026-03-02T10:09:00Z"  # 21 minutes before 10:30


def runtime_of(text: str) -> Runtime:
    parsed = parse_strategy(text, "s.qkt")
    assert parsed.strategy is not None, parsed.diagnostics
    return Runtime(parsed.strategy, _NoPortfolio())


class _NoPortfolio:
    def position(self, alias: str, field: str | None) -> float | None:
        return None

    def account(self, field: str) -> float | None:
        return None


def strategy_of(streams: str, *rules: str, extra: str = "") -> str:
    body = "\n".join(f'WHEN {r} THEN LOG "x"' for r in rules)
    return f"STRATEGY s VERSION 1\nSYMBOLS\n{streams}\n{extra}RULES\n{body}\n"


STREAMS = "eur = EXNESS:EURUSD EVERY 1m\ngbp = EXNESS:GBPUSD EVERY 5m"


@pytest.mark.parametrize(
    ("rules", "extra", "eur", "gbp"),
    [
        (["ema(eur, 9) crosses ABOVE ema(eur, 21)"], "", 21, 0),
        (["macd_signal(eur, 12, 26, 9) > 0"], "", 35, 0),
        (["macd(eur.close, 12, 26, 9) > 0", "sma(eur, 30) > 0"], "", 35, 0),
        (["eur.close > 1.1", "POSITION.gbp = 0"], "", 0, 0),
        (["ema(rsi(eur, 14), 5) > 50"], "", 19, 0),
        (["atr(gbp, 14) > 0.001", "highest(eur.high, 40) < eur.close"], "", 40, 14),
        (["ema(eur, slow) > ema(gbp, 3)"], "PARAM slow = 30\n", 30, 3),
        (["band > eur.close"], "LET band = bollinger_upper(eur, 20, 2.5)\n", 20, 0),
        (["sma(eur.close - gbp.close, 12) > 0"], "", 12, 12),
    ],
)
def test_the_default_warm_up_of_each_stream(
    rules: list[str], extra: str, eur: int, gbp: int
) -> None:
    runtime = runtime_of(strategy_of(STREAMS, *rules, extra=extra))
    assert (runtime.warmup_bars("eur"), runtime.warmup_bars("gbp")) == (eur, gbp)


def test_warmup_n_bars_is_what_a_stream_asks_for() -> None:
    streams = (
        "eur = EXNESS:EURUSD EVERY 1m WARMUP 50 BARS\ngbp = EXNESS:GBPUSD EVERY 1m WARMUP 5 BARS"
    )
    runtime = runtime_of(strategy_of(streams, "ema(eur, 21) > ema(gbp, 21)"))
    assert (runtime.warmup_bars("eur"), runtime.warmup_bars("gbp")) == (50, 5)


def test_the_history_timeframe_of_a_stream() -> None:
    at = NOW
    assert source_timeframe(60, None, at) == ("M1", 60)
    assert source_timeframe(120, None, at) == ("M1", 60)
    assert source_timeframe(900, None, at) == ("M15", 900)
    assert source_timeframe(7200, None, at) == ("H1", 3600)
    assert source_timeframe(14400, server_zone("UTC"), at) == ("H4", 14400)
    assert source_timeframe(3 * 86400, None, at) == ("D1", 86400)
    # A UTC+2 server's H4 and D1 bars open at 22:00 UTC: not the stream's UTC candles.
    assert source_timeframe(14400, timezone(timedelta(hours=2)), at) == ("H1", 3600)
    assert source_timeframe(86400, server_zone("ny-close"), at) == ("H1", 3600)
    assert source_timeframe(1, None, at) is None
    assert source_timeframe(90, None, at) is None


def test_gateway_rows_in_every_shape_become_utc_bars() -> None:
    t = epoch(10, 0)
    opened = datetime.fromtimestamp(t, UTC)
    expected = Bar("EURUSD", opened, 60, 1.1, 1.2, 1.0, 1.15, 42.0)
    base = {"open": "1.1", "high": 1.2, "low": "1.0", "close": 1.15}
    for when in (t, t * 1000, str(t), "2026-03-02T10:00:00Z", "2026-03-02 10:00:00",
                 "2026-03-02T12:00:00+02:00"):  # fmt: skip
        assert bar_of({**base, "time": when, "tick_volume": 42}, "EURUSD", 60) == expected
    assert bar_of({**base, "timestamp": t, "volume": "42"}, "EURUSD", 60) == expected
    for broken in ({**base, "time": None}, {**base, "time": t, "close": None},
                   {**base, "time": "yesterday"}, {**base, "time": t, "open": True}):  # fmt: skip
        with pytest.raises(ValueError):
            bar_of(broken, "EURUSD", 60)


async def test_bars_wrapped_as_bars_with_strings_are_read(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    rows = [
        {k: str(v) for k, v in r.items()} | {"time": r["time"] * 1000} for r in flat_minutes(0, 29)
    ]
    history = History({"M1": []}, envelope="bars")
    history.rows = {"M1": rows}
    gateway(httpserver, lambda request: _ms_filter(history, request))
    events: list[Any] = []
    session = session_of(httpserver, tmp_path, READY, events)
    await drive(session, [live_bar(epoch(10, 30), 1.20)], warm=True)
    assert logs(events) == ["above its average"]


def _ms_filter(history: History, request: Request) -> Response:
    """Rows timed in milliseconds: filter them as seconds, answer them as they are."""
    lo = datetime.strptime(request.args["from_date"], ISO).replace(tzinfo=UTC).timestamp()
    hi = datetime.strptime(request.args["to_date"], ISO).replace(tzinfo=UTC).timestamp()
    found = [r for r in history.rows["M1"] if lo <= r["time"] / 1000 <= hi]
    return Response(json.dumps({"bars": found}), content_type="application/json")


async def test_bars_that_close_while_the_history_is_read_are_read_too(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    history = History({"M1": flat_minutes(0, 30)})
    gateway(httpserver, history)
    events: list[Any] = []
    session = session_of(httpserver, tmp_path, READY, events)
    moments = iter([NOW, NOW + timedelta(minutes=1)])
    await session.start()
    got = await warm_up(session, now=lambda: next(moments, NOW + timedelta(minutes=1)))
    await session.aclose()
    assert got == {"eur": 3}
    bar = session.runtime.streams["eur"].bar
    assert bar is not None and bar.time == datetime.fromtimestamp(epoch(10, 30), UTC)
    assert len(history.asked) == 2
