"""Typed answers of the Bybit v5 endpoints qkt uses (reference/bybit-v5.md, "Endpoints").

Numbers arrive as JSON strings and are read as :class:`~decimal.Decimal`; ``""`` reads as
``None`` (the ``avgPrice`` of an unfilled order, the ``side`` of a flat position); a
``takeProfit``/``stopLoss``/``triggerPrice`` of ``"0"`` means "not set" and also reads as ``None``.
Fields qkt does not use are ignored. The API key and secret that ``/v5/user/query-api`` echoes
are deliberately not modelled.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


def _blank_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _zero_none(value: Decimal | None) -> Decimal | None:
    return None if value is None or value == 0 else value


def _flag(value: Any) -> Any:
    return bool(int(value)) if isinstance(value, int | str) and str(value).isdigit() else value


Dec = Annotated[Decimal, BeforeValidator(_blank_none)]
OptDec = Annotated[Decimal | None, BeforeValidator(_blank_none)]
Level = Annotated[Decimal | None, BeforeValidator(_blank_none), AfterValidator(_zero_none)]
"""A TP/SL/trigger level: ``""`` and ``"0"`` both mean "not set"."""
OptInt = Annotated[int | None, BeforeValidator(_blank_none)]
Flag = Annotated[bool, BeforeValidator(_flag)]
"""Booleans Bybit sends as ``0``/``1`` (``readOnly``, ``uta``)."""


class _Wire(BaseModel):
    model_config = ConfigDict(
        extra="ignore", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class Envelope(_Wire):
    """``{"retCode", "retMsg", "result", "retExtInfo", "time"}``; success is ``retCode == 0``."""

    ret_code: int
    ret_msg: str = ""
    result: Any = None
    ret_ext_info: Any = None
    time: int | None = None


class Page(_Wire):
    """The list-shaped ``result`` of most endpoints; ``next_page_cursor`` is ``""`` on the last."""

    rows: list[Any] = Field(default_factory=list, alias="list")
    next_page_cursor: str = ""
    category: str = ""


class ServerTime(_Wire):
    time_second: int
    time_nano: int | None = None

    @property
    def ms(self) -> int:
        if self.time_nano:
            return self.time_nano // 1_000_000
        return self.time_second * 1000


class Ticker(_Wire):
    symbol: str
    bid1_price: OptDec = None
    ask1_price: OptDec = None
    last_price: OptDec = None
    bid1_size: OptDec = None
    ask1_size: OptDec = None
    mark_price: OptDec = None  # linear only
    index_price: OptDec = None  # linear only


class PriceFilter(_Wire):
    tick_size: Dec
    min_price: OptDec = None
    max_price: OptDec = None


class LotSizeFilter(_Wire):
    # linear
    qty_step: OptDec = None
    min_order_qty: OptDec = None
    max_order_qty: OptDec = None
    max_mkt_order_qty: OptDec = None
    min_notional_value: OptDec = None
    # spot
    base_precision: OptDec = None
    quote_precision: OptDec = None
    min_order_amt: OptDec = None
    max_order_amt: OptDec = None
    max_limit_order_qty: OptDec = None
    max_market_order_qty: OptDec = None


class LeverageFilter(_Wire):
    min_leverage: OptDec = None
    max_leverage: OptDec = None
    leverage_step: OptDec = None


class Instrument(_Wire):
    """One row of ``instruments-info``. The volume grid is ``qty_step`` (linear) or
    ``base_precision`` (spot): :attr:`volume_step` picks the one the category has."""

    symbol: str
    status: str = ""
    base_coin: str = ""
    quote_coin: str = ""
    settle_coin: str = ""  # linear only
    price_scale: OptInt = None  # linear only
    price_filter: PriceFilter
    lot_size_filter: LotSizeFilter
    leverage_filter: LeverageFilter | None = None  # linear only

    @property
    def volume_step(self) -> Decimal | None:
        lot = self.lot_size_filter
        return lot.qty_step if lot.qty_step is not None else lot.base_precision


class Kline(_Wire):
    """A bar as Bybit sends it: ``[startTime, open, high, low, close, volume, turnover]``
    (strings); ``start_ms`` is the bar's open time."""

    start_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    turnover: OptDec = None

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        if isinstance(data, list | tuple):
            if len(data) < 6:
                raise ValueError(f"a kline row has 6 or 7 fields, not {len(data)}")
            names = ("start_ms", "open", "high", "low", "close", "volume", "turnover")
            return dict(zip(names, data, strict=False))
        return data


