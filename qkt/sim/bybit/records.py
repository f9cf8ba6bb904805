"""The account's books: every order (``/v5/order/realtime`` and ``/history`` rows), every
execution (``/v5/execution/list`` rows), the coin balances of the unified wallet, and the ids
Bybit hands out (linear orders: UUIDs; spot orders and executions: long digit strings)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from qkt.sim.bybit.common import ZERO, fmt, num
from qkt.sim.bybit.instruments import Spec

OPEN = ("New", "PartiallyFilled", "Untriggered")
FEE_PLACES = Decimal("0.00000001")


@dataclass
class Order:
    category: str
    spec: Spec
    order_id: str
    link_id: str
    side: str
    order_type: str
    qty: Decimal  # base coin; a spot market order sized in the quote coin: the quote amount
    price: Decimal  # a limit price, a linear market order's protective price, 0 for spot market
    time_in_force: str
    created: int
    last_on_created: Decimal
    status: str = "New"
    reduce_only: bool = False
    close_on_trigger: bool = False
    take_profit: Decimal = ZERO
    stop_loss: Decimal = ZERO
    tp_trigger_by: str = ""
    sl_trigger_by: str = ""
    tpsl_mode: str = ""
    create_type: str = "CreateByUser"
    stop_order_type: str = ""
    trigger_price: Decimal = ZERO
    market_unit: str = ""
    cum_qty: Decimal = ZERO
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    fee_coin: str = "USDT"
    reject_reason: str = "EC_NoError"
    cancel_type: str = "UNKNOWN"
    updated: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def symbol(self) -> str:
        return self.spec.symbol

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def leaves(self) -> Decimal:
        """What is left to fill, in base coin (0 once the order is closed)."""
        if not self.is_open or self.market_unit == "quoteCoin":
            return ZERO
        return self.qty - self.cum_qty

    def price_text(self, value: Decimal) -> str:
        if value == 0:
            return "0"
        return fmt(value, self.spec.tick if self.category == "linear" else self.spec.spot_tick)

    def qty_text(self, value: Decimal) -> str:
        return self.spec.qty_text(value) if self.category == "linear" else num(value)

    def row(self) -> dict[str, Any]:
        avg = "" if self.cum_qty == 0 else num((self.cum_value / self.cum_qty).quantize(FEE_PLACES))
        if self.category == "linear" and self.cum_qty == 0 and not self.is_open:
            avg = "0"
        leaves = self.leaves
        level = self.price_text
        return {
            "orderId": self.order_id,
            "orderLinkId": self.link_id,
            "blockTradeId": "",
            "symbol": self.symbol,
            "price": level(self.price),
            "qty": self.qty_text(self.qty),
            "side": self.side,
            "isLeverage": "0" if self.category == "spot" else "",
            "positionIdx": 0,
            "orderStatus": self.status,
            "createType": self.create_type,
            "cancelType": self.cancel_type,
            "rejectReason": self.reject_reason,
            "avgPrice": avg,
            "leavesQty": self.qty_text(leaves),
            "leavesValue": num(leaves * self.price),
            "cumExecQty": self.qty_text(self.cum_qty),
            "cumExecValue": num(self.cum_value),
            "cumExecFee": num(self.cum_fee),
            "cumFeeDetail": {self.fee_coin: num(self.cum_fee)} if self.cum_fee else {},
            "timeInForce": self.time_in_force,
            "orderType": self.order_type,
            "stopOrderType": self.stop_order_type,
            "orderIv": "",
            "marketUnit": self.market_unit,
            "triggerPrice": level(self.trigger_price),
            "takeProfit": level(self.take_profit),
            "stopLoss": level(self.stop_loss),
            "tpslMode": self.tpsl_mode,
            "tpLimitPrice": "0",
            "slLimitPrice": "0",
            "tpTriggerBy": self.tp_trigger_by,
            "slTriggerBy": self.sl_trigger_by,
            "triggerDirection": 0,
            "triggerBy": "LastPrice" if self.trigger_price else "",
            "lastPriceOnCreated": level(self.last_on_created),
            "reduceOnly": self.reduce_only,
            "closeOnTrigger": self.close_on_trigger,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(self.created),
            "updatedTime": str(self.updated or self.created),
        }


class Ledger:
    """Orders by id and by (category, orderLinkId), executions newest last, wallet coins."""

    def __init__(self, seed: int, balance: Decimal, now_ms: Callable[[], int]) -> None:
        self.now_ms = now_ms
        self.orders: list[Order] = []
        self.by_id: dict[str, Order] = {}
        self.by_link: dict[tuple[str, str], Order] = {}
        self.executions: list[tuple[str, dict[str, Any]]] = []  # (category, row)
        self.coins: dict[str, Decimal] = {"USDT": balance}  # wallet balances
        self.locked: dict[str, Decimal] = {}  # held by open spot orders
        self.realised: dict[str, Decimal] = {}  # cumRealisedPnl per coin
        self._rng = random.Random(f"{seed}:ids")
        self._digits = 1_900_000_000_000_000_000 + self._rng.randrange(10**15)
        self._seq = 100_000 + self._rng.randrange(10**6)

    # ------------------------------------------------------------ ids
    def new_id(self, category: str) -> str:
        if category == "linear":
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self._digits += self._rng.randrange(1, 10**6)
        return str(self._digits)

    def seq(self) -> int:
        self._seq += 1
        return self._seq

    # ------------------------------------------------------------ orders
    def add(self, order: Order) -> None:
        self.orders.append(order)
        self.by_id[order.order_id] = order
        if order.link_id:
            self.by_link[(order.category, order.link_id)] = order

    def close(self, order: Order, status: str, reason: str = "EC_NoError") -> None:
        order.status = status
        order.updated = self.now_ms()
        if reason != "EC_NoError":
            order.reject_reason = reason
        if status == "Cancelled" and order.cancel_type == "UNKNOWN":
            order.cancel_type = "CancelByUser" if reason == "EC_NoError" else "CancelBySystem"

    def execute(
        self,
        order: Order,
        price: Decimal,
        qty: Decimal,
        fee: Decimal,
        fee_rate: Decimal,
        *,
        maker: bool = False,
        closed: Decimal = ZERO,
        fee_coin: str = "",
        mark: Decimal = ZERO,
    ) -> dict[str, Any]:
        """Book a fill of ``order``: its cumulative figures move and an execution row is kept."""
        fee = fee.quantize(FEE_PLACES)
        value = price * qty
        order.cum_qty += qty
        order.cum_value += value
        order.cum_fee += fee
        order.fee_coin = fee_coin or "USDT"
        now = self.now_ms()
        order.updated = now
        row: dict[str, Any] = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderLinkId": order.link_id,
            "side": order.side,
            "orderPrice": order.price_text(order.price),
            "orderQty": order.qty_text(order.qty),
            "leavesQty": order.qty_text(max(ZERO, order.qty - order.cum_qty)),
            "createType": order.create_type,
            "orderType": order.order_type,
            "stopOrderType": order.stop_order_type,
            "execFee": num(fee),
            "execId": self.new_id(order.category),
            "execPrice": order.price_text(price),
            "execQty": order.qty_text(qty),
            "execType": "Trade",
            "execValue": num(value),
            "execTime": str(now),
            "feeCurrency": fee_coin,
            "isMaker": maker,
            "feeRate": format(fee_rate, "f"),
            "tradeIv": "",
            "markIv": "",
            "markPrice": order.price_text(mark or price),
            "indexPrice": order.price_text(mark or price) if order.category == "linear" else "",
            "underlyingPrice": "",
            "blockTradeId": "",
            "closedSize": order.qty_text(closed) if order.category == "linear" else "",
            "seq": self.seq(),
            "extraFees": "",
        }
        self.executions.append((order.category, row))
        return row

    # ------------------------------------------------------------ wallet
    def credit(self, coin: str, amount: Decimal) -> None:
        self.coins[coin] = self.coins.get(coin, ZERO) + amount

    def available(self, coin: str) -> Decimal:
        return self.coins.get(coin, ZERO) - self.locked.get(coin, ZERO)

    def lock(self, coin: str, amount: Decimal) -> None:
        self.locked[coin] = self.locked.get(coin, ZERO) + amount

    def realise(self, coin: str, amount: Decimal) -> None:
        self.realised[coin] = self.realised.get(coin, ZERO) + amount
