"""A host with deployments for the control API's tests, and the API served on a real Unix socket
in a thread of the test process (the CLI then talks to it as to a daemon)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from qkt.brokers.registry import BrokerRegistry
from qkt.config import load_config
from qkt.daemon.api import create_app
from qkt.daemon.hostapi import DaemonContext, HostLike, NotFound
from qkt.daemon.journal import Journal
from qkt.daemon.models import (
    BrokerOut,
    DeployIn,
    DeploymentOut,
    DeploymentsOut,
    DeployOut,
    PositionOut,
    RouteOut,
    StatusListOut,
    StatusOut,
)
from qkt.daemon.server import bind_socket
from qkt.daemon.statedir import StateDir

SINCE = "2025-01-06T09:30:00Z"
EXNESS = RouteOut(
    alias="eur",
    label="EXNESS",
    symbol="EURUSD",
    timeframe="1m",
    profile="exness",
    type="mt5",
    target="http://localhost:5001",
    broker_symbol="EURUSDm",
    magic=10001,
)
PAPER = RouteOut(
    alias="gbp",
    label="OANDA",
    symbol="GBPUSD",
    timeframe="5m",
    profile="paper",
    type="paper",
    target="paper",
    broker_symbol="GBPUSD",
    fallback=True,
    status="fallback",
)


def deployment(name: str, portfolio: str | None, state: str = "running") -> dict[str, Any]:
    return {
        "name": name,
        "portfolio": portfolio,
        "strategy": "momentum",
        "file": "momentum.qkt",
        "state": state,
        "reason": None if state == "running" else "stopped by qkt stop",
        "since": SINCE,
        "strict": False,
        "params": {"fast": "9"},
        "routes": [EXNESS, PAPER],
    }


class FakeHost:
    """Three deployments: ``fx-book/eur-momentum`` (long 0.1 on EXNESS, its gateway down),
    ``fx-book/gbp-swing`` and ``momentum``; logs under ``logs``."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.items = {
            "fx-book/eur-momentum": deployment("fx-book/eur-momentum", "fx-book"),
            "fx-book/gbp-swing": deployment("fx-book/gbp-swing", "fx-book"),
            "momentum": deployment("momentum", None, "stopped"),
        }
        self.stopped: list[tuple[str, bool]] = []

    def _names(self, name: str) -> list[str]:
        found = [n for n, d in self.items.items() if n == name or d["portfolio"] == name]
        if not found:
            raise NotFound(name, [*self.items, "fx-book"])
        return found

    async def deploy(self, request: DeployIn) -> DeployOut:
        return DeployOut(ok=True, dry_run=request.dry_run, deployments=[])

    def deployments(self) -> DeploymentsOut:
        return DeploymentsOut(deployments=[DeploymentOut(**d) for d in self.items.values()])

    def status(self, name: str) -> StatusListOut:
        return StatusListOut(deployments=[self._status(n) for n in self._names(name)])

    def _status(self, name: str) -> StatusOut:
        held = name == "fx-book/eur-momentum"
        positions = [
            PositionOut(
                label="EXNESS",
                symbol="EURUSD",
                qty="0.1" if held else "0",
                avg_price="1.08512",
                unrealized_pnl="1.25",
                realized_pnl="3.5" if held else "0",
            )
        ]
        fills = [
            {
                "time": "2025-01-06T09:31:00Z",
                "alias": "eur",
                "side": "buy",
                "qty": "0.1",
                "price": "1.08512",
                "reason": "market",
                "client_id": "eur-momentum-k3-000001",
            }
        ]
        down = BrokerOut(
            profile="exness",
            type="mt5",
            target="http://localhost:5001",
            state="down",
            since="2025-01-06T10:00:00Z",
            reason="connection refused",
        )
        return StatusOut(
            **self.items[name],
            positions=positions,
            fills=fills if held else [],
            balance="10000",
            equity="10001.25",
            brokers=[down],
        )

    async def stop(self, name: str, flatten: bool) -> DeploymentsOut:
        names = self._names(name)
        self.stopped.append((name, flatten))
        for n in names:
            self.items[n] = {**self.items[n], "state": "stopped", "reason": "stopped by qkt stop"}
        return DeploymentsOut(deployments=[DeploymentOut(**self.items[n]) for n in names])

    def log_path(self, name: str) -> Path:
        self._names(name)
        return self.logs / f"{name}.log"

    def brokers(self) -> list[BrokerOut]:
        return [BrokerOut(profile="exness", type="mt5", target="http://localhost:5001", state="up")]

    async def restore(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


def context_for(state_path: Path) -> DaemonContext:
    state = StateDir.open(state_path)
    config = load_config(None, env={}, cwd=state_path)
    journal = Journal.open(state.database)
    return DaemonContext(state, config, BrokerRegistry.from_config(config), journal)


class Served:
    """The app on ``state.socket``, its loop in a thread; :meth:`stop` ends followed logs."""

    def __init__(self, host: HostLike, context: DaemonContext) -> None:
        self.stopping = asyncio.Event()
        self.stop_requests = 0
        app = create_app(host, context, stopping=self.stopping, request_stop=self._requested)
        config = uvicorn.Config(app, lifespan="off", log_level="warning", log_config=None)
        self.server = uvicorn.Server(config)
        self.socket = bind_socket(context.state.socket)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _requested(self) -> None:
        self.stop_requests += 1

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[self.socket])

        asyncio.run(main())

    def start(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has ended already
                self.loop.call_soon_threadsafe(self.stopping.set)
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def served(host: HostLike, context: DaemonContext) -> Iterator[Served]:
    running = Served(host, context).start()
    try:
        yield running
    finally:
        running.stop()
        context.journal.close()