class CoinBalance(_Wire):
    coin: str
    equity: OptDec = None
    wallet_balance: OptDec = None
    unrealised_pnl: OptDec = None
    cum_realised_pnl: OptDec = None
    locked: OptDec = None
    usd_value: OptDec = None
    total_position_im: OptDec = Field(default=None, alias="totalPositionIM")
    total_order_im: OptDec = Field(default=None, alias="totalOrderIM")


class WalletBalance(_Wire):
    """The unified account (``result.list[0]``): account-level figures are USD-valued."""

    account_type: str = ""
    total_equity: OptDec = None
    total_wallet_balance: OptDec = None
    total_margin_balance: OptDec = None
    total_available_balance: OptDec = None
    total_perp_upl: OptDec = Field(default=None, alias="totalPerpUPL")
    total_initial_margin: OptDec = None
    total_maintenance_margin: OptDec = None
    coin: list[CoinBalance] = Field(default_factory=list)

    def coin_balance(self, name: str) -> CoinBalance | None:
        return next((c for c in self.coin if c.coin == name), None)


class ApiKeyInfo(_Wire):
    """``/v5/user/query-api``: what the key may do. The key itself is not kept."""

    id: str = ""
    note: str = ""
    read_only: Flag = False
    permissions: dict[str, list[str]] = Field(default_factory=dict)
    ips: list[str] = Field(default_factory=list)
    type: OptInt = None
    deadline_day: OptInt = None
    expired_at: Annotated[datetime | None, BeforeValidator(_blank_none)] = None
    created_at: Annotated[datetime | None, BeforeValidator(_blank_none)] = None
    unified: Flag = False  # deprecated by Bybit in favour of uta
    uta: Flag = False
    user_id: OptInt = Field(default=None, alias="userID")
    is_master: bool | None = None


class Position(_Wire):
    """A linear position. ``size`` is never negative and ``side`` gives the direction (``Buy``,
    ``Sell``, ``""`` flat): :attr:`signed_size` is the signed quantity."""

    symbol: str
    side: str = ""  # "Buy", "Sell", or "" when flat
    size: Dec
    avg_price: OptDec = None
    position_idx: int = 0
    take_profit: Level = None
    stop_loss: Level = None
    mark_price: OptDec = None
    unrealised_pnl: OptDec = None
    cum_realised_pnl: OptDec = None
    leverage: OptDec = None
    position_status: str = ""
    updated_time: OptInt = None
    seq: OptInt = None

    @property
    def signed_size(self) -> Decimal:
        return (
            -self.size if self.side == "Sell" else self.size if self.side == "Buy" else Decimal(0)
        )


class Order(_Wire):
    """A row of ``/v5/order/realtime`` or ``/v5/order/history``. ``avg_price`` is ``None`` until
    something filled; the ``price`` of a market order is Bybit's protective limit, not a fill."""

    order_id: str
    order_link_id: str = ""
    symbol: str
    side: str = ""
    order_type: str = ""
    order_status: str
    qty: OptDec = None
    price: OptDec = None
    avg_price: OptDec = None
    cum_exec_qty: OptDec = None
    cum_exec_value: OptDec = None
    leaves_qty: OptDec = None
    reject_reason: str = ""
    reduce_only: bool = False
    take_profit: Level = None
    stop_loss: Level = None
    trigger_price: Level = None
    create_type: str = ""
    stop_order_type: str = ""
    time_in_force: str = ""
    created_time: OptInt = None
    updated_time: OptInt = None


