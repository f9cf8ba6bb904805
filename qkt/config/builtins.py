"""Built-in broker profiles (SPEC §3.3): the MT5 venues qkt knows out of the box, and paper.

Plain data on purpose: built-ins are trusted, and importing this module costs nothing.
"""

from __future__ import annotations

from typing import Any

NY_CLOSE = "ny-close"
"""Server time of "New York close" brokers: New York time + 7 h (UTC+2 in winter, UTC+3 in summer)."""

BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "exness": {
        "type": "mt5",
        "gateway_url": "http://localhost:5001",
        "symbol_suffix": "m",
        "aliases": {"NAS100": "USTEC", "UKOIL": "XBRUSD", "NGAS": "XNGUSD"},
        "server_time_zone": "UTC",
        "magic": 10001,
    },
    "icmarkets": {
        "type": "mt5",
        "gateway_url": "http://localhost:5002",
        "symbol_suffix": ".raw",
        "server_time_zone": NY_CLOSE,
        "magic": 10002,
    },
    "ftmo": {
        "type": "mt5",
        "gateway_url": "http://localhost:5003",
        "server_time_zone": NY_CLOSE,
        "magic": 10003,
    },
    "pepperstone": {
        "type": "mt5",
        "gateway_url": "http://localhost:5004",
        "symbol_suffix": ".cmd",
        "server_time_zone": NY_CLOSE,
        "magic": 10004,
    },
    # BACKTEST and PAPER labels route to the paper broker explicitly, never as a fallback.
    "backtest": {"type": "paper"},
    "paper": {"type": "paper"},
}
