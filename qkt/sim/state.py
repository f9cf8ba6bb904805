"""The simulated account behind the gateway: quotes, a netting (or hedging) book of positions,
deals, SL/TP.

Plain Python guarded by one lock; the HTTP layer (``app.py``) only translates requests to calls
here. Profit is ``(close - open) * volume * contract_size`` in the account currency (no conversion
for non-USD quotes: a simplification of the simulator).
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

RETCODE_DONE = 10009
RETCODE_REQUOTE = 10004
RETCODE_INVALID_VOLUME = 10014
RETCODE_INVALID_STOPS = 10016
REASON_CLIENT, REASON_SL, REASON_TP = 0, 4, 5
COMMENT_KEPT = 16  # characters of an order comment a terminal keeps


@dataclass
class Instrument:
    name: str
    price: Decimal
    digits: int
    contract_size: Decimal
    spread_points: int = 10
    volume_min: Decimal = Decimal("0.01")
    volume_max: Decimal = Decimal(200)
    volume_step: Decimal = Decimal("0.01")

    @property
    def point(self) -> Decimal:
        return Decimal(1).scaleb(-self.digits)


DEFAULT_INSTRUMENTS = {
    "EURUSDm": ("1.08500", 5, 100000),
    "GBPUSDm": ("1.26500", 5, 100000),
    "XAUUSDm": ("2915.00", 2, 100),
    "USTECm": ("18000.0", 1, 1),
    "BTCUSDm": ("86500.00", 2, 1),
}


@dataclass
class SimPosition:
    ticket: int
    symbol: str
    type: int  # 0 buy, 1 sell
    volume: Decimal
    price_open: Decimal
    magic: int
    comment: str
    time_msc: int
    sl: Decimal | None = None
    tp: Decimal | None = None


@dataclass
class SimState:
    seed: int = 1
    balance: Decimal = Decimal(10000)
    login: int = 12345678
    server: str = "QKT-Sim"
    instruments: dict[str, Instrument] = field(default_factory=dict)
    quotes: dict[str, tuple[Decimal, Decimal, int]] = field(default_factory=dict)  # bid, ask, msc
    positions: dict[int, SimPosition] = field(default_factory=dict)
    deals: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    symbols: tuple[str, ...] = tuple(DEFAULT_INSTRUMENTS)
    timeout_s: float = 30.0  # how long the timeout_next fault hangs a request
    hedging: bool = False  # every market order opens a position of its own (margin_mode 2)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._ticket = 1000
        self.add_symbols(list(self.symbols))

    # ------------------------------------------------------------ instruments and quotes
    def add_symbols(self, names: list[str]) -> None:
        for name in names:
            price, digits, size = DEFAULT_INSTRUMENTS.get(name, ("100.00", 2, 1))
            inst = Instrument(name, Decimal(price), digits, Decimal(size))
            self.instruments[name] = inst
            self._set_mid(inst, inst.price)

    def _round(self, inst: Instrument, value: Decimal) -> Decimal:
        return value.quantize(inst.point, rounding=ROUND_HALF_UP)

    def _set_mid(self, inst: Instrument, mid: Decimal) -> None:
        half = inst.point * inst.spread_points / 2
        self.quotes[inst.name] = (
            self._round(inst, mid - half),
            self._round(inst, mid + half),
            int(time.time() * 1000),
        )

    def set_quote(self, symbol: str, bid: Decimal, ask: Decimal) -> None:
        with self.lock:
            self.quotes[symbol] = (bid, ask, int(time.time() * 1000))
            self.check_stops()

    def follow(self, rows: list[tuple[str | None, Decimal, Decimal]]) -> None:
        """Replace the random walk with scripted quotes: (broker symbol or None for all, bid, ask)."""
        with self.lock:
            self._script = list(reversed(rows))

    def step(self) -> None:
        """Advance quotes one step — the next scripted row, else a seeded random walk — then
        check SL/TP."""
        with self.lock:
            script = getattr(self, "_script", None)
            if script is not None:
                if script:
                    symbol, bid, ask = script.pop()
                    now = int(time.time() * 1000)
                    for name in [symbol] if symbol else list(self.instruments):
                        if name in self.instruments:
                            self.quotes[name] = (bid, ask, now)
                self.check_stops()
                return
            for inst in self.instruments.values():
                bid, ask, _ = self.quotes[inst.name]
                mid = (bid + ask) / 2
                moved = mid * Decimal(repr(math.exp(self._rng.gauss(0, 0.0002))))
                self._set_mid(inst, moved)
            self.check_stops()

    # ------------------------------------------------------------ account
    def floating(self) -> Decimal:
        total = Decimal(0)
        for pos in self.positions.values():
            bid, ask, _ = self.quotes[pos.symbol]
            close = bid if pos.type == 0 else ask
            total += self._profit(pos, close, pos.volume)
        return total

    def _profit(self, pos: SimPosition, close: Decimal, volume: Decimal) -> Decimal:
        inst = self.instruments[pos.symbol]
        direction = 1 if pos.type == 0 else -1
        return ((close - pos.price_open) * volume * inst.contract_size * direction).quantize(
            Decimal("0.01")
        )

    # ------------------------------------------------------------ trading
    def _next_ticket(self) -> int:
        self._ticket += 1
        return self._ticket

    def _deal(
        self,
        pos: SimPosition,
        type_: int,
        entry: int,
        volume: Decimal,
        price: Decimal,
        profit: Decimal,
        reason: int,
        order: int,
        comment: str,
    ) -> int:
        """Book a deal; like MT5, its comment is that of the order that made it."""
        ticket = self._next_ticket()
        now = int(time.time() * 1000)
        self.deals.append(
            {
                "ticket": ticket,
                "order": order,
                "position_id": pos.ticket,
                "symbol": pos.symbol,
                "type": type_,
                "entry": entry,
                "volume": str(volume),
                "price": str(price),
                "profit": str(profit),
                "magic": pos.magic,
                "comment": comment,
                "reason": reason,
                "time": now // 1000,
                "time_msc": now,
            }
        )
        return ticket

    def market_order(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Fill a market order (netting: into the symbol's position; hedging: a position of its
        own); returns (HTTP status, result)."""
        with self.lock:
            symbol = str(body.get("symbol", ""))
            inst = self.instruments.get(symbol)
            if inst is None:
                return 400, {"retcode": 10013, "comment": f"unknown symbol {symbol}"}
            side = str(body.get("type", "")).upper()
            if side not in ("BUY", "SELL"):
                return 400, {"retcode": 10013, "comment": "only market BUY/SELL"}
            volume = Decimal(str(body.get("volume", 0)))
            if (
                volume < inst.volume_min
                or volume > inst.volume_max
                or (volume / inst.volume_step) % 1 != 0
            ):
                return 400, {"retcode": RETCODE_INVALID_VOLUME, "comment": "Invalid volume"}
            bid, ask, _ = self.quotes[symbol]
            price = ask if side == "BUY" else bid
            sl = Decimal(str(body["sl"])) if body.get("sl") not in (None, 0, "0") else None
            tp = Decimal(str(body["tp"])) if body.get("tp") not in (None, 0, "0") else None
            wrong = (sl is not None and (sl >= price if side == "BUY" else sl <= price)) or (
                tp is not None and (tp <= price if side == "BUY" else tp >= price)
            )
            # Like a terminal, stops must be prices of the symbol: at most `digits` decimals.
            wrong = wrong or any(
                level is not None and level != level.quantize(inst.point) for level in (sl, tp)
            )
            if wrong:
                return 400, {"retcode": RETCODE_INVALID_STOPS, "comment": "Invalid stops"}
            magic = int(body.get("magic") or 0)
            comment = str(body.get("comment") or "")[:COMMENT_KEPT]
            order = self._next_ticket()
            type_ = 0 if side == "BUY" else 1
            existing = (
                None
                if self.hedging
                else next(
                    (p for p in self.positions.values() if p.symbol == symbol and p.magic == magic),
                    None,
                )
            )

            def open_position(size: Decimal) -> SimPosition:
                pos = SimPosition(order, symbol, type_, size, price, magic, comment,
                                  int(time.time() * 1000), sl, tp)  # fmt: skip
                self.positions[order] = pos
                return pos

            if existing is None:
                pos = open_position(volume)
                deal = self._deal(
                    pos, type_, 0, volume, price, Decimal(0), REASON_CLIENT, order, comment
                )
            elif existing.type == type_:
                total = existing.volume + volume
                existing.price_open = self._round(
                    inst, (existing.price_open * existing.volume + price * volume) / total
                )
                existing.volume = total
                existing.sl, existing.tp = sl or existing.sl, tp or existing.tp
                deal = self._deal(
                    existing, type_, 0, volume, price, Decimal(0), REASON_CLIENT, order, comment
                )
            else:
                closing = min(volume, existing.volume)
                profit = self._profit(existing, price, closing)
                self.balance += profit
                deal = self._deal(
                    existing, type_, 1, closing, price, profit, REASON_CLIENT, order, comment
                )
                existing.volume -= closing
                if existing.volume == 0:
                    del self.positions[existing.ticket]
                rest = volume - closing
                if rest > 0:
                    open_position(rest)  # reversed through flat
            return 200, {
                "retcode": RETCODE_DONE,
                "order": order,
                "deal": deal,
                "price": str(price),
                "volume": str(volume),
                "comment": "Request executed",
            }

    def close(
        self,
        ticket: int,
        volume: Decimal | None = None,
        reason: int = REASON_CLIENT,
        price: Decimal | None = None,
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            pos = self.positions.get(ticket)
            if pos is None:
                return 400, {"retcode": 10013, "comment": f"no position {ticket}"}
            bid, ask, _ = self.quotes[pos.symbol]
            fill = price if price is not None else (bid if pos.type == 0 else ask)
            amount = pos.volume if volume is None else min(volume, pos.volume)
            profit = self._profit(pos, fill, amount)
            self.balance += profit
            note = {REASON_SL: f"[sl {fill}]", REASON_TP: f"[tp {fill}]"}.get(reason, "")
            deal = self._deal(pos, 1 - pos.type, 1, amount, fill, profit, reason, ticket, note)
            pos.volume -= amount
            if pos.volume == 0:
                del self.positions[ticket]
            return 200, {
                "retcode": RETCODE_DONE,
                "order": ticket,
                "deal": deal,
                "price": str(fill),
                "volume": str(amount),
                "comment": "Request executed",
            }

    def modify(
        self, ticket: int, sl: Decimal | None, tp: Decimal | None
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            pos = self.positions.get(ticket)
            if pos is None:
                return 400, {"retcode": 10013, "comment": f"no position {ticket}"}
            pos.sl, pos.tp = sl, tp  # an omitted level is cleared, as real gateways do
            self.check_stops()
            return 200, {"retcode": RETCODE_DONE, "order": ticket, "comment": "Request executed"}

    def check_stops(self) -> None:
        """A buy's SL/TP trigger on the bid, a sell's on the ask; fills at the level."""
        with self.lock:
            for pos in list(self.positions.values()):
                bid, ask, _ = self.quotes[pos.symbol]
                price = bid if pos.type == 0 else ask
                if pos.sl is not None and (price <= pos.sl if pos.type == 0 else price >= pos.sl):
                    self.close(pos.ticket, reason=REASON_SL, price=pos.sl)
                elif pos.tp is not None and (price >= pos.tp if pos.type == 0 else price <= pos.tp):
                    self.close(pos.ticket, reason=REASON_TP, price=pos.tp)
