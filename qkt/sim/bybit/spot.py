"""Spot trading on the unified wallet's coin balances (spot has no positions).

Market orders: a Buy is sized in the quote coin (USDT) unless ``marketUnit: baseCoin``, a Sell
in the base coin unless ``marketUnit: quoteCoin``; filled at the ask (buys) or bid (sells).
Checks: a base quantity on the ``basePrecision`` grid (170137), a quote amount on the
``quotePrecision`` grid (170148), nothing below one grid step (170136), the order value at least
``minOrderAmt`` (170140), at most ``maxMarketOrderQty``/``maxLimitOrderQty`` (170135), enough
balance (170131). A taker Buy pays its fee in the base coin (``execQty - execFee`` arrives), a
Sell in USDT; 0.1 % either way. Limit orders rest until the quotes reach them, their cost locked.
TP/SL on spot orders are not simulated (10001).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from qkt.sim.bybit.common import (
    ZERO,
    Refused,
    decimal_param,
    on_grid,
    params_error,
    round_down,
)
from qkt.sim.bybit.instruments import MAKER_SPOT, TAKER_SPOT
from qkt.sim.bybit.market import Market
from qkt.sim.bybit.records import FEE_PLACES, Ledger, Order

TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly")
TOO_SMALL = Refused(170136, "Order quantity exceeded lower limit.")


class SpotBook:
    def __init__(self, ledger: Ledger, market: Market, free_usdt: Callable[[], Decimal]) -> None:
        self.ledger = ledger
        self.market = market
        self.free_usdt = free_usdt  # USDT not tied up as margin or by open orders

    def create(self, body: dict[str, Any], link_id: str) -> Order:
        spec = self.market.specs.get(str(body.get("symbol") or ""))
        if spec is None:
            raise Refused(170121, "Invalid symbol.")
        side = body.get("side")
        if side not in ("Buy", "Sell"):
            raise Refused(170117, "Invalid side.")
        kind = body.get("orderType")
        if kind not in ("Market", "Limit"):
            raise Refused(170116, "Invalid orderType.")
        if body.get("takeProfit") not in (None, "", "0") or body.get("stopLoss") not in (
            None, "", "0",
        ):  # fmt: skip
            raise params_error("TP/SL on spot orders is not simulated")
        if body.get("qty") in (None, ""):
            raise params_error("Missing some parameters that must be filled in, qty")
        qty = decimal_param(body["qty"], "qty")
        if qty <= 0:
            raise TOO_SMALL
        quote = self.market.quotes[spec.symbol]
        buy = side == "Buy"
        unit = ""
        if kind == "Market":
            unit = str(body.get("marketUnit") or ("quoteCoin" if buy else "baseCoin"))
            if unit not in ("baseCoin", "quoteCoin"):
                raise params_error("params error: marketUnit invalid")
            price, tif, at = ZERO, "IOC", quote.ask if buy else quote.bid
            if unit == "quoteCoin":
                if not on_grid(qty, spec.quote_precision):
                    raise Refused(170148, "Market Order amount decimal too long.")
                amount, base_qty = qty, round_down(qty / at, spec.base_precision)
            else:
                amount, base_qty = qty * at, qty
            limit = spec.max_market_qty
        else:
            if body.get("price") in (None, ""):
                raise params_error("Missing some parameters that must be filled in, price")
            price = decimal_param(body["price"], "price")
            if price <= 0:
                raise params_error("params error: price invalid")
            if not on_grid(price, spec.spot_tick):
                raise Refused(170134, "Order price has too many decimals.")
            tif = str(body.get("timeInForce") or "GTC")
            if tif not in TIME_IN_FORCE:
                raise params_error("params error: timeInForce invalid")
            amount, base_qty, at, limit = qty * price, qty, price, spec.max_limit_qty
        if unit != "quoteCoin" and not on_grid(base_qty, spec.base_precision):
            raise Refused(170137, "Order quantity has too many decimals.")
        if base_qty <= 0:
            raise TOO_SMALL
        if base_qty > limit:
            raise Refused(170135, "Order quantity exceeded upper limit.")
        if amount < spec.min_order_amt:
            raise Refused(170140, "Order value exceeded lower limit.")
        enough = amount <= self.free_usdt() if buy else base_qty <= self.ledger.available(spec.base)
        if not enough:
            raise Refused(170131, "Insufficient balance.")
        order = Order(
            "spot", spec, self.ledger.new_id("spot"), link_id, side, kind, qty, price, tif,
            self.ledger.now_ms(), quote.last, market_unit=unit,
        )  # fmt: skip
        self.ledger.add(order)
        crosses = kind == "Market" or (price >= quote.ask if buy else price <= quote.bid)
        if crosses and tif == "PostOnly":
            self.ledger.close(order, "Cancelled", "EC_PostOnlyWillTakeLiquidity")
        elif crosses:
            self.fill(order, quote.ask if buy else quote.bid, base_qty, maker=False)
        elif tif in ("IOC", "FOK"):
            self.ledger.close(order, "Cancelled", "EC_NoImmediateQtyToFill")
        else:  # rests: its cost is locked
            self.ledger.lock("USDT" if buy else spec.base, amount if buy else base_qty)
        return order

    def fill(self, order: Order, price: Decimal, qty: Decimal, *, maker: bool) -> None:
        base = order.spec.base
        rate = MAKER_SPOT if maker else TAKER_SPOT
        value = price * qty
        resting = order.order_type == "Limit" and maker
        if order.side == "Buy":
            fee, coin = (qty * rate).quantize(FEE_PLACES), base
            if resting:
                self.ledger.lock("USDT", -qty * order.price)
            self.ledger.credit("USDT", -value)
            self.ledger.credit(base, qty - fee)
        else:
            fee, coin = (value * rate).quantize(FEE_PLACES), "USDT"
            if resting:
                self.ledger.lock(base, -qty)
            self.ledger.credit(base, -qty)
            self.ledger.credit("USDT", value - fee)
        self.market.trade(order.symbol, qty)
        last = self.market.quotes[order.symbol].last
        self.ledger.execute(order, price, qty, fee, rate, maker=maker, fee_coin=coin, mark=last)
        if order.market_unit == "quoteCoin" or order.cum_qty >= order.qty:
            self.ledger.close(order, "Filled")

    def release(self, order: Order) -> None:
        """A resting order is cancelled: what it locked is free again."""
        if order.side == "Buy":
            self.ledger.lock("USDT", -order.leaves * order.price)
        else:
            self.ledger.lock(order.spec.base, -order.leaves)

    def check(self) -> None:
        for order in [o for o in self.ledger.orders if o.category == "spot" and o.is_open]:
            quote = self.market.quotes[order.symbol]
            buy = order.side == "Buy"
            if quote.ask <= order.price if buy else quote.bid >= order.price:
                self.fill(order, order.price, order.leaves, maker=True)
