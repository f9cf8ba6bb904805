"""Run the Bybit simulator with uvicorn: in a background thread (tests) or in the foreground
(``qkt sim bybit``).

Each :class:`BybitSimServer` is one venue host over a :class:`BybitState`: its fault switches,
rate-limit windows and request counts live and die with it. ``tick_ms`` moves the quotes on a
timer (TP/SL and resting limit orders trigger on them).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn

from qkt.sim.bybit.app import DEFAULT_API_KEY, DEFAULT_API_SECRET, Venue, create_app
from qkt.sim.bybit.state import BybitState


class BybitSimServer:
    """``with BybitSimServer(state) as sim: sim.url`` — the simulated Bybit REST host on a free
    local port, accepting requests signed with ``api_key``/``api_secret``."""

    def __init__(
        self,
        state: BybitState | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        tick_ms: int = 0,
    ) -> None:
        self.state = state or BybitState()
        self.host = host
        self.port = port or _free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.api_key = api_key
        self.api_secret = api_secret
        self.tick_ms = tick_ms
        self.app = create_app(self.state, api_key=api_key, api_secret=api_secret)
        config = uvicorn.Config(
            self.app, host=host, port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def venue(self) -> Venue:
        """The routes' fault switches (``venue.faults``) and request counts."""
        return self.app.venue

    def start(self) -> BybitSimServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise OSError(f"the Bybit simulator could not listen on {self.url}")
            time.sleep(0.01)
        if self.tick_ms:
            threading.Thread(target=self._ticker, daemon=True).start()
        return self

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def _ticker(self) -> None:
        while not self._stop.wait(self.tick_ms / 1000):
            self.state.step()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> BybitSimServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_forever(server: BybitSimServer, on_ready: Callable[[str], Any] | None = None) -> None:
    """Run ``server`` in the foreground until Ctrl-C (SIGINT) or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        if on_ready is not None:
            on_ready(server.url)
        while not stop.is_set() and server.running:
            stop.wait(0.5)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
