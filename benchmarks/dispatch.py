"""Order dispatch overhead: MT5Broker.submit -> POST /order at a local gateway, beside a bare httpx
POST of the same body to the same server (SPEC §9: p99 overhead <= 2 ms); and BybitBroker.submit
-> signed POST /v5/order/create at the bundled Bybit simulator, beside a bare httpx POST of the
same signed body.

The broker is an asyncio edge (httpx.AsyncClient), so the like-for-like baseline is a bare
AsyncClient POST on the same loop; a bare synchronous httpx.Client POST is printed beside it to
show what the async transport itself costs on this machine.

Usage: python benchmarks/dispatch.py [--orders 2000] [--gateway sim|werkzeug|bybit|all]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from pytest_httpserver import HTTPServer

from qkt.brokers.mt5.broker import MT5Broker
from qkt.engine.bus import EventBus
from qkt.engine.clock import SimulatedClock
from qkt.engine.events import OrderRequest, Side
from qkt.engine.prices import PriceTracker

ROOT = Path(__file__).resolve().parent.parent
RESULT = {"result": {"retcode": 10009, "order": 1, "deal": 1, "price": 1.0843, "volume": 0.1}}
INFO = {"volume_min": 0.01, "volume_max": 200, "volume_step": 0.01, "digits": 5}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def werkzeug_gateway() -> Iterator[str]:
    """pytest-httpserver with a canned answer: it closes every connection (HTTP/1.0), so each
    order pays for a new TCP connection."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request("/order", method="POST").respond_with_json(RESULT)
    server.expect_request("/symbol_info/EURUSDm").respond_with_json(INFO)
    server.start()
    try:
        yield server.url_for("").rstrip("/")
    finally:
        server.clear()
        server.stop()


@contextlib.contextmanager
def served(command: list[str], ready: str) -> Iterator[str]:
    """``command`` (given ``--port``'s value last) in its own process on a free port, until its
    ``ready`` path answers 200; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [*command, str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}{ready}", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def sim_gateway() -> contextlib.AbstractContextManager[str]:
    """The bundled gateway simulator in its own process (uvicorn, keep-alive, real fills)."""
    command = [sys.executable, "-m", "cli", "sim", "gateway", "--symbols", "EURUSDm", "--port"]
    return served(command, "/health/ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument(
        "--gateway",
        choices=("sim", "werkzeug", "bybit", "all"),
        default="all",
        help="sim: the bundled MT5 simulator (keep-alive); werkzeug: a new connection per order; "
        "bybit: the bundled Bybit simulator (signed creates)",
    )
    args = parser.parse_args()
    gateways = {"sim": sim_gateway, "werkzeug": werkzeug_gateway}
    for name in ("sim", "werkzeug", "bybit") if args.gateway == "all" else (args.gateway,):
        if name == "bybit":
            with bybit_sim() as url:
                report_bybit(url, args.orders)
            continue
        with gateways[name]() as url:
            report(name, url, args.orders)


def report(gateway: str, url: str, orders: int) -> None:
    profile = SimpleNamespace(
        name="exness",
        values={"magic": 10001, "gateway_url": url, "deviation_points": 20},
        aliases={},
        symbol_suffix="m",
        secret=lambda name: None,
        instrument=lambda *symbols: None,
    )
    clock = SimulatedClock(datetime(2026, 1, 1, tzinfo=UTC))
    broker = MT5Broker(profile, EventBus(), clock, PriceTracker())
    ours, bare, bare_sync = asyncio.run(measure(broker, clock, url, orders))
    print(f"signal -> POST /order at a local gateway ({gateway}), {orders} orders:")
    for name, values in (
        ("qkt MT5Broker.submit", ours),
        ("bare httpx async POST", bare),
        ("bare httpx sync POST", bare_sync),
    ):
        print(
            f"  {name:22} p50 {statistics.median(values):6.3f} ms   p99 {percentile(values, 0.99):6.3f} ms"
        )
    overhead = percentile(ours, 0.99) - percentile(bare, 0.99)
    print(f"  p99 overhead {overhead:6.3f} ms over the async POST   (target <= 2 ms)")
    print(
        f"  p99 overhead {percentile(ours, 0.99) - percentile(bare_sync, 0.99):6.3f} ms "
        "over the sync POST (the async transport's own cost included)"
    )


async def measure(
    broker: MT5Broker, clock: SimulatedClock, url: str, orders: int
) -> tuple[list[float], list[float], list[float]]:
    """Orders alternate buy and sell so the simulated account stays flat."""
    ours: list[float] = []
    bare: list[float] = []
    bare_sync: list[float] = []
    async_client = httpx.AsyncClient(base_url=url)
    sync_client = httpx.Client(base_url=url)
    for i in range(orders + 50):
        side: Side = "buy" if i % 2 == 0 else "sell"
        request = OrderRequest(
            f"bench-{i:06d}",
            "bench",
            "e",
            "EXNESS",
            "EURUSD",
            side,
            Decimal("0.1"),
            clock.now(),
        )
        # Each POST its own key (a gateway answers a repeated key from its cache), sent as the
        # body's client_order_id and as Idempotency-Key: real gateways require both to match.
        bodies = [
            {
                "symbol": "EURUSDm",
                "volume": 0.1,
                "type": side.upper(),
                "deviation": 20,
                "magic": 10002,
                "client_order_id": key,
                "comment": key,
            }
            for key in (f"bare-a-{i:06d}", f"bare-s-{i:06d}")
        ]
        keyed = [{"Idempotency-Key": str(b["client_order_id"])} for b in bodies]
        start = time.perf_counter()
        broker.submit(request)
        await broker.settle()
        mid = time.perf_counter()
        answer = await async_client.post("/order", json=bodies[0], headers=keyed[0])
        end = time.perf_counter()
        sync_client.post("/order", json=bodies[1], headers=keyed[1]).raise_for_status()
        answer.raise_for_status()
        last = time.perf_counter()
        if i >= 50:  # warm-up
            ours.append((mid - start) * 1000)
            bare.append((end - mid) * 1000)
            bare_sync.append((last - end) * 1000)
    await broker.aclose()
    await async_client.aclose()
    sync_client.close()
    return ours, bare, bare_sync


BYBIT_SIM = """
import sys, threading
from qkt.sim.bybit import BybitSimServer, BybitState
BybitSimServer(BybitState(rate_limits=False), port=int(sys.argv[1])).start()
threading.Event().wait()
"""


def bybit_sim() -> contextlib.AbstractContextManager[str]:
    """The bundled Bybit simulator in its own process, without its per-second rate limits (a
    benchmark sends more than Bybit's 10 creates a second)."""
    return served([sys.executable, "-c", BYBIT_SIM], "/v5/market/time")


def report_bybit(url: str, orders: int) -> None:
    import tempfile

    from qkt.brokers.registry import BrokerRegistry
    from qkt.config import load_config
    from qkt.sim.bybit import DEFAULT_API_KEY, DEFAULT_API_SECRET

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "qkt.config.yaml"
        cfg.write_text(
            f"brokers:\n  bybit:\n    type: bybit\n    base_url: {url}\n"
            f"    api_key: {DEFAULT_API_KEY}\n    api_secret: {DEFAULT_API_SECRET}\n"
        )
        config = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=Path(tmp))
    clock = SimulatedClock(datetime(2026, 1, 1, tzinfo=UTC))
    prices = PriceTracker()
    broker: Any = BrokerRegistry.from_config(config)["bybit"].factory(EventBus(), clock, prices)
    ours, bare = asyncio.run(measure_bybit(broker, prices, url, orders))
    print(f"signal -> signed POST /v5/order/create at the Bybit simulator, {orders} orders:")
    for name, values in (("qkt BybitBroker.submit", ours), ("bare httpx async POST", bare)):
        print(
            f"  {name:22} p50 {statistics.median(values):6.3f} ms   p99 {percentile(values, 0.99):6.3f} ms"
        )
    overhead = percentile(ours, 0.99) - percentile(bare, 0.99)
    print(f"  p99 overhead {overhead:6.3f} ms over the async POST   (target <= 2 ms)")


