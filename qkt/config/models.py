"""Pydantic models of qkt.config.yaml (SPEC §3.2): the edge where outside data becomes typed.

Profiles are validated after their layers (built-in, YAML, ``extends``, environment, flags) are
merged, so a model here describes a *resolved* profile: required fields are required. The file
schema (:func:`config_json_schema`) relaxes that, because a YAML profile that overrides or extends
another may set only what it changes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from qkt.config.builtins import NY_CLOSE

SECRET_FIELDS = frozenset({"api_key", "api_secret"})


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    return value.rstrip("/")


def _check_zone(value: str) -> str:
    if value in ("UTC", NY_CLOSE):
        return value
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except (ValueError, KeyError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"must be an IANA time zone (e.g. Europe/Athens), UTC or {NY_CLOSE}"
        ) from exc
    return value


Url = Annotated[str, AfterValidator(_check_url)]
TimeZone = Annotated[str, AfterValidator(_check_zone)]
PositiveMs = Annotated[int, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstrumentOverride(_Model):
    """What the venue allows for one symbol, when known before connecting."""

    min_volume: Decimal | None = Field(None, gt=0, description="Smallest order size (lots).")
    max_volume: Decimal | None = Field(None, gt=0, description="Largest order size (lots).")
    volume_step: Decimal | None = Field(None, gt=0, description="Order sizes are multiples of it.")
    digits: int | None = Field(None, ge=0, description="Price decimals.")


class Mt5Profile(_Model):
    """An MT5 account reached through an mt5-gateway over HTTP."""

    type: Literal["mt5"] = "mt5"
    gateway_url: Url = Field(description="Base URL of the mt5-gateway (http or https).")
    api_key: SecretStr | None = Field(None, description="Bearer token for the gateway (secret).")
    symbol_suffix: str = Field("", description="Appended to every symbol after aliases (e.g. m).")
    aliases: dict[str, str] = Field(
        default_factory=dict, description="qkt symbol -> broker symbol, before the suffix."
    )
    server_time_zone: TimeZone = Field("UTC", description=f"IANA zone, UTC or {NY_CLOSE}.")
    magic: int = Field(gt=0, description="Account tag on every order (MT5 magic number).")
    poll_interval_ms: PositiveMs = Field(1000, description="Position polling interval.")
    tick_poll_interval_ms: PositiveMs = Field(1000, description="Quote polling interval.")
    http_timeout_ms: PositiveMs = Field(5000, description="Timeout of one HTTP request.")
    retry_attempts: int = Field(3, ge=1, description="Attempts for reads (orders: never retried).")
    deviation_points: int = Field(20, ge=0, description="Allowed slippage in points.")
    instrument_overrides: dict[str, InstrumentOverride] = Field(
        default_factory=dict, description="Per qkt symbol: min/max volume, step, digits."
    )
    expected_account_login: int | None = Field(None, description="Refuse another account.")
    expected_account_server: str | None = Field(None, description="Refuse another server.")
    expected_trade_mode: Literal["demo", "contest", "real"] | None = Field(
        None, description="Refuse another trade mode."
    )


class BybitProfile(_Model):
    """A Bybit v5 REST account."""

    type: Literal["bybit"] = "bybit"
    api_key: SecretStr | None = Field(None, description="API key (secret).")
    api_secret: SecretStr | None = Field(None, description="API secret (secret).")
    testnet: bool = Field(True, description="Use the testnet (default) or mainnet.")
    category: Literal["linear", "spot"] = Field("linear", description="Product category.")
    base_url: Url | None = Field(None, description="Derived from testnet unless given.")
    recv_window_ms: PositiveMs = Field(5000, description="Signed request validity window.")
    http_timeout_ms: PositiveMs = Field(5000, description="Timeout of one HTTP request.")
    retry_attempts: int = Field(3, ge=1, description="Attempts for reads (orders: never retried).")


class PaperProfile(_Model):
    """Simulated fills, optionally on another profile's quotes."""

    type: Literal["paper"] = "paper"
    starting_balance: Decimal | None = Field(
        None, gt=0, description="Default: the top-level paper.starting_balance."
    )
    quotes_from: str | None = Field(None, description="Paper-trade on this profile's quotes.")
    slippage_bps: Decimal = Field(Decimal(0), ge=0, description="Slippage per fill, in bps.")
    commission_bps: Decimal = Field(Decimal(0), ge=0, description="Commission per fill, in bps.")


PROFILE_MODELS: dict[str, type[Mt5Profile] | type[BybitProfile] | type[PaperProfile]] = {
    "mt5": Mt5Profile,
    "bybit": BybitProfile,
    "paper": PaperProfile,
}


class ReplaySettings(_Model):
    path: str = Field(description="CSV of bars or ticks.")
    speed: Literal["max", "realtime"] | Annotated[float, Field(gt=0)] = Field(
        "max", description="max, realtime, or a multiplier of real time."
    )


class MarketData(_Model):
    source: Literal["venue", "replay", "none"] = Field(
        "venue", description="Where prices come from."
    )
    replay: ReplaySettings | None = None


class PaperDefaults(_Model):
    starting_balance: Decimal = Field(Decimal(10000), gt=0, description="Paper account balance.")


class ConfigFile(_Model):
    """The top level of qkt.config.yaml (profiles are checked one by one after resolution)."""

    strict_brokers: bool = Field(False, description="Refuse unknown labels instead of paper.")
    state_dir: str | None = Field(None, description="Daemon state; --state-dir/$QKT_STATE_DIR win.")
    market_data: MarketData = Field(default_factory=lambda: MarketData())
    paper: PaperDefaults = Field(default_factory=lambda: PaperDefaults())
    brokers: dict[str, dict[str, Any]] = Field(default_factory=dict)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of qkt.config.yaml, for editors and CI."""
    schema = ConfigFile.model_json_schema()
    defs = schema.setdefault("$defs", {})
    variants = []
    for name, model in PROFILE_MODELS.items():
        sub = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        sub.pop("required", None)  # overrides and extends may set only what they change
        sub["properties"]["extends"] = {
            "type": "string",
            "description": "Inherit every field of another profile (built-in or YAML).",
        }
        sub["properties"]["type"] = {"const": name, "type": "string"}
        title = f"{name.capitalize()}ProfileEntry"
        defs[title] = sub
        variants.append({"$ref": f"#/$defs/{title}"})
    schema["properties"]["brokers"] = {
        "type": "object",
        "description": "Broker profiles by name (the lowercased DSL label).",
        "propertyNames": {"pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "additionalProperties": {"anyOf": variants},
        "default": {},
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "qkt.config.yaml"
    return schema
