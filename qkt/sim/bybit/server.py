"""Run the Bybit simulator with uvicorn: in a background thread (tests) or in the foreground
(``qkt sim bybit``).

Each :class:`BybitSimServer` is one venue host over a :class:`BybitState`: its fault switches,
rate-limit windows and request counts live and die with it. ``tick_ms`` moves the quotes on a
timer (TP/SL and resting limit orders trigger on them).
"""

from __future__ import annotations

from qkt.sim.bybit.app import DEFAULT_API_KEY, DEFAULT_API_SECRET, Venue, create_app
from qkt.sim.bybit.state import BybitState
from qkt.sim.server import BackgroundServer, serve_forever

__all__ = ["BybitSimServer", "serve_forever"]


class BybitSimServer(BackgroundServer):
    """``with BybitSimServer(state) as sim: sim.url`` — the simulated Bybit REST host on a free
    local port, accepting requests signed with ``api_key``/``api_secret``."""

    what = "the Bybit simulator"

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
        state = state or BybitState()
        self.bybit_app = create_app(state, api_key=api_key, api_secret=api_secret)
        super().__init__(self.bybit_app, state, host=host, port=port, tick_ms=tick_ms)
        self.state: BybitState = state
        self.api_key = api_key
        self.api_secret = api_secret

    @property
    def venue(self) -> Venue:
        """The routes' fault switches (``venue.faults``) and request counts."""
        return self.bybit_app.venue