class Execution(_Wire):
    """A row of ``/v5/execution/list``. Only ``exec_type == "Trade"`` rows are fills; orders
    Bybit makes itself (TP/SL triggers, liquidations) carry ``order_link_id == ""`` and say what
    they are in ``create_type``/``stop_order_type``."""

    exec_id: str
    order_id: str = ""
    order_link_id: str = ""
    symbol: str
    side: str = ""
    exec_price: Dec
    exec_qty: Dec
    exec_value: OptDec = None
    exec_fee: OptDec = None
    fee_rate: OptDec = None
    fee_currency: str = ""  # spot
    is_maker: bool | None = None
    exec_type: str = ""
    exec_time: int
    closed_size: OptDec = None  # linear
    create_type: str = ""
    stop_order_type: str = ""
    seq: OptInt = None


WriteStatus = Literal["accepted", "rejected", "unknown", "duplicate"]


class WriteOutcome(_Wire):
    """What one write (sent once, never retried) came to.

    - ``accepted``: retCode 0 (for a create: acknowledged, placement is asynchronous);
    - ``rejected``: refused before anything was placed (a 4xx, a refusing retCode, or nothing
      could be sent);
    - ``unknown``: it may have been placed (5xx, a timeout or dropped connection after sending,
      retCode 10000/10016/170007/170146/170035, an unreadable answer) — resolve before sending
      anything else for the symbol;
    - ``duplicate``: the ``orderLinkId`` is already in use (110072/170141), so the original
      exists — look it up.

    ``answered`` is False when no HTTP answer came back at all. ``valid_until_ms`` (server
    time) is ``X-BAPI-TIMESTAMP + recv_window``: after it Bybit refuses any copy of the request.
    """

    status: WriteStatus
    ret_code: int | None = None
    http_status: int | None = None
    message: str = ""
    answered: bool = True
    valid_until_ms: int | None = None


class CreateOutcome(WriteOutcome):
    order_id: str = ""
    order_link_id: str = ""


# ---------------------------------------------------------------- reading answers (no I/O)
DUPLICATE_CODES = frozenset({110072, 170141})
"""The ``orderLinkId`` is taken: the original order exists."""
UNKNOWN_CODES = frozenset({10000, 10016, 170007, 170146, 170035})
"""Server timeouts and errors after which a create may or may not have been placed."""
REFUSED_CODES = frozenset({10003, 10004, 10005, 10010})
"""The credentials are refused (invalid key or environment, signature, permission, IP)."""


def read_envelope(content: bytes) -> Envelope | None:
    """The v5 envelope of an answer's body; None when it is not one (not JSON, no retCode)."""
    try:
        return Envelope.model_validate_json(content)
    except ValueError:
        return None


def write_outcome(http_status: int, envelope: Envelope | None, text: str) -> WriteOutcome:
    """What a write's answer means; ``text`` is the (cleaned) detail to report: 5xx and an
    unreadable body are ``unknown``, any other 4xx ``rejected``, then by retCode."""
    if http_status >= 400 or envelope is None:
        what = f"HTTP {http_status}" if http_status >= 400 else "unreadable answer"
        state: WriteStatus = "rejected" if 400 <= http_status < 500 else "unknown"
        message = f"{what}: {text}" if text else what
        return WriteOutcome(status=state, http_status=http_status, message=message)
    ret = envelope.ret_code
    if ret == 0:
        state = "accepted"
    elif ret in DUPLICATE_CODES:
        state = "duplicate"
    elif ret in UNKNOWN_CODES:
        state = "unknown"
    else:
        state = "rejected"
    return WriteOutcome(status=state, ret_code=ret, http_status=http_status, message=text)
