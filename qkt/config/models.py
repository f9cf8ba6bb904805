"""Pydantic models of qkt.config.yaml (SPEC §3.2): the edge where outside data becomes typed.

Profiles are validated after their layers (built-in, YAML, ``extends``, environment, flags) are
merged, so a profile model describes a *resolved* profile: required fields are required. The file
schema (:mod:`qkt.config.schema`) relaxes that, because a YAML profile that overrides or extends
another may set only what it changes. Building pydantic models is what makes a cold start slow,
so models are few and built on first use (``defer_build``); built-ins never go through them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from qkt.config.timezones import NY_CLOSE, server_zone


def _check_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # `http://[::1`, `http://[zz]`
        raise ValueError("must be an http:// or https:// URL with a valid host") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if "@" in parts.netloc:
        # Credentials in a URL end up in logs and messages: they belong in `api_key`. The
        # message quotes the URL through without_credentials (qkt.config.messages).
        raise ValueError(
            "must not carry credentials (user:password@): give them as `api_key` "
            "(a ${VAR} keeps them out of the file)"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError("must be an http:// or https:// URL with a valid port") from exc
    return value.rstrip("/")


def without_credentials(url: str) -> str:
    """``url`` with whatever stands before ``@`` in its authority shown as ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed [host] (`http://[::1`): hide all before the last `@`
        head, at, host = url.rpartition("@")
        scheme = head.partition("://")[0] + "://" if "://" in head else ""
        return f"{scheme}***@{host}" if at else url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{host}").geturl()


def gateway_key(url: str) -> str:
    """A gateway URL as duplicate checks compare it: scheme and host case-insensitive, the
    default port explicit, no trailing slash (``HTTP://LOCALHOST:5001`` = ``http://localhost:5001``)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}{parts.path.rstrip('/')}"


def _not_bool(value: object) -> object:
    """``magic: true`` is a mistake, not the number 1: booleans are refused where an int is due."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _check_zone(value: str) -> str:
    server_zone(value)
    return value


