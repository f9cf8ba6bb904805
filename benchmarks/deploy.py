"""Two daemon figures (SPEC §9):

1. ``deploy``: a 10-strategy portfolio, every child live on the bundled simulator (in its own
   process), from the start of ``qkt deploy`` (a cold CLI process: local validation, the request,
   the daemon planning and starting every child's brokers) to every child ``running`` — the
   command returns once they are. Repeated ``--rounds`` times (the portfolio stopped between
   rounds), median and max (target <= 1 s).
2. ``journal``: the order journal's cost on dispatch — ``MT5Broker.submit`` -> ``POST /order`` at
   the simulator, with the daemon's hook (a client id from ``Journal.next_client_id``, then
   ``order_sent``: inserted and committed in ``qkt.db``, WAL, ``synchronous=NORMAL``) and without
   it, orders alternating between two brokers on one loop so both see the same machine; p50 and
   p99 of each and the p99 difference (target <= 1 ms).

Usage: python benchmarks/deploy.py [--part deploy|journal|both] [--rounds 5] [--orders 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.dispatch import percentile, sim_gateway
from qkt.brokers.mt5.broker import MT5Broker
from qkt.daemon.journal import Journal, Order
from qkt.engine.bus import EventBus
from qkt.engine.clock import SimulatedClock
from qkt.engine.events import OrderRequest
from qkt.engine.prices import PriceTracker

ROOT = Path(__file__).resolve().parent.parent
CHILDREN = 10
STRATEGY = """STRATEGY s{i} VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN ema(eur, 9) crosses ABOVE ema(eur, 21) THEN BUY eur SIZING 0.1
"""


def qkt() -> list[str]:
    script = Path(sys.executable).parent / "qkt"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


# ---------------------------------------------------------------- 1. deploy -> running
def deploy_figures(rounds: int) -> None:
    with sim_gateway() as url, tempfile.TemporaryDirectory(prefix="qkt-bench-") as tmp:
        base = Path(tmp)
        config = base / "qkt.config.yaml"
        config.write_text(
            "market_data:\n  source: venue\nbrokers:\n  exness:\n"
            f"    gateway_url: {url}\n    tick_poll_interval_ms: 1000\n"
        )
        for i in range(CHILDREN):
            (base / f"s{i}.qkt").write_text(STRATEGY.format(i=i))
        entries = "".join(f"  - file: s{i}.qkt\n" for i in range(CHILDREN))
        (base / "book.yaml").write_text(
            f"name: book\nallow_shared_symbols: true\nstrategies:\n{entries}"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("QKT_")}
        env["NO_COLOR"] = "1"
        common = [*qkt(), "--config", str(config), "--state-dir", str(base / "st")]
        daemon = subprocess.Popen(
            [*common, "daemon"],
            cwd=base,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(lambda: _ok([*common, "daemon", "status"], base, env), 30)
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                done = subprocess.run(
                    [*common, "deploy", "book.yaml", "--json"],
                    cwd=base,
                    env=env,
                    capture_output=True,
                    text=True,
                )
                elapsed = time.perf_counter() - start
                answer = json.loads(done.stdout)
                states = {d["state"] for d in answer["deployments"]}
                assert answer["ok"] and states == {"running"}, done.stdout + done.stderr
                assert len(answer["deployments"]) == CHILDREN
                times.append(elapsed)
                subprocess.run(
                    [*common, "stop", "book"], cwd=base, env=env, capture_output=True, check=True
                )
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    print(f"qkt deploy of a {CHILDREN}-strategy portfolio (live, the simulator) -> all running:")
    print(
        f"  median {statistics.median(times) * 1000:6.0f} ms   max {max(times) * 1000:6.0f} ms"
        f"   ({rounds} rounds, cold CLI included; target <= 1000 ms)"
    )


def _ok(command: list[str], cwd: Path, env: dict[str, str]) -> bool:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True).returncode == 0


def _wait(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("the daemon did not start")
        time.sleep(0.1)


# ---------------------------------------------------------------- 2. the journal on dispatch
def journal_figures(orders: int) -> None:
    with sim_gateway() as url, tempfile.TemporaryDirectory(prefix="qkt-bench-") as tmp:
        journal = Journal.open(Path(tmp) / "qkt.db")
        try:
            with_hook, without = asyncio.run(_dispatch(url, journal, orders))
        finally:
            journal.close()
    print(f"MT5Broker.submit -> POST /order at the simulator, {orders} orders each, interleaved:")
    for name, values in (("without the journal", without), ("journaled first", with_hook)):
        print(
            f"  {name:20} p50 {statistics.median(values):6.3f} ms"
            f"   p99 {percentile(values, 0.99):6.3f} ms"
        )
    cost = percentile(with_hook, 0.99) - percentile(without, 0.99)
    median = statistics.median(with_hook) - statistics.median(without)
    print(f"  the journal adds {median:6.3f} ms at p50, {cost:6.3f} ms at p99   (target <= 1 ms)")


def _broker(url: str, magic: int) -> tuple[MT5Broker, SimulatedClock]:
    profile = SimpleNamespace(
        name="exness",
        values={"magic": magic, "gateway_url": url, "deviation_points": 20},
        aliases={},
        symbol_suffix="m",
        secret=lambda name: None,
        instrument=lambda *symbols: None,
    )
    clock = SimulatedClock(datetime(2026, 1, 1, tzinfo=UTC))
    return MT5Broker(profile, EventBus(), clock, PriceTracker()), clock


def _hook(journal: Journal) -> Any:
    def before_send(request: OrderRequest, tag: str, broker_symbol: str) -> None:
        order = Order(
            "bench",
            request.client_id,
            tag,
            "exness",
            request.alias,
            request.label,
            request.symbol,
            broker_symbol,
            request.side,
            request.qty,
            request.time,
        )
        journal.order_sent(order)

    return before_send


async def _dispatch(url: str, journal: Journal, orders: int) -> tuple[list[float], list[float]]:
    journaled, journaled_clock = _broker(url, 10001)
    journaled.before_send = _hook(journal)
    bare, bare_clock = _broker(url, 10002)
    with_hook: list[float] = []
    without: list[float] = []
    for i in range(orders + 50):
        side = "buy" if i % 2 == 0 else "sell"
        for broker, clock, out, name in (
            (journaled, journaled_clock, with_hook, "j"),
            (bare, bare_clock, without, "b"),
        ):
            start = time.perf_counter()
            # The id comes from the journal's sequence on the journaled side, as in the daemon.
            cid = journal.next_client_id("bench") if name == "j" else f"bare-{i:06d}"
            request = OrderRequest(
                cid, "bench", "e", "EXNESS", "EURUSD", side, Decimal("0.1"), clock.now()
            )
            broker.submit(request)
            await broker.settle()
            if i >= 50:  # warm-up
                out.append((time.perf_counter() - start) * 1000)
        if i % 200 == 0:
            journal.checkpoint()  # as the daemon does on a timer, between orders
    await journaled.aclose()
    await bare.aclose()
    return with_hook, without


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=("deploy", "journal", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--orders", type=int, default=2000)
    args = parser.parse_args()
    if args.part in ("deploy", "both"):
        deploy_figures(args.rounds)
    if args.part in ("journal", "both"):
        journal_figures(args.orders)


if __name__ == "__main__":
    main()
