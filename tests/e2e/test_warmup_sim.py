"""End to end: ``qkt run`` live warms its stream from the bundled simulator's bar history
(``/fetch_data_range``) before live quotes count, and trades on the first live bar; a gateway
without bar history starts cold and says so."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from qkt.sim import SimServer, SimState
from tests.conftest import clean_env
from tests.e2e.test_cli_subprocess import qkt_command

pytestmark = pytest.mark.slow

# False on every warm bar (a random walk never strays 1% from its 21-bar average), true on the
# first live bar once the quote is lifted 5%: it can only fire if the average is ready then.
JUMP = """STRATEGY jump VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN eur.close > ema(eur, 21) * 1.01 THEN BUY eur SIZING 0.1
"""


class Run:
    """``qkt run FILE --json`` live, as a real process; its events are read as they come."""

    def __init__(self, sim: SimServer, tmp_path: Path) -> None:
        config = tmp_path / "qkt.config.yaml"
        config.write_text(
            "market_data:\n  source: venue\nbrokers:\n  exness:\n"
            f"    gateway_url: {sim.url}\n    tick_poll_interval_ms: 100\n"
        )
        (tmp_path / "jump.qkt").write_text(JUMP)
        self.proc = subprocess.Popen(
            [*qkt_command(), "--config", str(config), "run", "jump.qkt", "--json"],
            cwd=tmp_path,
            env=clean_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout or ():
            self.lines.put(line)

    def next(self, what: str, within_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            try:
                event = json.loads(self.lines.get(timeout=1))
            except queue.Empty:
                continue
            self.seen.append(event)
            if event["event"] == what:
                return event  # type: ignore[no-any-return]
        self.proc.kill()
        pytest.fail(f"no {what} event: {self.proc.communicate()[1]}")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        self.reader.join(timeout=30)
        err = self.proc.stderr.read() if self.proc.stderr else ""
        assert self.proc.returncode == 130, err
        assert "Traceback" not in err
        return err


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Iterator[SimServer]:
    state = SimState(symbols=("EURUSDm",), **getattr(request, "param", {}))
    with SimServer(state, tick_ms=100) as server:
        yield server


def test_a_live_run_is_warm_on_its_first_live_bar_and_trades_on_it(
    sim: SimServer, tmp_path: Path
) -> None:
    run = Run(sim, tmp_path)
    try:
        warmed = run.next("venue")
        assert (warmed["broker"], warmed["level"]) == ("exness", "info")
        assert warmed["message"] == "warm-up of eur: 21 bars from EURUSDm M1 history"
        quote = httpx.get(f"{sim.url}/symbol_info_tick/EURUSDm").json()
        bid = Decimal(str(quote["bid"])) * Decimal("1.05")
        httpx.post(
            f"{sim.url}/_sim/quote",
            json={"symbol": "EURUSDm", "bid": str(bid), "ask": str(bid + Decimal("0.0002"))},
        ).raise_for_status()
        fill = run.next("fill", within_s=120)  # the first live minute closes, then it buys
        assert (fill["side"], fill["route"], fill["reason"]) == ("buy", "exness", "market")
    finally:
        run.stop()
    assert [e["event"] for e in run.seen].count("order") == 1


@pytest.mark.parametrize("sim", [{"bars": False}], indirect=True)
def test_a_live_run_on_a_gateway_without_bar_history_starts_cold_and_says_so(
    sim: SimServer, tmp_path: Path
) -> None:
    run = Run(sim, tmp_path)
    try:
        cold = run.next("venue")
    finally:
        run.stop()
    assert (cold["broker"], cold["level"]) == ("exness", "warning")
    assert (
        cold["message"] == "the gateway serves no bar history (/fetch_data_range): eur starts cold"
    )