Url = Annotated[str, AfterValidator(_check_url)]
TimeZone = Annotated[str, AfterValidator(_check_zone)]
ProfileName = Annotated[str, AfterValidator(str.lower)]
Milliseconds = Annotated[int, Field(gt=0)]
MAX_MAGIC = 2**32 - 1
"""MT5 magic numbers are unsigned 32-bit integers; gateways refuse anything else."""
Magic = Annotated[int, Field(gt=0, le=MAX_MAGIC), BeforeValidator(_not_bool)]
Attempts = Annotated[int, Field(ge=1, description="Attempts for reads; orders are never retried.")]
Bps = Annotated[Decimal, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class InstrumentOverride(_Model):
    """What the venue allows for one symbol, when known before connecting."""

    min_volume: Decimal | None = Field(None, gt=0, description="Smallest order size (lots).")
    max_volume: Decimal | None = Field(None, gt=0, description="Largest order size (lots).")
    volume_step: Decimal | None = Field(None, gt=0, description="Order sizes are multiples of it.")
    digits: int | None = Field(None, ge=0, description="Price decimals.")

    @model_validator(mode="after")
    def _limits_in_order(self) -> InstrumentOverride:
        low, high = self.min_volume, self.max_volume
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_volume {low} is above max_volume {high}")
        return self


class Mt5Profile(_Model):
    """An MT5 account reached through an mt5-gateway over HTTP."""

    type: Literal["mt5"] = "mt5"
    gateway_url: Url = Field(description="Base URL of the mt5-gateway (http or https).")
    api_key: SecretStr | None = Field(None, description="Bearer token for the gateway (secret).")
    symbol_suffix: str = Field("", description="Appended to every symbol after aliases (e.g. m).")
    aliases: dict[str, str] = Field(
        default_factory=dict, description="qkt symbol -> broker symbol, before the suffix."
    )
    server_time_zone: TimeZone = Field(
        "UTC", description=f"Server clock: an IANA id, UTC, or {NY_CLOSE} (New York time + 7 h)."
    )
    magic: Magic = Field(
        description="Account tag on every order: the MT5 magic number, 1 to 4294967295."
    )
    poll_interval_ms: Milliseconds = Field(1000, description="Position polling interval.")
    tick_poll_interval_ms: Milliseconds = Field(1000, description="Quote polling interval.")
    http_timeout_ms: Milliseconds = Field(5000, description="Timeout of one HTTP request.")
    retry_attempts: Attempts = 3
    ready_timeout_ms: Milliseconds = Field(
        30000, description="How long a start waits for the gateway's /health/ready."
    )
    deviation_points: int = Field(
        20, ge=0, le=1000, description="Allowed slippage in points (gateways take 0-1000)."
    )
    instrument_overrides: dict[str, InstrumentOverride] = Field(
        default_factory=dict, description="Per qkt symbol: min/max volume, volume step, digits."
    )
    expected_account_login: int | None = Field(
        None, gt=0, description="Refuse to trade if the gateway is logged into another account."
    )
    expected_account_server: str | None = Field(
        None, description="Refuse to trade if the gateway is on another server."
    )
    expected_trade_mode: Literal["demo", "contest", "real"] | None = Field(
        None, description="Refuse to trade if the account has another trade mode."
    )


class BybitProfile(_Model):
    """A Bybit v5 REST account."""

    type: Literal["bybit"] = "bybit"
    api_key: SecretStr | None = Field(None, description="API key (secret).")
    api_secret: SecretStr | None = Field(None, description="API secret (secret).")
    testnet: bool = Field(True, description="Trade on the testnet (default) or on mainnet.")
    category: Literal["linear", "spot"] = Field("linear", description="Product category.")
    base_url: Url | None = Field(None, description="REST base URL; derived from testnet if unset.")
    recv_window_ms: Milliseconds = Field(5000, description="Signed request validity window.")
    poll_interval_ms: Milliseconds = Field(1000, description="Execution polling interval.")
    tick_poll_interval_ms: Milliseconds = Field(1000, description="Quote polling interval.")
    http_timeout_ms: Milliseconds = Field(5000, description="Timeout of one HTTP request.")
    retry_attempts: Attempts = 3


class PaperProfile(_Model):
    """Simulated fills, optionally on another profile's quotes."""

    type: Literal["paper"] = "paper"
    starting_balance: Decimal | None = Field(
        None, gt=0, description="Account balance; default: the top-level paper.starting_balance."
    )
    quotes_from: ProfileName | None = Field(
        None, description="Paper-trade on the quotes of this mt5 or bybit profile."
    )
    slippage_bps: Bps = Field(Decimal(0), description="Slippage per fill, in basis points.")
    commission_bps: Bps = Field(Decimal(0), description="Commission per fill, in basis points.")
    contract_sizes: dict[str, Annotated[Decimal, Field(gt=0)]] = Field(
        default_factory=dict,
        description="Per qkt symbol: what one unit of quantity is worth per unit of price "
        "(100000: quantities are lots of 100,000, as on MT5); default 1.",
    )


ProfileModel = Mt5Profile | BybitProfile | PaperProfile
PROFILE_MODELS: dict[str, type[Mt5Profile] | type[BybitProfile] | type[PaperProfile]] = {
    "mt5": Mt5Profile,
    "bybit": BybitProfile,
    "paper": PaperProfile,
}


class ReplaySettings(_Model):
    """A recorded market to replay instead of live prices."""

    path: str = Field(description="CSV of bars or ticks (relative to the config file).")
    speed: Literal["max", "realtime"] | Annotated[float, Field(gt=0)] = Field(
        "max", description="max, realtime, or a multiple of real time such as 10."
    )


class MarketData(_Model):
    """Where sessions get their prices (SPEC §7)."""

    source: Literal["venue", "replay", "none"] = Field(
        "venue", description="venue: from each label's venue; replay: from a CSV; none."
    )
    replay: ReplaySettings | None = Field(None, description="Used when source is replay.")


class PaperDefaults(_Model):
    """Defaults of every paper account (BACKTEST, PAPER, fallbacks, type: paper profiles)."""

    starting_balance: Decimal = Field(Decimal(10000), gt=0, description="Paper account balance.")


class ConfigFile(_Model):
    """The top level of qkt.config.yaml; ``brokers`` is checked profile by profile."""

    strict_brokers: bool = Field(
        False, description="Refuse labels without a profile (and other strict checks)."
    )
    state_dir: str | None = Field(
        None,
        description="Daemon state directory (relative to the config file); --state-dir and "
        "$QKT_STATE_DIR win.",
    )
    market_data: MarketData = Field(default_factory=MarketData)
    paper: PaperDefaults = Field(default_factory=PaperDefaults)
    brokers: dict[str, dict[str, object] | None] = Field(
        default_factory=dict, description="Broker profiles by name (the lowercased DSL label)."
    )
