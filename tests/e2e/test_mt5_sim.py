"""End to end: a replayed strategy trades through a LiveSession against the bundled gateway
simulator running as a separate process, over the real wire protocol."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, clean_env
from tests.e2e.test_cli_subprocess import qkt_command

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_events(home: Path, cwd: Path, *args: str) -> list[dict[str, Any]]:
    """``qkt ARGS --json`` as a real process that must succeed: the events it printed."""
    result = subprocess.run(
        [*qkt_command(), *args, "--json"],
        cwd=cwd,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def simulator(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The simulator in its own process; ``indirect`` parameters are extra flags."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *qkt_command(),
            "sim",
            "gateway",
            "--port",
            str(port),
            "--symbols",
            "EURUSDm",
            "--seed",
            "3",
            *getattr(request, "param", ()),
        ],
        cwd=ROOT,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"simulator did not start: {proc.communicate()[1]}")
    yield url
    proc.terminate()  # SIGTERM: a clean stop
    assert proc.wait(timeout=10) == 0
    assert "stopped" in proc.communicate()[1]


def test_replayed_strategy_sends_its_orders_to_the_simulated_gateway(
    simulator: str, tmp_path: Path
) -> None:
    config = tmp_path / "qkt.config.yaml"
    config.write_text(f"brokers:\n  exness:\n    gateway_url: {simulator}\n")
    events = run_events(
        tmp_path,
        ROOT,
        *("--config", str(config), "run", "examples/momentum.qkt"),
        *("--replay", "examples/data/eurusd-1m.csv"),
    )
    orders = [e for e in events if e["event"] == "order"]
    fills = [e for e in events if e["event"] == "fill"]
    assert orders and len(fills) == len(orders)
    assert {e["route"] for e in orders} == {"exness"}

    received = httpx.get(f"{simulator}/_sim/orders").json()
    received = received.get("data", received) if isinstance(received, dict) else received
    assert len(received) == len(orders)
    for sent, order, fill in zip(received, orders, fills, strict=True):
        body = sent.get("body", sent)
        assert (body["symbol"], body["magic"], body["type"]) == ("EURUSDm", 10001, "BUY")
        assert Decimal(str(body["volume"])) == Decimal("0.1")
        # The order is printed as it went on the wire: prices of EURUSDm (5 digits) ...
        sl, tp = Decimal(order["sl"]), Decimal(order["tp"])
        assert (Decimal(str(body["sl"])), Decimal(str(body["tp"]))) == (sl, tp)
        assert sl == sl.quantize(Decimal("0.00001")) and tp == tp.quantize(Decimal("0.00001"))
        # ... BY 50 PCT / BY 100 PCT of the venue's own price, which the fill shows
        entry = Decimal(fill["price"])
        assert abs(sl / entry - Decimal("0.5")) < Decimal("0.001")
        assert abs(tp / entry - 2) < Decimal("0.001")
        assert body["client_order_id"] == order["client_id"]
        assert body["comment"] == order["venue_id"] == fill["venue_id"]  # its tag at the venue

    positions = httpx.get(f"{simulator}/get_positions", params={"magic": 10001}).json()
    positions = positions.get("data", positions) if isinstance(positions, dict) else positions
    (position,) = positions  # a netting account: one position for the symbol and magic
    assert Decimal(str(position["volume"])) == Decimal("0.1") * len(fills)


TIGHT = """STRATEGY tight VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN POSITION.eur == 0 THEN BUY eur SIZING 0.1 BRACKET STOP_LOSS BY 1 PCT TAKE_PROFIT BY 2 PCT
"""


def test_a_replay_far_from_the_venue_price_places_stops_from_the_venue_quote(
    simulator: str, tmp_path: Path
) -> None:
    """The replay says 1.20, the venue 1.085: a 1 % stop under the replay's price would be above
    the venue's and refused; qkt places it 1 % under the venue's quote at send time."""
    config = tmp_path / "qkt.config.yaml"
    config.write_text(f"brokers:\n  exness:\n    gateway_url: {simulator}\n")
    strategy = tmp_path / "tight.qkt"
    strategy.write_text(TIGHT)
    replay = tmp_path / "bars.csv"
    replay.write_text(
        "time,open,high,low,close\n2026-03-02T10:00:00Z,1.2,1.2,1.2,1.2\n"
        "2026-03-02T10:01:00Z,1.2,1.2,1.2,1.2\n"
    )
    events = run_events(
        tmp_path, ROOT, "--config", str(config), "run", str(strategy), "--replay", str(replay)
    )
    (order,) = [e for e in events if e["event"] == "order"]
    (fill,) = [e for e in events if e["event"] == "fill"]
    entry, sl, tp = (
        Decimal(fill["price"]),
        Decimal(order["sl"]),
        Decimal(order["tp"]),
    )
    assert entry < Decimal("1.1")  # filled at the venue's price
    assert abs(sl / entry - Decimal("0.99")) < Decimal("0.0005") and sl < entry < tp
    assert [e for e in events if e["event"] == "rejected"] == []


LIVE = """STRATEGY live VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1s
RULES
WHEN POSITION.eur == 0 THEN BUY eur SIZING 0.1 BRACKET STOP_LOSS BY 1 PCT
"""


def test_live_run_trades_on_venue_quotes_and_hears_the_venue_close_it(
    simulator: str, tmp_path: Path
) -> None:
    """Venue quotes, order dispatch and the position poller share one loop: the session buys on
    the gateway's own prices, rides out an outage (said once, and when it ends), the gateway's
    stop closes the position, the poller brings that fill back, and Ctrl-C stops with the
    summary."""
    config = tmp_path / "qkt.config.yaml"
    config.write_text(
        "market_data:\n  source: venue\nbrokers:\n  exness:\n"
        f"    gateway_url: {simulator}\n    tick_poll_interval_ms: 50\n    poll_interval_ms: 100\n"
    )
    (tmp_path / "live.qkt").write_text(LIVE)
    proc = subprocess.Popen(
        [*qkt_command(), "--config", str(config), "run", "live.qkt", "--json"],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()])
    reader.start()

    def next_event(what: str, **fields: str) -> dict[str, str]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                event = json.loads(lines.get(timeout=1))
            except queue.Empty:
                continue
            if event["event"] == what and all(event.get(k) == v for k, v in fields.items()):
                return event  # type: ignore[no-any-return]
        proc.kill()
        pytest.fail(f"no {what} {fields}: {proc.communicate()[1]}")

    try:
        entry = next_event("fill", reason="market")
        assert (entry["side"], entry["route"], entry["qty"]) == ("buy", "exness", "0.1")
        # The gateway answers 503 for a while: said once, and again when it answers.
        httpx.post(f"{simulator}/_sim/faults", json={"status_5xx": 15}).raise_for_status()
        down = next_event("venue", level="warning")
        assert down["broker"] == "exness" and "cannot be read" in down["message"]
        next_event("venue", level="info")
        price = Decimal(entry["price"]) * Decimal("0.95")  # well through the 1% stop
        httpx.post(
            f"{simulator}/_sim/quote",
            json={"symbol": "EURUSDm", "bid": str(price), "ask": str(price + Decimal("0.0002"))},
        ).raise_for_status()
        stop = next_event("fill", reason="stop_loss")
        assert (stop["side"], stop["client_id"]) == ("sell", entry["client_id"])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=30)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    rest = []
    while not lines.empty():
        rest.append(json.loads(lines.get_nowait()))
    assert rest and rest[-1]["event"] == "summary" and rest[-1]["interrupted"] is True
    received = httpx.get(f"{simulator}/_sim/orders").json()["data"]
    assert received[0]["idempotency_key"] == entry["client_id"]
    assert len({r["idempotency_key"] for r in received}) == len(received)  # nothing sent twice


FLIP = """STRATEGY flip VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN POSITION.eur = 0 THEN BUY eur SIZING 0.1
WHEN POSITION.eur > 0 THEN CLOSE eur
"""


@pytest.mark.parametrize("simulator", [(), ("--hedging",)], indirect=True, ids=["net", "hedge"])
def test_a_strategy_that_closes_with_market_orders_sees_each_fill_once(
    simulator: str, tmp_path: Path
) -> None:
    """Every close is a market order into the netted position (on a hedging account: a close by
    ticket); the position poller runs all the while and must not report those closes again."""
    bars = ["time,open,high,low,close"] + [
        f"2026-03-02T10:{m:02d}:00Z,1.085,1.086,1.084,1.085" for m in range(20)
    ]
    (tmp_path / "bars.csv").write_text("\n".join(bars) + "\n")
    (tmp_path / "flip.qkt").write_text(FLIP)
    config = tmp_path / "qkt.config.yaml"
    config.write_text(
        f"brokers:\n  exness:\n    gateway_url: {simulator}\n    poll_interval_ms: 20\n"
    )
    events = run_events(
        tmp_path,
        tmp_path,
        *("--config", str(config), "run", "flip.qkt", "--replay", "bars.csv", "--speed", "1200"),
    )
    orders = [e for e in events if e["event"] == "order"]
    fills = [e for e in events if e["event"] == "fill"]
    assert len(orders) >= 10
    assert [f["client_id"] for f in fills] == [o["client_id"] for o in orders]
    assert [f["side"] for f in fills] == ["buy", "sell"] * (len(fills) // 2) + ["buy"] * (
        len(fills) % 2
    )
    (summary,) = [e for e in events if e["event"] == "summary"]
    assert summary["trades"] == len(fills) // 2
    positions = httpx.get(f"{simulator}/get_positions").json()["data"]
    assert sum(Decimal(p["volume"]) for p in positions) == Decimal("0.1") * (len(fills) % 2)
    assert len(positions) == len(fills) % 2  # no hedge left beside a position


def test_a_wrong_gateway_token_refuses_the_run_without_showing_either_token(
    tmp_path: Path,
) -> None:
    from qkt.sim import SimServer, SimState

    (tmp_path / "flip.qkt").write_text(FLIP)
    (tmp_path / "bars.csv").write_text(
        "time,open,high,low,close\n2026-03-02T10:00:00Z,1.085,1.086,1.084,1.085\n"
    )
    config = tmp_path / "qkt.config.yaml"
    with SimServer(SimState(symbols=("EURUSDm",)), api_key="right-token-123") as sim:
        config.write_text(
            f"brokers:\n  exness:\n    gateway_url: {sim.url}\n    api_key: ${{GATEWAY_TOKEN}}\n"
        )
        env = {**clean_env(tmp_path), "GATEWAY_TOKEN": "wrong-token-456"}
        args = [*qkt_command(), "--config", str(config), "run", "flip.qkt"]
        result = subprocess.run(
            [*args, "--replay", "bars.csv"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert "error[gateway-unavailable]" in result.stderr
        assert "refused the api_key (HTTP 401)" in result.stderr
        assert "Traceback" not in result.stderr
        for token in ("wrong-token-456", "right-token-123"):
            assert token not in result.stdout + result.stderr
        assert sim.state.received == []  # nothing was sent
