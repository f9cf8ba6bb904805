"""The simulated Bybit account and market behind the HTTP layer: one unified (UTA) account with a
USDT wallet, linear one-way positions and spot coin balances, orders and executions, and the
prices they trade on. Plain Python guarded by one lock; ``app.py`` authenticates, applies the
fault switches and calls here; ``reads.py`` renders the read endpoints.

``create`` applies the rules shared by both categories (``orderLinkId`` of at most 36 characters
of ``[A-Za-z0-9_-]``, else 10001; an ``orderLinkId`` already used in the category: 110072 linear,
170141 spot) before :mod:`linear` or :mod:`spot` checks the rest. Every quote move (``step``,
``set_quote``) triggers TP/SL and resting limit orders.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from qkt.sim.bybit.common import LINK_ID, MAX_LINK_ID, Refused, category_param, params_error
from qkt.sim.bybit.instruments import Spec, spec_for
from qkt.sim.bybit.linear import LinearBook
from qkt.sim.bybit.market import Market, ScriptRow
from qkt.sim.bybit.records import Ledger, Order
from qkt.sim.bybit.spot import SpotBook

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")
DUPLICATE = {"linear": (110072, "OrderLinkedID is duplicate"),
             "spot": (170141, "Duplicate clientOrderId")}  # fmt: skip
MISSING = {"linear": (110001, "Order does not exist."), "spot": (170213, "Order does not exist.")}


@dataclass
class BybitState:
    seed: int = 1
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    balance: Decimal = Decimal(10000)  # USDT in the wallet at the start
    history_days: int = 3  # seeded 1-minute bars before the start
    read_only: bool = False  # the key may read only: creates, cancels and changes get 10005
    rate_limits: bool = True  # refuse with 10006 past Bybit's per-endpoint limits
    clock_offset_ms: int = 0  # the venue's clock runs this far ahead of this machine's
    time_ns: Callable[[], int] = time.time_ns
    received: list[dict[str, Any]] = field(default_factory=list)  # every order/create that arrived
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.specs: dict[str, Spec] = {s: spec_for(s) for s in self.symbols}
        self.market = Market(self.specs, self.seed, self.history_days, self.now_ms)
        self.ledger = Ledger(self.seed, Decimal(self.balance), self.now_ms)
        self.linear = LinearBook(self.ledger, self.market)
        self.spot = SpotBook(self.ledger, self.market, self.linear.available)

    # ------------------------------------------------------------ clock
    def now_ns(self) -> int:
        return self.time_ns() + self.clock_offset_ms * 1_000_000

    def now_ms(self) -> int:
        return self.now_ns() // 1_000_000

    # ------------------------------------------------------------ prices
    def step(self) -> None:
        with self.lock:
            self.market.step()
            self.check()

    def set_quote(
        self, symbol: str, bid: Decimal, ask: Decimal, last: Decimal | None = None
    ) -> None:
        with self.lock:
            if symbol not in self.specs:
                raise KeyError(symbol)
            self.market.set(symbol, bid, ask, last)
            self.check()

    def follow(self, rows: list[ScriptRow]) -> None:
        """Quotes follow ``rows`` (symbol or None for every symbol, bid, ask), one per step."""
        with self.lock:
            self.market.follow(rows)

    def check(self) -> None:
        self.linear.check()
        self.spot.check()

    # ------------------------------------------------------------ orders
    def create(self, body: dict[str, Any]) -> Order:
        """Check and place one order; raises :class:`Refused` when Bybit would refuse it."""
        with self.lock:
            category = category_param(body.get("category"))
            self._writable()
            link = body.get("orderLinkId")
            if link is None or link == "":
                link = ""
            elif not isinstance(link, str) or not LINK_ID.fullmatch(link):
                raise params_error(
                    f"params error: orderLinkId must be 1-{MAX_LINK_ID} characters of "
                    "A-Z, a-z, 0-9, '_' and '-'"
                )
            if link and (category, link) in self.ledger.by_link:
                raise Refused(*DUPLICATE[category])
            book = self.linear if category == "linear" else self.spot
            return book.create(body, link)

    def cancel(self, body: dict[str, Any]) -> Order:
        with self.lock:
            category = category_param(body.get("category"))
            self._writable()
            order_id, link = body.get("orderId") or "", body.get("orderLinkId") or ""
            if not order_id and not link:
                raise params_error("params error: OrderId or orderLinkId is required")
            order = (
                self.ledger.by_id.get(str(order_id))
                if order_id
                else self.ledger.by_link.get((category, str(link)))
            )
            symbol = body.get("symbol")
            if (
                order is None
                or order.category != category
                or (symbol and order.symbol != symbol)
                or not order.is_open
                or order.stop_order_type
            ):
                raise Refused(*MISSING[category])
            if category == "spot":
                self.spot.release(order)
            self.ledger.close(order, "Cancelled")
            return order

    def trading_stop(self, body: dict[str, Any]) -> None:
        with self.lock:
            self._writable()
            self.linear.trading_stop(body)
            self.check()

    def set_leverage(self, body: dict[str, Any]) -> None:
        with self.lock:
            self._writable()
            self.linear.set_leverage(body)

    def _writable(self) -> None:
        if self.read_only:
            raise Refused(10005, "Permission denied, please check your API key permissions.")
