"""Typed events of the core: market data in, order requests out, broker outcomes back in.

Prices of bars are floats (what indicators consume); everything about money — order quantities,
fill prices, PnL — is a :class:`~decimal.Decimal`. A fill carries its instrument's contract size,
so PnL is money in the account's currency whatever the venue counts quantities in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

Side = Literal["buy", "sell"]


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a symbol; ``time`` is its open time (UTC)."""

    symbol: str
    time: datetime
    seconds: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0

    @property
    def end(self) -> datetime:
        from datetime import timedelta

        return self.time + timedelta(seconds=self.seconds)


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    time: datetime
    bid: float
    ask: float
    volume: float = 0.0


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A market order of one stream, with optional protective prices."""

    client_id: str
    strategy: str
    alias: str
    label: str
    symbol: str
    side: Side
    qty: Decimal
    time: datetime
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    reduce_only: bool = False
    # How the legs were computed from the entry price — ("by_pct", 1), ("by", 0.002), ("at", x) —
    # so a venue can put them at the same distance from its own quote at send time.
    stop_rule: tuple[str, Decimal] | None = None
    take_rule: tuple[str, Decimal] | None = None
    # The money the order was sized for (SIZING N USD / N PCT OF ...), None for a quantity: a venue
    # whose lots hold a contract size sizes the order itself at its own price.
    notional: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    client_id: str
    broker: str
    time: datetime


@dataclass(frozen=True, slots=True)
class OrderRejected:
    client_id: str
    broker: str
    reason: str
    time: datetime


@dataclass(frozen=True, slots=True)
class OrderUnknown:
    """The order may or may not be at the venue (timeout after sending, 502). It is neither a fill
    nor a rejection: the broker blocks its symbol and settles it from the venue's positions."""

    client_id: str
    broker: str
    reason: str
    time: datetime


@dataclass(frozen=True, slots=True)
class OrderFilled:
    client_id: str
    broker: str
    label: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    time: datetime
    reason: Literal["market", "stop_loss", "take_profit"] = "market"
    commission: Decimal = Decimal(0)
    # What one unit of ``qty`` is worth per unit of price, in the account's money: the venue's
    # contract size (100,000 for a lot of EURUSD on MT5), 1 for a quantity of the asset itself.
    contract_size: Decimal = Decimal(1)


@dataclass(frozen=True, slots=True)
class PositionRecovered:
    """An open position of this session a venue already held when the session started (a
    restart): it is the session's position from then on."""

    broker: str
    label: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    time: datetime
    contract_size: Decimal = Decimal(1)


@dataclass(frozen=True, slots=True)
class LogEvent:
    strategy: str
    level: str
    message: str
    time: datetime


@dataclass(frozen=True, slots=True)
class VenueNotice:
    """A venue stopped answering (``warning``) or answers again (``info``): visible, never fatal."""

    broker: str
    level: Literal["warning", "info"]
    message: str
    time: datetime
