"""A Bybit order from its answer to its fill: creates are acknowledged, fills are read back.

``POST /v5/order/create`` answers before the order is placed (placement is asynchronous), so an
accepted order is looked up by its ``orderLinkId`` until it is final, and its fill is the sum of its
executions — exact price, quantity and fee. An unknown outcome (a timeout, a 5xx, 10000/10016…) or
a duplicate ``orderLinkId`` (the original exists) is resolved the same way: found, it is adopted;
absent from several clean reads once Bybit would refuse any copy of the request (its timestamp plus
the recv window, plus the venue's lag), it was not placed. It is never sent again.

A spot buy pays its fee in the coin it buys (``feeCurrency``): the account receives ``execQty -
execFee``. Its fill is what arrived, down to the ``basePrecision`` grid (what can be sold again),
and its commission the rest at the execution's price, in the quote coin as every fee.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from qkt.brokers.bybit.client import BybitClient
from qkt.brokers.bybit.models import Execution, Order
from qkt.engine.events import OrderRequest

FINAL = frozenset({"Filled", "Cancelled", "Rejected", "PartiallyFilledCanceled", "Deactivated"})
ABSENCE_CHECKS = 3
Reason = Literal["market", "stop_loss", "take_profit"]


@dataclass
class Pending:
    """An order whose fill (or whether it was placed at all) is not known yet."""

    request: OrderRequest
    link: str
    symbol: str
    accepted: bool  # the venue acknowledged it: it exists, its fill is to be read
    settle_after: float  # monotonic time before which absence proves nothing
    reason: Reason = "market"
    seeded: bool = False  # journaled by an earlier run


@dataclass
class Found:
    status: str
    final: bool
    qty: Decimal
    price: Decimal
    fee: Decimal
    executions: list[Execution]
    why: str = ""


def settle_after(recv_window_ms: int, lag_s: float, age_s: float = 0.0) -> float:
    """Until when an unanswered create may still be placed: Bybit refuses any copy of it once
    its timestamp plus the recv window has passed; the venue's lag is added."""
    return time.monotonic() + max(0.0, recv_window_ms / 1000 + lag_s - age_s)


def received(execution: Execution, symbol: str) -> tuple[Decimal, Decimal]:
    """(quantity the account got, fee in the quote coin) of one execution of ``symbol``."""
    fee = execution.exec_fee or Decimal(0)
    coin = execution.fee_currency
    if coin and not symbol.endswith(coin):  # paid in the base coin: taken off what arrived
        return execution.exec_qty - fee, fee * execution.exec_price
    return execution.exec_qty, fee


async def look_up(
    client: BybitClient, category: str, pending: Pending, step: Decimal | None = None
) -> Found | None:
    """The order at the venue by its ``orderLinkId`` (open or recently closed, then history,
    then its executions), or None when none of them shows it. ``step``: the spot quantity grid
    a fee paid in the base coin leaves the fill off."""
    link, symbol = pending.link, pending.symbol
    orders: list[Order] = await client.open_orders(category, symbol, link)
    if not orders:
        orders = await client.order_history(category, symbol, link)
    executions = [
        e
        for e in await client.executions(category, symbol, order_link_id=link)
        if e.exec_type == "Trade" and e.order_link_id == link
    ]
    order = next((o for o in orders if o.order_link_id == link), None)
    if order is None and not executions:
        return None
    executed = sum((e.exec_qty for e in executions), Decimal(0))
    value = sum((e.exec_qty * e.exec_price for e in executions), Decimal(0))
    price = value / executed if executed else Decimal(0)
    qty = fee = Decimal(0)
    for execution in executions:
        got, paid = received(execution, symbol)
        qty, fee = qty + got, fee + paid
    if step and qty != executed:  # less than one step of the coin cannot be sold: a cost
        sellable = (qty / step).to_integral_value(ROUND_DOWN) * step
        qty, fee = sellable, fee + (qty - sellable) * price
    status = order.order_status if order is not None else "Filled"
    final = status in FINAL or executed >= pending.request.qty
    why = order.reject_reason if order is not None else ""
    return Found(status, final, qty, price, fee, executions, why)
