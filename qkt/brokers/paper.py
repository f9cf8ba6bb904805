"""The paper broker: market orders fill at the current price, bracket legs wait for later prices.

Fills use the ask for buys and the bid for sells when the data has quotes, else the last price;
``slippage_bps`` moves the fill against the order and ``commission_bps`` is charged on the notional
(price x quantity x contract size). ``contract_sizes`` (per symbol, default 1) say what one unit of
quantity is worth per unit of price, as a venue's contract size does: with ``EURUSD: 100000`` a
quantity of 0.1 is 0.1 lot, and a move of 0.0010 is 10 of the account's money.
A position's stop-loss and take-profit are held here and close the whole position when a later bar
(its low/high) or tick (bid/ask) reaches them — the stop first when one bar reaches both, the
conservative reading. Filling one leg cancels the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from qkt.brokers.base import Clock, EventBus
from qkt.engine.events import Bar, OrderAccepted, OrderFilled, OrderRejected, OrderRequest, Tick
from qkt.engine.positions import PositionBook
from qkt.engine.prices import PriceTracker, to_decimal
from qkt.limits import to_places

BPS = Decimal(10000)
ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass
class _Legs:
    stop_loss: Decimal | None
    take_profit: Decimal | None
    client_id: str


class PaperBroker:
    capabilities = frozenset({"market", "bracket"})

    def __init__(
        self,
        name: str,
        bus: EventBus,
        clock: Clock,
        prices: PriceTracker,
        *,
        slippage_bps: Decimal = ZERO,
        commission_bps: Decimal = ZERO,
        starting_balance: Decimal = Decimal(10000),
        contract_sizes: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.name = name
        self.contract_sizes = dict(contract_sizes or {})
        self.starting_balance = starting_balance
        self.positions = PositionBook()
        self.commission_paid = ZERO
        self.bus = bus
        self.clock = clock
        self.prices = prices
        self.slippage = slippage_bps / BPS
        self.commission = commission_bps / BPS
        self._qty: dict[tuple[str, str], Decimal] = {}
        self._legs: dict[tuple[str, str], _Legs] = {}

    def submit(self, request: OrderRequest) -> OrderAccepted | OrderRejected:
        now = self.clock.now()
        price = self.prices.quote(request.label, request.symbol, request.side)
        if price is None:
            rejected = OrderRejected(request.client_id, self.name, "no price to fill at", now)
            self.bus.publish(rejected)
            return rejected
        key = (request.label.lower(), request.symbol)
        qty = request.qty
        if request.reduce_only:
            held = self._qty.get(key, ZERO)
            qty = min(qty, abs(held))
            if qty == 0:
                rejected = OrderRejected(request.client_id, self.name, "no position to reduce", now)
                self.bus.publish(rejected)
                return rejected
        accepted = OrderAccepted(request.client_id, self.name, now)
        self.bus.publish(accepted)
        direction = 1 if request.side == "buy" else -1
        fill_price = price * (1 + direction * self.slippage)
        self._fill(request.client_id, request.label, request.symbol, request.side, qty, fill_price)
        if request.stop_loss is not None or request.take_profit is not None:
            self._legs[key] = _Legs(request.stop_loss, request.take_profit, request.client_id)
        return accepted

    def cancel(self, client_id: str) -> bool:
        for key, legs in list(self._legs.items()):
            if legs.client_id == client_id:
                del self._legs[key]
                return True
        return False

    def close_position(self, label: str, symbol: str) -> None:
        key = (label.lower(), symbol)
        qty = self._qty.get(key, ZERO)
        price = self.prices.quote(label, symbol, "sell" if qty > 0 else "buy")
        if qty != 0 and price is not None:
            self._fill(
                f"{self.name}-close", label, symbol, "sell" if qty > 0 else "buy", abs(qty), price
            )

    # ------------------------------------------------------------ account
    def balance(self) -> Decimal:
        """Starting balance plus realized PnL, minus commissions."""
        return self.starting_balance + self.positions.realized() - self.commission_paid

    def equity(self) -> Decimal:
        """Balance plus the unrealized PnL of open positions at the last prices."""
        open_pnl = sum(
            (p.unrealized(self.prices.last(p.label, p.symbol)) for p in self.positions.all()), ZERO
        )
        return self.balance() + open_pnl

    # ------------------------------------------------------------ market data
    def on_bar(self, label: str, bar: Bar) -> None:
        """Check held legs against a bar of ``label``'s symbol (before the bar drives any rule)."""
        key = (label.lower(), bar.symbol)
        if key in self._legs:
            self._check(label, bar.symbol, to_decimal(bar.low), to_decimal(bar.high), bar.open)

    def on_tick(self, label: str, tick: Tick) -> None:
        key = (label.lower(), tick.symbol)
        if key in self._legs:
            self._check(label, tick.symbol, to_decimal(tick.bid), to_decimal(tick.ask), None)

    def _check(
        self, label: str, symbol: str, low: Decimal, high: Decimal, opened: float | None
    ) -> None:
        key = (label.lower(), symbol)
        legs = self._legs[key]
        qty = self._qty.get(key, ZERO)
        if qty == 0:
            del self._legs[key]
            return
        long = qty > 0
        # A long's stop triggers on prices at or below it (the bid for ticks); a short's above.
        stop_hit = legs.stop_loss is not None and (
            low <= legs.stop_loss if long else high >= legs.stop_loss
        )
        take_hit = legs.take_profit is not None and (
            high >= legs.take_profit if long else low <= legs.take_profit
        )
        if not (stop_hit or take_hit):
            return
        reason = "stop_loss" if stop_hit else "take_profit"
        level = legs.stop_loss if stop_hit else legs.take_profit
        assert level is not None
        price = level
        if opened is not None:  # a bar that opened beyond the level fills at its open (a gap)
            open_price = to_decimal(opened)
            gapped = (open_price < level) if (long == stop_hit) else (open_price > level)
            if gapped:
                price = open_price
        del self._legs[key]
        side = "sell" if long else "buy"
        self._fill(legs.client_id, label, symbol, side, abs(qty), price, reason)

    # ------------------------------------------------------------ fills
    def _fill(
        self,
        client_id: str,
        label: str,
        symbol: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        reason: str = "market",
    ) -> None:
        key = (label.lower(), symbol)
        held = self._qty.get(key, ZERO) + (qty if side == "buy" else -qty)
        self._qty[key] = held
        if held == 0:
            self._legs.pop(key, None)
        size = self.contract_sizes.get(symbol, ONE)
        commission = to_places(price * qty * size * self.commission, Decimal("0.00000001"))
        self.positions.get(label, symbol).apply(side, qty, price, size)
        self.commission_paid += commission
        self.bus.publish(
            OrderFilled(
                client_id,
                self.name,
                label,
                symbol,
                "buy" if side == "buy" else "sell",
                qty,
                price,
                self.clock.now(),
                reason,  # type: ignore[arg-type]
                commission,
                size,
            )
        )
