"""Linear (USDT perpetual) trading in one-way mode: ``order/create`` checked as Bybit checks it,
market orders filled at the ask (buys) or bid (sells), limit orders resting until the quotes
reach them, netting into one position per symbol (an opposite order reduces, closes or reverses
it), ``Full``-mode TP/SL attached to the position and triggered by the last price,
``position/trading-stop`` and ``position/set-leverage``.

Fees: taker 0.055 %, maker 0.02 % of the fill value, in USDT. Margin: a position's initial
margin is its value over the leverage (10 by default); an order that would need more than the
available balance is refused with 110007.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from qkt.sim.bybit.common import (
    ZERO,
    Refused,
    bool_param,
    category_param,
    decimal_param,
    level_param,
    on_grid,
    params_error,
    to_step,
)
from qkt.sim.bybit.instruments import MAKER_LINEAR, TAKER_LINEAR, Spec
from qkt.sim.bybit.market import Market
from qkt.sim.bybit.positions import LEGS, Position, Positions
from qkt.sim.bybit.records import FEE_PLACES, Ledger, Order

TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly")
TRIGGER_BY = ("LastPrice", "MarkPrice", "IndexPrice")
PROTECTION = Decimal("0.05")  # a market order's internal limit price: 5 % through the quote
PRICE_BAND = Decimal("0.10")  # a limit price further than this through the quote: 110003
WORD = {"TakeProfit": "higher", "StopLoss": "lower"}


def position_idx(body: dict[str, Any]) -> None:
    value = body.get("positionIdx", 0)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise params_error("params error: positionIdx invalid")
    if int(value) != 0:
        raise params_error("position idx not match position mode")


def trigger_by(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value in (None, ""):
        return None
    if value not in TRIGGER_BY:
        raise params_error(f"params error: {name} invalid")
    return str(value)


def check_levels(spec: Spec, side: str, base: Decimal, levels: dict[str, Decimal | None]) -> None:
    """TP above and SL below the base price for a long (``side`` Buy), the other way for a
    short, on the tick grid; 10001 otherwise."""
    for kind, level in levels.items():
        if not level:
            continue
        if not on_grid(level, spec.tick):
            raise params_error(f"params error: {kind} {level} is not a multiple of tickSize")
        above = kind == "TakeProfit"
        if side == "Sell":
            above = not above
        if (level <= base) if above else (level >= base):
            word = WORD[kind] if side == "Buy" else WORD[LEGS[1 - LEGS.index(kind)]]
            raise params_error(
                f"{kind}:{level} set for {side} position should be {word} than "
                f"base_price:{spec.price_text(base)}??LastPrice"
            )


class LinearBook:
    def __init__(self, ledger: Ledger, market: Market) -> None:
        self.ledger = ledger
        self.market = market
        self.positions = Positions(ledger, market)

    # ------------------------------------------------------------ margin
    def order_margin(self) -> Decimal:
        return sum(
            (o.leaves * o.price / self.positions.get(o.symbol).leverage
             for o in self.ledger.orders
             if o.category == "linear" and o.is_open and not o.reduce_only
             and not o.stop_order_type),
            ZERO,
        )  # fmt: skip

    def available(self) -> Decimal:
        """USDT free for new margin: wallet (less spot locks) + unrealised PnL - margins."""
        p = self.positions
        return self.ledger.available("USDT") + p.total_upl() - p.total_im() - self.order_margin()

    # ------------------------------------------------------------ create
    def create(self, body: dict[str, Any], link_id: str) -> Order:
        spec = self.market.specs.get(str(body.get("symbol") or ""))
        if spec is None:
            raise params_error("params error: symbol invalid")
        side = body.get("side")
        if side not in ("Buy", "Sell"):
            raise params_error("params error: side invalid")
        kind = body.get("orderType")
        if kind not in ("Market", "Limit"):
            raise params_error("params error: orderType invalid")
        position_idx(body)
        reduce = bool_param(body.get("reduceOnly"), "reduceOnly")
        close_on_trigger = bool_param(body.get("closeOnTrigger"), "closeOnTrigger")
        if body.get("qty") in (None, ""):
            raise params_error("Missing some parameters that must be filled in, qty")
        qty = decimal_param(body["qty"], "qty")
        pos = self.positions.get(spec.symbol)
        quote = self.market.quotes[spec.symbol]
        market = kind == "Market"
        tif = "IOC" if market else str(body.get("timeInForce") or "GTC")
        if tif not in TIME_IN_FORCE:
            raise params_error("params error: timeInForce invalid")
        price = ZERO
        if not market:
            if body.get("price") in (None, ""):
                raise params_error("Missing some parameters that must be filled in, price")
            price = decimal_param(body["price"], "price")
            if price <= 0 or not on_grid(price, spec.tick):
                raise params_error(f"params error: price invalid (tickSize {spec.tick})")
            if (
                (price > quote.ask * (1 + PRICE_BAND))
                if side == "Buy"
                else (price < quote.bid * (1 - PRICE_BAND))
            ):
                raise Refused(110003, "Order price is out of permissible range")
        if qty == 0 and reduce and close_on_trigger:  # closes the whole position
            if pos.size == 0 or pos.side == side:
                raise Refused(110017, "Reduce-only rule not satisfied")
            qty = pos.size
        if qty <= 0:
            raise params_error("params error: qty invalid")
        if qty > 0 and not on_grid(qty, spec.qty_step):
            raise params_error(f"Qty invalid: not a multiple of qtyStep {spec.qty_step}")
        if 0 < qty < spec.min_qty:
            raise params_error("The number of contracts exceeds minimum limit allowed")
        if not reduce and qty > (spec.max_mkt_qty if market else spec.max_qty):
            raise params_error("The number of contracts exceeds maximum limit allowed")
        levels = {"TakeProfit": level_param(body, "takeProfit"),
                  "StopLoss": level_param(body, "stopLoss")}  # fmt: skip
        bys = {"TakeProfit": trigger_by(body, "tpTriggerBy"),
               "StopLoss": trigger_by(body, "slTriggerBy")}  # fmt: skip
        mode = body.get("tpslMode")
        if mode not in (None, "", "Full", "Partial"):
            raise params_error("params error: tpslMode invalid")
        bracket = any(levels.values())
        if bracket:
            if reduce:
                raise params_error("params error: a reduce-only order cannot set TP/SL")
            if mode == "Partial":
                raise params_error("tpslMode Partial is not simulated: use Full")
            check_levels(spec, side, quote.last if market else price, levels)
        if reduce:
            if pos.size == 0 or pos.side == side:
                raise Refused(110017, "Reduce-only rule not satisfied")
            qty = min(qty, pos.size)
        fill = (quote.ask if side == "Buy" else quote.bid) if market else price
        if not reduce and qty * fill < spec.min_notional:
            raise Refused(
                110094, f"Order does not meet minimum order value {spec.min_notional}USDT"
            )
        opening = qty if pos.side in ("", side) else max(ZERO, qty - pos.size)
        if opening and opening * fill / pos.leverage + qty * fill * TAKER_LINEAR > (
            self.available()
        ):
            raise Refused(110007, "ab not enough for new order")
        if market:
            bound = quote.ask * (1 + PROTECTION) if side == "Buy" else quote.bid * (1 - PROTECTION)
            price = to_step(bound, spec.tick)
        order = Order(
            "linear", spec, self.ledger.new_id("linear"), link_id, side, kind, qty, price, tif,
            self.ledger.now_ms(), quote.last, reduce_only=reduce,
            close_on_trigger=close_on_trigger, take_profit=levels["TakeProfit"] or ZERO,
            stop_loss=levels["StopLoss"] or ZERO, tpsl_mode="Full" if bracket else "",
            tp_trigger_by=(bys["TakeProfit"] or "LastPrice") if levels["TakeProfit"] else "",
            sl_trigger_by=(bys["StopLoss"] or "LastPrice") if levels["StopLoss"] else "",
        )  # fmt: skip
        order.meta["bys"] = bys
        self.ledger.add(order)
        crosses = market or (price >= quote.ask if side == "Buy" else price <= quote.bid)
        if crosses and tif == "PostOnly":
            self.ledger.close(order, "Cancelled", "EC_PostOnlyWillTakeLiquidity")
        elif crosses:
            self.fill(order, quote.ask if side == "Buy" else quote.bid, qty, maker=False)
        elif tif in ("IOC", "FOK"):
            self.ledger.close(order, "Cancelled", "EC_NoImmediateQtyToFill")
        return order

    # ------------------------------------------------------------ fills
    def fill(self, order: Order, price: Decimal, qty: Decimal, *, maker: bool) -> None:
        """Execute ``qty`` of ``order`` at ``price`` into the symbol's one-way position."""
        pos = self.positions.get(order.symbol)
        rate = MAKER_LINEAR if maker else TAKER_LINEAR
        fee = (price * qty * rate).quantize(FEE_PLACES)
        now = self.ledger.now_ms()
        closed, pnl = ZERO, ZERO
        if pos.size and pos.side != order.side:
            closed = min(qty, pos.size)
            pnl = (price - pos.avg) * closed * pos.direction
            pos.size -= closed
            if pos.size == 0:
                pos.side, pos.avg = "", ZERO
                self.positions.drop_legs(pos, keep=order)
        opening = qty - closed
        if opening:
            if pos.size == 0:
                pos.side, pos.avg, pos.cur_realised, pos.created = order.side, price, ZERO, now
            else:
                pos.avg = (pos.avg * pos.size + price * opening) / (pos.size + opening)
            pos.size += opening
        booked = (pnl - fee).quantize(FEE_PLACES)
        pos.cur_realised += booked
        pos.cum_realised += booked
        pos.updated, pos.seq = now, self.ledger.seq()
        self.ledger.credit("USDT", booked)
        self.ledger.realise("USDT", booked)
        self.market.trade(order.symbol, qty)
        last = self.market.quotes[order.symbol].last
        self.ledger.execute(order, price, qty, fee, rate, maker=maker, closed=closed, mark=last)
        if order.cum_qty >= order.qty:
            self.ledger.close(order, "Filled")
        if order.tpsl_mode == "Full" and pos.size and pos.side == order.side:
            bys = order.meta.get("bys", {})
            for kind, level in (("TakeProfit", order.take_profit), ("StopLoss", order.stop_loss)):
                if level:
                    self.positions.set_leg(pos, kind, level, bys.get(kind))

    def check(self) -> None:
        """After a quote moved: TP/SL legs the last price reached, then resting limit orders
        the quotes reached (filled at their price, as makers)."""
        for pos in list(self.positions.book.values()):
            kind = self.positions.crossed(pos) if pos.size else None
            if kind is not None:
                self._trigger(pos, kind)
        for order in [o for o in self.ledger.orders if o.category == "linear" and o.is_open]:
            if order.stop_order_type or order.order_type != "Limit":
                continue
            quote = self.market.quotes[order.symbol]
            buy = order.side == "Buy"
            if not (quote.ask <= order.price if buy else quote.bid >= order.price):
                continue
            qty = order.leaves
            if order.reduce_only:
                pos = self.positions.get(order.symbol)
                if pos.size == 0 or pos.side == order.side:
                    self.ledger.close(order, "Deactivated", "EC_ReduceOnlySetButNotReducing")
                    continue
                qty = min(qty, pos.size)
                order.qty = order.cum_qty + qty
            self.fill(order, order.price, qty, maker=True)

    def _trigger(self, pos: Position, kind: str) -> None:
        order = pos.leg(kind)
        assert order is not None
        quote = self.market.quotes[pos.spec.symbol]
        long = pos.side == "Buy"
        order.qty = pos.size
        bound = quote.bid * (1 - PROTECTION) if long else quote.ask * (1 + PROTECTION)
        order.price = to_step(bound, pos.spec.tick)
        order.status = "Triggered"
        self.fill(order, quote.bid if long else quote.ask, pos.size, maker=False)

    # ------------------------------------------------------------ position endpoints
    def trading_stop(self, body: dict[str, Any]) -> None:
        category_param(body.get("category"), ("linear",))
        spec = self.market.specs.get(str(body.get("symbol") or ""))
        if spec is None:
            raise params_error("params error: symbol invalid")
        mode = body.get("tpslMode")
        if mode in (None, ""):
            raise params_error("Missing some parameters that must be filled in, tpslMode")
        if mode == "Partial":
            raise params_error("tpslMode Partial is not simulated: use Full")
        if mode != "Full":
            raise params_error("params error: tpslMode invalid")
        if "positionIdx" not in body:
            raise params_error("Missing some parameters that must be filled in, positionIdx")
        position_idx(body)
        pos = self.positions.get(spec.symbol)
        if pos.size == 0:
            raise params_error("can not set tp/sl/ts for zero position")
        levels: dict[str, Decimal | None] = {}
        for kind, name in (("TakeProfit", "takeProfit"), ("StopLoss", "stopLoss")):
            if body.get(name) not in (None, ""):
                levels[kind] = level_param(body, name) or ZERO
        bys = {"TakeProfit": trigger_by(body, "tpTriggerBy"),
               "StopLoss": trigger_by(body, "slTriggerBy")}  # fmt: skip
        if not levels and not any(bys.values()):
            raise params_error("params error: takeProfit or stopLoss is required")
        check_levels(spec, pos.side, self.market.quotes[spec.symbol].last, levels)
        same = all(pos.level(k) == v for k, v in levels.items()) and all(
            by is None or pos.trigger_by(k) == by for k, by in bys.items()
        )
        if same:
            raise Refused(34040, "not modified")
        for kind in LEGS:
            self.positions.set_leg(pos, kind, levels.get(kind), bys[kind])
        pos.updated, pos.seq = self.ledger.now_ms(), self.ledger.seq()

    def set_leverage(self, body: dict[str, Any]) -> None:
        category_param(body.get("category"), ("linear",))
        spec = self.market.specs.get(str(body.get("symbol") or ""))
        if spec is None:
            raise params_error("params error: symbol invalid")
        buy = decimal_param(body.get("buyLeverage"), "buyLeverage")
        sell = decimal_param(body.get("sellLeverage"), "sellLeverage")
        if buy != sell:
            raise params_error("buy leverage must equal sell leverage in one-way mode")
        if not 1 <= buy <= spec.max_leverage or not on_grid(buy, Decimal("0.01")):
            raise params_error(f"leverage invalid: 1 to {spec.max_leverage}")
        pos = self.positions.get(spec.symbol)
        if pos.leverage == buy:
            raise Refused(110043, "Set leverage not modified")
        pos.leverage = buy
