"""The control API's bodies (SPEC §5.3-§5.5, §6.1): one set of pydantic models for the daemon that
answers and the CLI that asks, so both read the same shapes. Decimals travel as strings, times as
ISO-8601 UTC strings. Every error is ``{"error": {"code", "message", "diagnostics": [...]}}``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DeploymentState = Literal["starting", "running", "stopped", "failed", "finished"]
BrokerState = Literal["up", "down"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# ---------------------------------------------------------------- errors
class DiagnosticOut(_Answer):
    severity: Literal["error", "warning", "info"]
    code: str
    message: str
    path: str | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None


class ErrorDetail(_Answer):
    code: str
    message: str
    diagnostics: list[DiagnosticOut] = Field(default_factory=list)


class ErrorBody(_Answer):
    error: ErrorDetail


# ---------------------------------------------------------------- requests
class ReplayIn(_Body):
    """The rows a deploy's children trade instead of the daemon's market data."""

    csv: str = Field(description="The CSV text itself (the daemon keeps what it runs).")
    name: str = Field(description="The file the user gave, for messages.")
    speed: str = "realtime"


class ChildIn(_Body):
    """One deployment: the strategy source itself, never only its path."""

    name: str  # fx-book/eur-momentum, or momentum
    portfolio: str | None = None
    file: str  # for display
    source: str
    params: dict[str, Any] = Field(default_factory=dict)
    strict: bool | None = None  # the portfolio's strict_brokers, when it says


class DeployIn(_Body):
    children: list[ChildIn]
    strict: bool | None = None  # --strict-brokers / --no-strict-brokers
    replay: ReplayIn | None = None
    dry_run: bool = False
    # The client's resolution of the profiles its routes use, without secrets (a secret field is
    # sent as a fingerprint, never its value): the daemon says which fields differ from its own.
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)


class StopIn(_Body):
    flatten: bool = False


# ---------------------------------------------------------------- answers
class RouteOut(_Answer):
    alias: str
    label: str
    symbol: str
    timeframe: str
    profile: str
    type: str
    target: str
    broker_symbol: str | None = None
    magic: int | None = None
    fallback: bool = False
    status: str = "ok"


class DeploymentOut(_Answer):
    name: str
    portfolio: str | None
    strategy: str
    file: str
    state: DeploymentState
    reason: str | None
    since: str
    strict: bool
    params: dict[str, Any]
    routes: list[RouteOut]


class PositionOut(_Answer):
    label: str
    symbol: str
    qty: str
    avg_price: str
    unrealized_pnl: str
    realized_pnl: str


class OrderOut(_Answer):
    client_id: str
    alias: str
    label: str
    symbol: str
    side: str
    qty: str
    state: str


class BrokerOut(_Answer):
    profile: str
    type: str
    target: str
    state: BrokerState
    since: str | None = None
    reason: str | None = None


class StatusOut(DeploymentOut):
    positions: list[PositionOut] = Field(default_factory=list)
    orders: list[OrderOut] = Field(default_factory=list)
    fills: list[dict[str, Any]] = Field(default_factory=list)  # shaped like qkt run --json fills
    balance: str
    equity: str
    brokers: list[BrokerOut] = Field(default_factory=list)
    warmup: str | None = None  # "warm: 21 bars from the venue" / "cold: no history"
    # What the deployment must know: a stream without quotes, a difference between the journal
    # and the venue found at a restart (the venue's position is taken).
    notes: list[str] = Field(default_factory=list)


class DeploymentsOut(_Answer):
    schema_: Literal["qkt.deployments/1"] = Field("qkt.deployments/1", alias="schema")
    deployments: list[DeploymentOut]


class StatusListOut(_Answer):
    schema_: Literal["qkt.status/1"] = Field("qkt.status/1", alias="schema")
    deployments: list[StatusOut]


class DeployOut(_Answer):
    schema_: Literal["qkt.deploy/1"] = Field("qkt.deploy/1", alias="schema")
    ok: bool
    dry_run: bool
    deployments: list[DeploymentOut]
    diagnostics: list[DiagnosticOut] = Field(default_factory=list)
    differences: dict[str, list[str]] = Field(default_factory=dict)  # profile -> fields


class DaemonOut(_Answer):
    schema_: Literal["qkt.daemon/1"] = Field("qkt.daemon/1", alias="schema")
    running: bool
    pid: int | None = None
    version: str | None = None
    started_at: str | None = None
    uptime_s: float | None = None
    config: str | None = None
    state_dir: str
    socket: str
    deployments: dict[str, int] = Field(default_factory=dict)
    brokers: list[BrokerOut] = Field(default_factory=list)
