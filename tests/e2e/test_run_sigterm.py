"""``qkt run`` stopped by SIGTERM (``kill``, ``docker stop``, systemd) as by Ctrl-C: orders in
flight are awaited, the summary is printed, exit code 143. Real processes, the bundled simulator
in its own process."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, clean_env
from tests.e2e.test_cli_subprocess import qkt_command
from tests.e2e.test_mt5_sim import simulator  # noqa: F401 - the fixture

LIVE = """STRATEGY live VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1s
RULES
WHEN POSITION.eur == 0 THEN BUY eur SIZING 0.1 BRACKET STOP_LOSS BY 1 PCT
"""


def buffered_env(home: Path) -> dict[str, str]:
    """As a user's shell has it: stdout to a pipe is block-buffered unless qkt flushes."""
    env = clean_env(home)
    env.pop("PYTHONUNBUFFERED", None)
    return env


class Events:
    """The JSON lines of a running ``qkt run --json``, read as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.reader = threading.Thread(
            target=lambda: [self.lines.put(x) for x in proc.stdout or ()]
        )
        self.reader.start()

    def next(self, what: str, **fields: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                event = json.loads(self.lines.get(timeout=1))
            except queue.Empty:
                continue
            self.seen.append(event)
            if event["event"] == what and all(event.get(k) == v for k, v in fields.items()):
                return event
        self.proc.kill()
        pytest.fail(f"no {what} {fields} after {self.seen[-4:]}: {self.proc.communicate()[1]}")

    def rest(self) -> list[dict[str, Any]]:
        self.proc.wait(timeout=30)
        self.reader.join(timeout=30)
        out = []
        while not self.lines.empty():
            out.append(json.loads(self.lines.get_nowait()))
        self.seen.extend(out)
        return out


def test_sigterm_stops_a_paper_replay_with_its_summary(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            *qkt_command(),
            *("run", "examples/momentum.qkt", "--paper", "--json"),
            *("--replay", "examples/data/eurusd-1m.csv", "--speed", "600"),
        ],
        cwd=ROOT,
        env=buffered_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["event"] == "summary" and summary["interrupted"] is True
    assert "Traceback" not in err


def _as_a_background_job() -> None:
    """What a shell does to a job started with `&`: Ctrl-C is not for it (SIGINT ignored, so
    asyncio installs no handler of its own)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize("started", [None, _as_a_background_job], ids=["terminal", "background"])
def test_sigterm_during_a_live_run_waits_for_the_order_in_flight(
    simulator: str,  # noqa: F811
    tmp_path: Path,
    started: Any,
) -> None:
    """A live run buys on the gateway's quotes; the gateway's stop closes the position (the
    summary's PnL is the venue's deals' profit, in USD); the strategy buys again and, while that
    order is still on its way (the gateway is slow), SIGTERM arrives: the order's answer is
    awaited and printed, then the summary, and the process exits 143 — also when it was started
    as a shell's background job, whose Ctrl-C is ignored."""
    config = tmp_path / "qkt.config.yaml"
    config.write_text(
        "market_data:\n  source: venue\nbrokers:\n  exness:\n"
        f"    gateway_url: {simulator}\n    tick_poll_interval_ms: 50\n    poll_interval_ms: 100\n"
    )
    (tmp_path / "live.qkt").write_text(LIVE)
    proc = subprocess.Popen(
        [*qkt_command(), "--config", str(config), "run", "live.qkt", "--json"],
        cwd=tmp_path,
        env=buffered_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=started,
    )
    events = Events(proc)
    try:
        entry = events.next("fill", reason="market")
        # A few 1s bars with the position open: the rule's condition turns false, so it fires
        # again once the venue's stop has closed the position.
        time.sleep(2.5)
        price = Decimal(entry["price"]) * Decimal("0.95")  # well through the 1% stop
        httpx.post(
            f"{simulator}/_sim/quote",
            json={"symbol": "EURUSDm", "bid": str(price), "ask": str(price + Decimal("0.0002"))},
        ).raise_for_status()
        events.next("fill", reason="stop_loss")
        httpx.post(f"{simulator}/_sim/faults", json={"latency_ms": 1500}).raise_for_status()
        again = events.next("order")  # on the wire now, its answer 1.5 s away
        proc.send_signal(signal.SIGTERM)
        rest = events.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "destroyed" not in err
    kinds = [e["event"] for e in rest]
    assert kinds[-1] == "summary" and rest[-1]["interrupted"] is True
    (fill,) = [e for e in rest if e["event"] == "fill"]  # the order in flight was not abandoned
    assert (fill["client_id"], fill["reason"]) == (again["client_id"], "market")
    summary = rest[-1]
    assert summary["open_positions"] == [
        {"label": "EXNESS", "symbol": "EURUSD", "qty": "0.1", "avg_price": fill["price"]}
    ]
    httpx.post(f"{simulator}/_sim/faults", json={"latency_ms": 0}).raise_for_status()
    now = datetime.now(UTC)
    deals = httpx.get(
        f"{simulator}/history_deals_get",
        params={
            "from_date": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
            "to_date": (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        },
    ).json()["data"]
    profit = sum(Decimal(str(d["profit"])) for d in deals)
    assert profit < -100  # the 1 % stop on 0.1 lot of EURUSD (100,000 each): about -108 USD
    assert Decimal(summary["realized_pnl"]) == profit
    received = httpx.get(f"{simulator}/_sim/orders").json()["data"]
    assert len({r["idempotency_key"] for r in received}) == len(received) == 2
