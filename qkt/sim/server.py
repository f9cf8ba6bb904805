"""Run the simulator with uvicorn: in a background thread (tests, demo) or in the foreground (CLI).

Each :class:`SimServer` is one gateway process over a :class:`SimState` (the terminal and its
account): its fault switches and idempotency store live and die with it, so a second server over
the same state is a restarted gateway that has forgotten every stored answer. ``tick_ms`` moves
the quotes on a timer (SL/TP and pending orders trigger on them).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import uvicorn

from qkt.sim.app import create_app
from qkt.sim.state import SimState


class BackgroundServer:
    """A uvicorn server for ``app`` on a free local port (or ``port``), in a background thread;
    ``tick_ms`` steps ``state`` on a timer (quotes move, stops trigger)."""

    what = "the simulator"

    def __init__(
        self, app: Any, state: Any, *, host: str = "127.0.0.1", port: int = 0, tick_ms: int = 0
    ) -> None:
        self.app = app
        self.state = state
        self.host = host
        self.port = port or _free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.tick_ms = tick_ms
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise OSError(f"{self.what} could not listen on {self.url}")
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class SimServer(BackgroundServer):
    """``with SimServer(state) as sim: sim.url`` — a real HTTP gateway on a free local port;
    ``api_key`` makes it require ``Authorization: Bearer <api_key>``."""

    what = "the gateway simulator"

    def __init__(
        self,
        state: SimState | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        tick_ms: int = 0,
    ) -> None:
        state = state or SimState()
        app = create_app(state, api_key=api_key)
        super().__init__(app, state, host=host, port=port, tick_ms=tick_ms)
        self.state: SimState = state


def serve_forever(server: BackgroundServer, on_ready: Callable[[str], Any] | None = None) -> None:
    """Run ``server`` in the foreground until Ctrl-C (SIGINT) or SIGTERM stops it cleanly."""
    import signal

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
