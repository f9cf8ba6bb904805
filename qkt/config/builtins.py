"""Built-in broker profiles (SPEC §3.3) and every field's default, as plain data.

Plain data on purpose: built-ins are trusted, and importing this module costs nothing. With no
config file and no ``QKT_BROKER_*`` variable, :func:`builtin_profiles` resolves every profile
without pydantic; a test keeps :data:`FIELDS` equal to the pydantic models' defaults.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from qkt.config.timezones import NY_CLOSE

PROFILE_TYPES: Final = ("mt5", "bybit", "paper")
SECRET_FIELDS: Final = frozenset({"api_key", "api_secret"})
JSON_FIELDS: Final = frozenset({"aliases", "instrument_overrides", "contract_sizes"})
"""Fields whose ``QKT_BROKER_*`` value is JSON text."""

BYBIT_TESTNET: Final = "https://api-testnet.bybit.com"
BYBIT_MAINNET: Final = "https://api.bybit.com"
DEFAULT_STARTING_BALANCE: Final = Decimal(10000)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()
"""Placeholder default of a field a fresh profile must set."""

FIELDS: Final[dict[str, dict[str, Any]]] = {
    "mt5": {
        "type": "mt5",
        "gateway_url": REQUIRED,
        "api_key": None,
        "symbol_suffix": "",
        "aliases": {},
        "server_time_zone": "UTC",
        "magic": REQUIRED,
        "poll_interval_ms": 1000,
        "tick_poll_interval_ms": 1000,
        "http_timeout_ms": 5000,
        "retry_attempts": 3,
        "ready_timeout_ms": 30000,
        "deviation_points": 20,
        "instrument_overrides": {},
        "expected_account_login": None,
        "expected_account_server": None,
        "expected_trade_mode": None,
    },
    "bybit": {
        "type": "bybit",
        "api_key": None,
        "api_secret": None,
        "testnet": True,
        "category": "linear",
        "base_url": None,
        "recv_window_ms": 5000,
        "poll_interval_ms": 1000,
        "tick_poll_interval_ms": 1000,
        "http_timeout_ms": 5000,
        "retry_attempts": 3,
    },
    "paper": {
        "type": "paper",
        "starting_balance": None,
        "quotes_from": None,
        "slippage_bps": Decimal(0),
        "commission_bps": Decimal(0),
        "contract_sizes": {},
    },
}
"""Every field of every profile type, in the models' order, with its default."""

BUILTIN_PROFILES: Final[dict[str, dict[str, Any]]] = {
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


def bybit_base_url(testnet: object) -> str:
    return BYBIT_TESTNET if testnet is not False else BYBIT_MAINNET


def complete(kind: str, values: dict[str, Any], balance: Decimal) -> dict[str, Any]:
    """Fill the defaults a validated profile leaves open: Bybit's URL, paper's balance."""
    if kind == "bybit" and values.get("base_url") is None:
        values["base_url"] = bybit_base_url(values.get("testnet"))
    if kind == "paper" and values.get("starting_balance") is None:
        values["starting_balance"] = balance
    return values


def builtin_values(name: str, balance: Decimal = DEFAULT_STARTING_BALANCE) -> dict[str, Any]:
    """Every field of built-in profile ``name`` (trusted: not validated again)."""
    given = BUILTIN_PROFILES[name]
    values = {key: _copy(given.get(key, default)) for key, default in FIELDS[given["type"]].items()}
    return complete(given["type"], values, balance)


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value
