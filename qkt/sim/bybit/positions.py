"""One-way linear positions (``positionIdx`` 0, one per symbol) and their ``Full``-mode TP/SL.

A position's take profit and stop loss are conditional orders Bybit creates itself: they show
in ``/v5/order/realtime`` as ``Untriggered`` market orders with ``orderLinkId: ""``,
``createType`` ``CreateByTakeProfit``/``CreateByStopLoss`` and ``stopOrderType``
``TakeProfit``/``StopLoss``, sized to the whole position; when the last price crosses one it
fills (its fill an execution with the same fields) and the other leg is deactivated, as both
are when the position closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from qkt.sim.bybit.common import ZERO, fmt, num
from qkt.sim.bybit.instruments import Spec
from qkt.sim.bybit.market import Market
from qkt.sim.bybit.records import FEE_PLACES, Ledger, Order

LEGS = ("TakeProfit", "StopLoss")
DEFAULT_LEVERAGE = Decimal(10)


@dataclass
class Position:
    spec: Spec
    side: str = ""  # "Buy" long, "Sell" short, "" flat
    size: Decimal = ZERO
    avg: Decimal = ZERO
    leverage: Decimal = DEFAULT_LEVERAGE
    cur_realised: Decimal = ZERO
    cum_realised: Decimal = ZERO
    created: int = 0
    updated: int = 0
    seq: int = -1
    tp_order: Order | None = None
    sl_order: Order | None = None

    def leg(self, kind: str) -> Order | None:
        return self.tp_order if kind == "TakeProfit" else self.sl_order

    def level(self, kind: str) -> Decimal:
        order = self.leg(kind)
        return ZERO if order is None else order.trigger_price

    def trigger_by(self, kind: str) -> str:
        order = self.leg(kind)
        return "LastPrice" if order is None else order.meta.get("trigger_by", "LastPrice")

    @property
    def direction(self) -> int:
        return 1 if self.side == "Buy" else -1 if self.side == "Sell" else 0


class Positions:
    """The linear positions of the account and the conditional orders of their TP/SL."""

    def __init__(self, ledger: Ledger, market: Market) -> None:
        self.ledger = ledger
        self.market = market
        self.book: dict[str, Position] = {}

    def get(self, symbol: str) -> Position:
        pos = self.book.get(symbol)
        if pos is None:
            pos = self.book[symbol] = Position(self.market.specs[symbol])
        return pos

    # ------------------------------------------------------------ figures
    def upl(self, pos: Position) -> Decimal:
        last = self.market.quotes[pos.spec.symbol].last
        return (last - pos.avg) * pos.size * pos.direction

    def initial_margin(self, pos: Position) -> Decimal:
        return pos.size * pos.avg / pos.leverage

    def total_upl(self) -> Decimal:
        return sum((self.upl(p) for p in self.book.values()), ZERO)

    def total_im(self) -> Decimal:
        return sum((self.initial_margin(p) for p in self.book.values()), ZERO)

    # ------------------------------------------------------------ TP/SL legs
    def set_leg(self, pos: Position, kind: str, level: Decimal | None, by: str | None) -> None:
        """Set (``level`` > 0), keep (None) or cancel (0) one TP/SL leg of an open position."""
        current = pos.leg(kind)
        if level is None:
            if current is not None and by:
                current.meta["trigger_by"] = by
            return
        if level == 0:
            if current is not None:
                self.ledger.close(current, "Deactivated")
                self._attach(pos, kind, None)
            return
        now = self.ledger.now_ms()
        if current is None:
            quote = self.market.quotes[pos.spec.symbol]
            current = Order(
                "linear", pos.spec, self.ledger.new_id("linear"), "",
                "Sell" if pos.side == "Buy" else "Buy", "Market", ZERO, ZERO, "IOC", now,
                quote.last, status="Untriggered", reduce_only=True, close_on_trigger=True,
                tpsl_mode="Full", create_type=f"CreateBy{kind}", stop_order_type=kind,
            )  # fmt: skip
            self.ledger.add(current)
            self._attach(pos, kind, current)
        current.trigger_price = level
        current.updated = now
        current.meta["trigger_by"] = by or current.meta.get("trigger_by", "LastPrice")
        if kind == "TakeProfit":
            current.tp_trigger_by = current.meta["trigger_by"]
        else:
            current.sl_trigger_by = current.meta["trigger_by"]

    def _attach(self, pos: Position, kind: str, order: Order | None) -> None:
        if kind == "TakeProfit":
            pos.tp_order = order
        else:
            pos.sl_order = order

    def drop_legs(self, pos: Position, keep: Order | None = None) -> None:
        """The position closed: its TP/SL orders go (``keep``, the one that filled, stays)."""
        for kind in LEGS:
            leg = pos.leg(kind)
            if leg is not None and leg is not keep:
                self.ledger.close(leg, "Deactivated")
            self._attach(pos, kind, None)

    def crossed(self, pos: Position) -> str | None:
        """The leg the last price has reached, if any (a long's TP at or above, SL at or
        below; a short's the other way)."""
        last = self.market.quotes[pos.spec.symbol].last
        tp, sl = pos.level("TakeProfit"), pos.level("StopLoss")
        up = pos.direction > 0
        if tp and (last >= tp if up else last <= tp):
            return "TakeProfit"
        if sl and (last <= sl if up else last >= sl):
            return "StopLoss"
        return None

    # ------------------------------------------------------------ rows
    def row(self, pos: Position) -> dict[str, Any]:
        spec = pos.spec
        last = self.market.quotes[spec.symbol].last
        flat = pos.size == 0
        im = self.initial_margin(pos)
        value = pos.size * pos.avg
        return {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": spec.symbol,
            "side": pos.side,
            "size": spec.qty_text(pos.size),
            "avgPrice": "0" if flat else num(pos.avg.quantize(FEE_PLACES)),
            "positionValue": "" if flat else num(value),
            "tradeMode": 0,
            "positionStatus": "Normal",
            "autoAddMargin": 0,
            "adlRankIndicator": 0 if flat else 2,
            "leverage": num(pos.leverage),
            "positionBalance": num(im.quantize(FEE_PLACES)),
            "markPrice": spec.price_text(last),
            "liqPrice": "",
            "bustPrice": "",
            "positionMM": num((value * Decimal("0.005")).quantize(FEE_PLACES)),
            "positionIM": num(im.quantize(FEE_PLACES)),
            "tpslMode": "Full",
            "takeProfit": fmt(pos.level("TakeProfit"), spec.tick),
            "stopLoss": fmt(pos.level("StopLoss"), spec.tick),
            "trailingStop": fmt(ZERO, spec.tick),
            "unrealisedPnl": num(self.upl(pos).quantize(FEE_PLACES)),
            "curRealisedPnl": num(pos.cur_realised),
            "cumRealisedPnl": num(pos.cum_realised),
            "sessionAvgPrice": "",
            "createdTime": str(pos.created or self.ledger.now_ms()),
            "updatedTime": str(pos.updated or self.ledger.now_ms()),
            "seq": pos.seq,
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
        }
