"""End to end: a replayed strategy trades through a LiveSession against the bundled gateway
simulator running as a separate process, over the real wire protocol."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, clean_env
from tests.e2e.test_cli_subprocess import qkt_command

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
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
    result = subprocess.run(
        [
            *qkt_command(),
            "--config",
            str(config),
            "run",
            "examples/momentum.qkt",
            "--replay",
            "examples/data/eurusd-1m.csv",
            "--json",
        ],
        cwd=ROOT,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    orders = [e for e in events if e["event"] == "order"]
    fills = [e for e in events if e["event"] == "fill"]
    assert orders and len(fills) == len(orders)
    assert {e["route"] for e in orders} == {"exness"}

    received = httpx.get(f"{simulator}/_sim/orders").json()
    received = received.get("data", received) if isinstance(received, dict) else received
    assert len(received) == len(orders)
    for sent, order in zip(received, orders, strict=True):
        body = sent.get("body", sent)
        assert (body["symbol"], body["magic"], body["type"]) == ("EURUSDm", 10001, "BUY")
        assert Decimal(str(body["volume"])) == Decimal("0.1")
        # BY 50 PCT / BY 100 PCT of the entry the session saw
        entry = Decimal(order["stop_loss"]) * 2
        assert Decimal(str(body["sl"])) == pytest.approx(entry / 2, rel=Decimal("1e-9"))
        assert Decimal(str(body["tp"])) == pytest.approx(entry * 2, rel=Decimal("1e-9"))
        assert body["client_order_id"] == order["client_id"]

    positions = httpx.get(f"{simulator}/get_positions", params={"magic": 10001}).json()
    positions = positions.get("data", positions) if isinstance(positions, dict) else positions
    (position,) = positions  # a netting account: one position for the symbol and magic
    assert Decimal(str(position["volume"])) == Decimal("0.1") * len(fills)
