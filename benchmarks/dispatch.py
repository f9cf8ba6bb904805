"""Order dispatch overhead: MT5Broker.submit -> POST /order at a local gateway, beside a bare httpx
POST of the same body to the same server (SPEC §9: p99 overhead <= 2 ms).

Usage: python benchmarks/dispatch.py [--orders 2000]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from pytest_httpserver import HTTPServer

from qkt.brokers.mt5.broker import MT5Broker
from qkt.engine.bus import EventBus
from qkt.engine.clock import SimulatedClock
from qkt.engine.events import OrderRequest
from qkt.engine.prices import PriceTracker

RESULT = {"result": {"retcode": 10009, "order": 1, "deal": 1, "price": 1.0843, "volume": 0.1}}
INFO = {"volume_min": 0.01, "volume_max": 200, "volume_step": 0.01, "digits": 5}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=2000)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request("/order", method="POST").respond_with_json(RESULT)
    server.expect_request("/symbol_info/EURUSDm").respond_with_json(INFO)
    server.start()
    url = server.url_for("").rstrip("/")
    profile = SimpleNamespace(
        name="exness",
        values={"magic": 10001, "gateway_url": url, "deviation_points": 20},
        aliases={},
        symbol_suffix="m",
        secret=lambda name: None,
    )
    clock = SimulatedClock(datetime(2026, 1, 1, tzinfo=UTC))
    broker = MT5Broker(profile, EventBus(), clock, PriceTracker())
    body = {
        "symbol": "EURUSDm",
        "volume": 0.1,
        "type": "BUY",
        "deviation": 20,
        "magic": 10001,
        "client_order_id": "x",
        "comment": "x",
        "sl": 1.07,
        "tp": 1.1,
    }
    bare = httpx.Client(base_url=url)
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(args.orders + 50):
        request = OrderRequest(
            f"bench-{i:06d}",
            "bench",
            "e",
            "EXNESS",
            "EURUSD",
            "buy",
            Decimal("0.1"),
            clock.now(),
            Decimal("1.07"),
            Decimal("1.1"),
        )
        start = time.perf_counter()
        broker.submit(request)
        mid = time.perf_counter()
        bare.post("/order", json=body, headers={"Idempotency-Key": request.client_id})
        end = time.perf_counter()
        if i >= 50:  # warm-up
            ours.append((mid - start) * 1000)
            theirs.append((end - mid) * 1000)
    server.clear()
    server.stop()
    print(f"signal -> POST /order at a local gateway, {args.orders} orders:")
    for name, values in (("qkt MT5Broker.submit", ours), ("bare httpx POST", theirs)):
        print(
            f"  {name:22} p50 {statistics.median(values):6.3f} ms   p99 {percentile(values, 0.99):6.3f} ms"
        )
    overhead = percentile(ours, 0.99) - percentile(theirs, 0.99)
    print(f"  p99 overhead {overhead:6.3f} ms   (target <= 2 ms)")


if __name__ == "__main__":
    main()