async def measure_bybit(
    broker: Any, prices: PriceTracker, url: str, orders: int
) -> tuple[list[float], list[float]]:
    """From submit to the create's answer (the fill read back afterwards is not dispatch)."""
    from qkt.brokers.bybit.signing import body_bytes, signed_headers
    from qkt.sim.bybit import DEFAULT_API_KEY, DEFAULT_API_SECRET

    client = broker.client
    create = client.create_order
    answered: list[float] = []

    async def timed(body: Any) -> Any:
        outcome = await create(body)
        answered.append(time.perf_counter())
        return outcome

    client.create_order = timed
    broker.fill_reads = 1  # read the fill back once: the poller would finish it
    ticker = (await client.tickers("linear", "BTCUSDT"))[0]
    bid, ask = float(ticker.bid1_price), float(ticker.ask1_price)
    prices.update("BYBIT", "BTCUSDT", (bid + ask) / 2, bid, ask)
    ours: list[float] = []
    bare: list[float] = []
    plain = httpx.AsyncClient(base_url=url)
    for i in range(orders + 50):
        side: Side = "buy" if i % 2 == 0 else "sell"
        request = OrderRequest(
            f"bench-{i:06d}", "bench", "b", "BYBIT", "BTCUSDT", side, Decimal("0.001"),
            datetime.now(UTC),
        )  # fmt: skip
        start = time.perf_counter()
        broker.submit(request)
        await broker.settle()
        body = body_bytes(
            {
                "category": "linear", "symbol": "BTCUSDT", "side": side.capitalize(),
                "orderType": "Market", "qty": "0.001", "orderLinkId": f"bare-{i:06d}",
                "positionIdx": 0,
            }
        )  # fmt: skip
        stamp = int(time.time() * 1000) + int(client.offset_ms or 0) - 250
        headers = signed_headers(DEFAULT_API_KEY, DEFAULT_API_SECRET, stamp, 5000, body.decode())
        headers["Content-Type"] = "application/json"
        mid = time.perf_counter()
        answer = await plain.post("/v5/order/create", content=body, headers=headers)
        end = time.perf_counter()
        answer.raise_for_status()
        assert answer.json()["retCode"] == 0, answer.text
        if i >= 50:  # warm-up
            ours.append((answered[-1] - start) * 1000)
            bare.append((end - mid) * 1000)
    await broker.aclose()
    await plain.aclose()
    return ours, bare


if __name__ == "__main__":
    main()
