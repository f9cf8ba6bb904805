"""The simulated terminal and account behind the gateway: instruments, quotes, bar history, a
netting (or hedging) book of positions following MQL5's rules, pending orders, deals, SL/TP.

Plain Python guarded by one lock; the HTTP layer (``app.py``) validates requests, keeps the
idempotency store and the fault switches, and calls here. What a terminal would do is done here:

* ``order_check`` before every send: unknown symbol (10013), trading disabled (10017) or close-only
  (10044), invalid volume (10014), invalid price (10015), invalid stops (10016: SL/TP on the wrong
  side of the fill price, nearer than ``trade_stops_level`` points, or not a price of the symbol).
* Netting (the default, ``margin_mode`` 0): ONE position per symbol for the whole account, whatever
  the magic. A new position takes the order's ticket as its ticket and identifier; a same-side
  order adds volume (weighted ``price_open``; ticket, identifier, magic and comment unchanged; the
  order's SL/TP replace the position's where the order sets them); an opposite order reduces or
  closes it (deal entry OUT); a larger opposite order reverses it with ONE deal of entry INOUT: the
  position keeps its identifier but takes the reversing order's ticket, type, magic, comment and
  levels, the rest of the volume and the fill price.
* Hedging (``hedging=True``, ``margin_mode`` 2): every market order opens a position of its own.
* Deals carry the position's identifier as ``position_id`` and, like MT5, the order's comment.
  Comments are cut to 25 characters by the gateway and to ``comment_kept`` by the terminal.
* Times of positions, deals and ticks are epochs of the broker's wall clock in
  ``server_time_zone``; bars are in UTC (the gateway converts them).
* Bars: seeded M1 history of the last ``bar_history_days`` days ending at each symbol's start
  price, extended by the quotes as they move; bigger timeframes aggregate M1 on the broker's clock.

Profit is ``(close - open) * volume * contract_size`` in the account currency (no conversion for
non-USD quotes: a simplification of the simulator). Fills happen at bid/ask without slippage.
"""

from __future__ import annotations

import math
import random
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from qkt.brokers.mt5.clock import to_utc, to_wall_ms
from qkt.config.timezones import server_zone

RETCODE_PLACED = 10008
RETCODE_DONE = 10009
RETCODE_REQUOTE = 10004
RETCODE_INVALID = 10013
RETCODE_INVALID_VOLUME = 10014
RETCODE_INVALID_PRICE = 10015
RETCODE_INVALID_STOPS = 10016
RETCODE_TRADE_DISABLED = 10017
RETCODE_CLOSE_ONLY = 10044
REASON_CLIENT, REASON_SL, REASON_TP = 0, 4, 5
ENTRY_IN, ENTRY_OUT, ENTRY_INOUT = 0, 1, 2
COMMENT_KEPT = 16  # characters of an order comment a terminal (Exness) keeps
GATEWAY_COMMENT = 25  # characters of a comment the gateway passes on
MAX_MAGIC = 2**32 - 1
TRADE_MODE_DISABLED, TRADE_MODE_CLOSE_ONLY, TRADE_MODE_FULL = 0, 3, 4

ORDER_TYPES = {
    "BUY": 0,
    "SELL": 1,
    "BUY_LIMIT": 2,
    "SELL_LIMIT": 3,
    "BUY_STOP": 4,
    "SELL_STOP": 5,
}
TYPE_NAMES = {number: name for name, number in ORDER_TYPES.items()}
ORDER_FIELDS = frozenset(
    {
        "symbol",
        "volume",
        "type",
        "price",
        "sl",
        "tp",
        "deviation",
        "magic",
        "comment",
        "client_order_id",
        "type_time",
        "expiration",
        "type_filling",
    }
)
TIMEFRAMES = {"M1": 60, "M5": 300, "M15": 900, "M30": 1800, "H1": 3600, "H4": 14400, "D1": 86400}
MAX_BAR_RANGE = timedelta(days=31)

Bar = tuple[int, float, float, float, float, int, int]  # time (UTC s), o, h, l, c, ticks, spread


class Invalid(ValueError):
    """A request the gateway refuses before the terminal sees it (400 validation_error)."""


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
    trade_mode: int = TRADE_MODE_FULL  # 4 full, 0 disabled, 3 close-only
    trade_stops_level: int = 0  # points between the price and a stop
    visible: bool = True

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
    time_msc: int  # broker wall clock
    sl: Decimal | None = None
    tp: Decimal | None = None
    identifier: int = 0  # the ticket of the order that opened it; kept through a reversal

    def __post_init__(self) -> None:
        if not self.identifier:
            self.identifier = self.ticket


@dataclass
class SimOrder:
    """A pending order (BUY_LIMIT, SELL_LIMIT, BUY_STOP, SELL_STOP) waiting for its price."""

    ticket: int
    symbol: str
    type: int
    volume: Decimal
    price: Decimal
    sl: Decimal | None
    tp: Decimal | None
    magic: int
    comment: str
    time_msc: int  # broker wall clock
    type_time: int = 0
    expiration: int = 0  # broker wall-clock epoch seconds, 0 = none
    type_filling: int = 0


@dataclass(frozen=True)
class OrderSpec:
    """An order request the gateway accepted as well-formed (``parse_order``)."""

    symbol: str
    type: int
    volume: Decimal
    price: Decimal | None = None
    sl: Decimal | None = None
    tp: Decimal | None = None
    deviation: int = 0
    magic: int = 0
    comment: str = ""
    type_time: int = 0
    expiration: int = 0
    type_filling: int = 0


def decimal_of(value: Any, name: str) -> Decimal:
    """A number sent as a JSON number or a string; anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid(f"{name} must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Invalid(f"{name} must be a number") from None
    if not number.is_finite():
        raise Invalid(f"{name} must be a finite number")
    return number


def int_of(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise Invalid(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise Invalid(f"{name} must be an integer")


def _level(body: dict[str, Any], name: str) -> Decimal | None:
    """An optional price level; 0 (or absent) means none, as in MT5."""
    value = body.get(name)
    if value is None:
        return None
    number = decimal_of(value, name)
    if number < 0:
        raise Invalid(f"{name} must not be negative")
    return number or None


def parse_order(
    body: dict[str, Any], key: str | None, max_volume: Decimal = Decimal(100)
) -> OrderSpec:
    """The gateway's check of a ``POST /order`` body; raises :class:`Invalid` (400)."""
    unknown = sorted(set(body) - ORDER_FIELDS)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}")
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise Invalid("symbol is required")
    kind = body.get("type")
    if isinstance(kind, str) and kind.upper() in ORDER_TYPES:
        type_ = ORDER_TYPES[kind.upper()]
    elif isinstance(kind, int) and not isinstance(kind, bool) and kind in TYPE_NAMES:
        type_ = kind
    else:
        raise Invalid(f"type must be one of {', '.join(ORDER_TYPES)}")
    if body.get("volume") is None:
        raise Invalid("volume is required")
    volume = decimal_of(body["volume"], "volume")
    if volume <= 0:
        raise Invalid("volume must be positive")
    if volume > max_volume:
        raise Invalid(f"volume {volume} exceeds the gateway's maximum of {max_volume}")
    deviation = int_of(body.get("deviation", 0), "deviation")
    if not 0 <= deviation <= 1000:
        raise Invalid("deviation must be between 0 and 1000")
    if body.get("magic") is None:
        magic = zlib.crc32(key.encode()) if key else 0  # derived from the idempotency key
    else:
        magic = int_of(body["magic"], "magic")
        if not 0 <= magic <= MAX_MAGIC:
            raise Invalid("magic must be an unsigned 32-bit integer")
    comment = body.get("comment") or ""
    if not isinstance(comment, str):
        raise Invalid("comment must be a string")
    price = _level(body, "price")
    if type_ >= 2 and price is None:
        raise Invalid(f"a {TYPE_NAMES[type_]} order needs a price")
    return OrderSpec(
        symbol=symbol,
        type=type_,
        volume=volume,
        price=price if type_ >= 2 else None,
        sl=_level(body, "sl"),
        tp=_level(body, "tp"),
        deviation=deviation,
        magic=magic,
        comment=comment[:GATEWAY_COMMENT],
        type_time=int_of(body.get("type_time", 0), "type_time"),
        expiration=int_of(body.get("expiration", 0), "expiration"),
        type_filling=int_of(body.get("type_filling", 0), "type_filling"),
    )


@dataclass
class SimState:
    seed: int = 1
    balance: Decimal = Decimal(10000)
    login: int = 12345678
    server: str = "QKT-Sim"
    instruments: dict[str, Instrument] = field(default_factory=dict)
    quotes: dict[str, tuple[Decimal, Decimal, int]] = field(default_factory=dict)  # bid, ask, msc
    positions: dict[int, SimPosition] = field(default_factory=dict)
    orders: dict[int, SimOrder] = field(default_factory=dict)  # pending orders by ticket
    deals: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    symbols: tuple[str, ...] = tuple(DEFAULT_INSTRUMENTS)
    timeout_s: float = 30.0  # how long the timeout_next fault hangs a request
    hedging: bool = False  # every market order opens a position of its own (margin_mode 2)
    server_time_zone: str = "UTC"  # the broker's clock: UTC, ny-close or an IANA zone
    max_order_volume: Decimal = Decimal(100)  # the gateway's MAX_ORDER_VOLUME
    comment_kept: int = COMMENT_KEPT  # characters of a comment the terminal keeps
    deals_filter_position: bool = False  # True: /history_deals_get?position= filters (False: quirk)
    reconcile: bool = True  # False: no /reconcile route (an older gateway)
    bars: bool = True  # False: no /fetch_data_* routes
    bar_history_days: int = 3  # synthetic M1 history before the start
    idempotency_ttl_s: float = 3600.0
    monotonic: Callable[[], float] = time.monotonic  # the gateway's clock for TTLs and faults

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._ticket = 1000
        self.zone: tzinfo = server_zone(self.server_time_zone)
        self._script: list[tuple[str | None, Decimal, Decimal]] | None = None
        self._anchors: dict[str, tuple[int, Decimal]] = {}  # start minute (UTC s), start bid
        self._past: dict[str, list[Bar]] = {}  # synthesised lazily
        self._live: dict[str, list[Bar]] = {}
        self.add_symbols(list(self.symbols))

    # ------------------------------------------------------------ clocks
    def now_ms(self) -> int:
        """Now on the broker's wall clock (epoch milliseconds), as the terminal writes times."""
        return to_wall_ms(datetime.now(UTC), self.zone)

    def utc_of(self, wall_ms: int) -> datetime:
        return to_utc(wall_ms, self.zone)

    # ------------------------------------------------------------ instruments and quotes
    def add_symbols(self, names: list[str]) -> None:
        with self.lock:
            for name in names:
                price, digits, size = DEFAULT_INSTRUMENTS.get(name, ("100.00", 2, 1))
                self.add_instrument(Instrument(name, Decimal(price), digits, Decimal(size)))

    def add_instrument(self, inst: Instrument) -> None:
        with self.lock:
            self.instruments[inst.name] = inst
            self._live[inst.name] = []
            self._past.pop(inst.name, None)
            self._set_mid(inst, inst.price)  # opens the first live bar
            first = self._live[inst.name][0]
            self._anchors[inst.name] = (first[0], self.quotes[inst.name][0])

    def _round(self, inst: Instrument, value: Decimal) -> Decimal:
        return value.quantize(inst.point, rounding=ROUND_HALF_UP)

    def _set_mid(self, inst: Instrument, mid: Decimal) -> None:
        half = inst.point * inst.spread_points / 2
        self._quote(inst.name, self._round(inst, mid - half), self._round(inst, mid + half))

    def _quote(self, symbol: str, bid: Decimal, ask: Decimal) -> None:
        self.quotes[symbol] = (bid, ask, self.now_ms())
        if symbol in self.instruments:
            self._record_bar(symbol)

    def set_quote(self, symbol: str, bid: Decimal, ask: Decimal) -> None:
        with self.lock:
            self._quote(symbol, bid, ask)
            self.check_stops()

    def follow(self, rows: list[tuple[str | None, Decimal, Decimal]]) -> None:
        """Replace the random walk with scripted quotes: (broker symbol or None for all, bid, ask)."""
        with self.lock:
            self._script = list(reversed(rows))

    def step(self) -> None:
        """Advance quotes one step — the next scripted row, else a seeded random walk — then
        check SL/TP and pending orders."""
        with self.lock:
            if self._script is not None:
                if self._script:
                    symbol, bid, ask = self._script.pop()
                    for name in [symbol] if symbol else list(self.instruments):
                        if name in self.instruments:
                            self._quote(name, bid, ask)
                self.check_stops()
                return
            for inst in self.instruments.values():
                bid, ask, _ = self.quotes[inst.name]
                mid = (bid + ask) / 2
                moved = mid * Decimal(repr(math.exp(self._rng.gauss(0, 0.0002))))
                self._set_mid(inst, moved)
            self.check_stops()

    # ------------------------------------------------------------ bars
    def _record_bar(self, symbol: str) -> None:
        """The current M1 bar (MT5 bars are bid bars) moves with every quote."""
        bid = float(self.quotes[symbol][0])
        minute = int(time.time()) // 60 * 60
        spread = self.instruments[symbol].spread_points
        live = self._live[symbol]
        if live and live[-1][0] == minute:
            t, o, h, lo, _, n, _ = live[-1]
            live[-1] = (t, o, max(h, bid), min(lo, bid), bid, n + 1, spread)
        else:
            live.append((minute, bid, bid, bid, bid, 1, spread))

    def _history(self, symbol: str) -> list[Bar]:
        """Every M1 bar of ``symbol``, oldest first: the seeded past, then the live bars."""
        past = self._past.get(symbol)
        if past is None:
            past = self._past[symbol] = self._synthesise(symbol)
        return past + self._live[symbol]

    def _synthesise(self, symbol: str) -> list[Bar]:
        """Seeded M1 bars of the last ``bar_history_days`` days, ending at the start price."""
        inst = self.instruments[symbol]
        start, price = self._anchors[symbol]
        rng = random.Random(f"{self.seed}:{symbol}")
        count = self.bar_history_days * 1440
        closes = [float(price)]
        for _ in range(count):  # walk back from the start price
            closes.append(closes[-1] * math.exp(-rng.gauss(0, 0.0003)))
        closes.reverse()  # closes[0] opens the first bar, closes[-1] == start price
        bars: list[Bar] = []
        for i in range(count):
            o, c = closes[i], closes[i + 1]
            wick = abs(rng.gauss(0, 0.00015))
            h = round(max(o, c) * (1 + wick), inst.digits)
            lo = round(min(o, c) * (1 - abs(rng.gauss(0, 0.00015))), inst.digits)
            o, c = round(o, inst.digits), round(c, inst.digits)
            t = start - (count - i) * 60
            bars.append((t, o, max(h, o, c), min(lo, o, c), c, rng.randint(20, 200),
                         inst.spread_points))  # fmt: skip
        return bars

    def bars_of(self, symbol: str, timeframe: str) -> list[Bar]:
        """Bars of ``timeframe`` (M1 aggregated on the broker's clock), oldest first; times are
        the UTC opening of each bar."""
        seconds = TIMEFRAMES[timeframe]
        with self.lock:
            minutes = self._history(symbol)
        if seconds == 60:
            return minutes
        out: list[Bar] = []
        bucket_of: dict[int, int] = {}
        for t, o, h, lo, c, n, spread in minutes:
            wall = to_wall_ms(datetime.fromtimestamp(t, UTC), self.zone) // 1000
            bucket = wall // seconds * seconds
            index = bucket_of.get(bucket)
            if index is None:
                bucket_of[bucket] = len(out)
                opened = int(to_utc(bucket * 1000, self.zone).timestamp())
                out.append((opened, o, h, lo, c, n, spread))
            else:
                bt, bo, bh, bl, _, bn, bs = out[index]
                out[index] = (bt, bo, max(bh, h), min(bl, lo), c, bn + n, bs)
        return out

    # ------------------------------------------------------------ account
    def floating(self) -> Decimal:
        return sum((self.position_profit(p) for p in self.positions.values()), Decimal(0))

    def position_profit(self, pos: SimPosition) -> Decimal:
        bid, ask, _ = self.quotes[pos.symbol]
        return self._profit(pos, bid if pos.type == 0 else ask, pos.volume)

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
        magic: int,
    ) -> int:
        """Book a deal: its ``position_id`` is the position's identifier and, like MT5, its
        comment and magic are those of the order that made it."""
        ticket = self._next_ticket()
        now = self.now_ms()
        self.deals.append(
            {
                "ticket": ticket,
                "order": order,
                "position_id": pos.identifier,
                "symbol": pos.symbol,
                "type": type_,
                "entry": entry,
                "volume": str(volume),
                "price": str(price),
                "profit": str(profit),
                "commission": "0",
                "swap": "0",
                "fee": "0",
                "magic": magic,
                "comment": comment,
                "reason": reason,
                "time": now // 1000,
                "time_msc": now,
            }
        )
        return ticket

    def _kept(self, comment: str) -> str:
        return comment[:GATEWAY_COMMENT][: self.comment_kept]

    def _check(self, spec: OrderSpec) -> tuple[int, str] | tuple[Instrument, Decimal, Decimal]:
        """The terminal's ``order_check``: (retcode, why) for a refusal, else (instrument,
        volume rounded down to the step, the fill or trigger price)."""
        inst = self.instruments.get(spec.symbol)
        if inst is None:
            return RETCODE_INVALID, f"Unknown symbol {spec.symbol}"
        if inst.trade_mode == TRADE_MODE_DISABLED:
            return RETCODE_TRADE_DISABLED, "Trade is disabled for the symbol"
        volume = round_down(spec.volume, inst.volume_step)  # the gateway rounds down
        if volume < inst.volume_min or volume > inst.volume_max or volume <= 0:
            return RETCODE_INVALID_VOLUME, "Invalid volume"
        buy = spec.type % 2 == 0
        bid, ask, _ = self.quotes[spec.symbol]
        if spec.type >= 2:
            assert spec.price is not None
            price = spec.price
            above = price > ask if buy else price > bid
            below = price < ask if buy else price < bid
            limit = spec.type in (2, 3)
            valid = (below if buy else above) if limit else (above if buy else below)
            if not valid or price != price.quantize(inst.point):
                return RETCODE_INVALID_PRICE, "Invalid price"
        else:
            price = ask if buy else bid
        if inst.trade_mode == TRADE_MODE_CLOSE_ONLY and not self._reduces(spec, volume):
            return RETCODE_CLOSE_ONLY, "Only position closing is allowed"
        if not self.stops_valid(inst, buy, price, spec.sl, spec.tp):
            return RETCODE_INVALID_STOPS, "Invalid stops"
        return inst, volume, price

    def _reduces(self, spec: OrderSpec, volume: Decimal) -> bool:
        if self.hedging or spec.type >= 2:
            return False
        pos = self._netted(spec.symbol)
        return pos is not None and pos.type != spec.type and volume <= pos.volume

    def stops_valid(
        self, inst: Instrument, buy: bool, price: Decimal, sl: Decimal | None, tp: Decimal | None
    ) -> bool:
        """SL below and TP above a buy's price (the other way for a sell), at least
        ``trade_stops_level`` points away, and prices of the symbol (at most ``digits``
        decimals)."""
        gap = inst.point * inst.trade_stops_level
        for level, under in ((sl, buy), (tp, not buy)):
            if level is None:
                continue
            if level != level.quantize(inst.point):
                return False
            if (level >= price - gap) if under else (level <= price + gap):
                return False
        return True

    def _netted(self, symbol: str) -> SimPosition | None:
        return next((p for p in self.positions.values() if p.symbol == symbol), None)

    def send(self, spec: OrderSpec) -> tuple[int, dict[str, Any]]:
        """``order_check`` then ``order_send``: (retcode, result). A refusal's result is
        ``{"retcode", "comment"}``; a success's the terminal's trade result."""
        with self.lock:
            checked = self._check(spec)
            if isinstance(checked[0], int):
                retcode, why = checked
                return retcode, {"retcode": retcode, "comment": why}
            inst, volume, price = checked
            assert isinstance(inst, Instrument) and isinstance(volume, Decimal)
            assert isinstance(price, Decimal)
            bid, ask, _ = self.quotes[spec.symbol]
            comment = self._kept(spec.comment)
            order = self._next_ticket()
            if spec.type >= 2:
                self.orders[order] = SimOrder(
                    order, spec.symbol, spec.type, volume, price, spec.sl, spec.tp, spec.magic,
                    comment, self.now_ms(), spec.type_time, spec.expiration, spec.type_filling,
                )  # fmt: skip
                self.check_stops()
                retcode, deal, fill = RETCODE_PLACED, 0, Decimal(0)
            else:
                deal = self._fill(order, spec.symbol, spec.type, volume, price, spec.sl, spec.tp,
                                  spec.magic, comment)  # fmt: skip
                retcode, fill = RETCODE_DONE, price
            return retcode, {
                "retcode": retcode,
                "order": order,
                "deal": deal,
                "price": str(fill),
                "volume": str(volume),
                "bid": str(bid),
                "ask": str(ask),
                "comment": "Request executed" if retcode == RETCODE_DONE else "Request placed",
                "request": _request_tuple(spec, order, volume, price),
            }

    def _fill(
        self,
        order: int,
        symbol: str,
        type_: int,
        volume: Decimal,
        price: Decimal,
        sl: Decimal | None,
        tp: Decimal | None,
        magic: int,
        comment: str,
    ) -> int:
        """Execute ``order`` (0 buy, 1 sell) by MQL5's rules; returns the deal ticket."""
        inst = self.instruments[symbol]
        existing = None if self.hedging else self._netted(symbol)
        if existing is None:
            pos = SimPosition(order, symbol, type_, volume, price, magic, comment, self.now_ms(),
                              sl, tp)  # fmt: skip
            self.positions[order] = pos
            return self._deal(pos, type_, ENTRY_IN, volume, price, Decimal(0), REASON_CLIENT,
                              order, comment, magic)  # fmt: skip
        if existing.type == type_:
            total = existing.volume + volume
            existing.price_open = self._round(
                inst, (existing.price_open * existing.volume + price * volume) / total
            )
            existing.volume = total
            existing.sl = sl if sl is not None else existing.sl
            existing.tp = tp if tp is not None else existing.tp
            return self._deal(existing, type_, ENTRY_IN, volume, price, Decimal(0),
                              REASON_CLIENT, order, comment, magic)  # fmt: skip
        closing = min(volume, existing.volume)
        profit = self._profit(existing, price, closing)
        self.balance += profit
        rest = volume - closing
        deal = self._deal(existing, type_, ENTRY_INOUT if rest > 0 else ENTRY_OUT, volume, price,
                          profit, REASON_CLIENT, order, comment, magic)  # fmt: skip
        if rest == 0:
            existing.volume -= closing
            if existing.volume == 0:
                del self.positions[existing.ticket]
            return deal
        # Reversal: same identifier, the reversing order's ticket and everything else.
        del self.positions[existing.ticket]
        existing.ticket, existing.type, existing.volume = order, type_, rest
        existing.price_open, existing.sl, existing.tp = price, sl, tp
        existing.magic, existing.comment, existing.time_msc = magic, comment, self.now_ms()
        self.positions[order] = existing
        return deal

    def market_order(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A ``POST /order`` body straight to the terminal (no idempotency, no faults):
        (200, result) when filled or placed, (400, {"retcode", "comment"}) when refused."""
        try:
            key = body.get("client_order_id")
            spec = parse_order(body, key if isinstance(key, str) else None, self.max_order_volume)
        except Invalid as exc:
            return 400, {"retcode": RETCODE_INVALID, "comment": str(exc)}
        retcode, result = self.send(spec)
        return (200 if retcode in (RETCODE_DONE, RETCODE_PLACED) else 400), result

    def close(
        self,
        ticket: int,
        volume: Decimal | None = None,
        reason: int = REASON_CLIENT,
        price: Decimal | None = None,
        comment: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Close ``volume`` (None: all) of the position ``ticket`` by an opposite order of its
        own (a new order ticket); an SL/TP close fills at its level."""
        with self.lock:
            pos = self.positions.get(ticket)
            if pos is None:
                return 400, {"retcode": RETCODE_INVALID, "comment": f"Position {ticket} not found"}
            bid, ask, _ = self.quotes[pos.symbol]
            fill = price if price is not None else (bid if pos.type == 0 else ask)
            amount = pos.volume if volume is None else min(volume, pos.volume)
            profit = self._profit(pos, fill, amount)
            self.balance += profit
            if comment is None:
                comment = {REASON_SL: f"[sl {fill}]", REASON_TP: f"[tp {fill}]"}.get(reason, "")
            order = self._next_ticket()
            deal = self._deal(pos, 1 - pos.type, ENTRY_OUT, amount, fill, profit, reason, order,
                              self._kept(comment), pos.magic)  # fmt: skip
            pos.volume -= amount
            if pos.volume == 0:
                del self.positions[ticket]
            return 200, {
                "retcode": RETCODE_DONE,
                "order": order,
                "deal": deal,
                "price": str(fill),
                "volume": str(amount),
                "bid": str(bid),
                "ask": str(ask),
                "comment": "Request executed",
            }

    def modify(
        self, ticket: int, sl: Decimal | None, tp: Decimal | None
    ) -> tuple[int, dict[str, Any]]:
        """Set both levels of ``ticket`` (None clears one); refused on the wrong side of the
        position's current price."""
        with self.lock:
            pos = self.positions.get(ticket)
            if pos is None:
                return 400, {"retcode": RETCODE_INVALID, "comment": f"Position {ticket} not found"}
            inst = self.instruments[pos.symbol]
            bid, ask, _ = self.quotes[pos.symbol]
            current = bid if pos.type == 0 else ask
            if not self.stops_valid(inst, pos.type == 0, current, sl, tp):
                return 400, {"retcode": RETCODE_INVALID_STOPS, "comment": "Invalid stops"}
            pos.sl, pos.tp = sl, tp
            self.check_stops()
            return 200, {
                "retcode": RETCODE_DONE,
                "order": 0,
                "deal": 0,
                "price": "0",
                "volume": "0",
                "bid": str(bid),
                "ask": str(ask),
                "comment": "Request executed",
            }

    def cancel(self, ticket: int) -> bool:
        with self.lock:
            return self.orders.pop(ticket, None) is not None

    def check_stops(self) -> None:
        """A buy's SL/TP trigger on the bid, a sell's on the ask and fill at the level; pending
        orders trigger on the ask (buys) or the bid (sells) and fill at the market; expired
        pending orders go."""
        with self.lock:
            for pos in list(self.positions.values()):
                bid, ask, _ = self.quotes[pos.symbol]
                price = bid if pos.type == 0 else ask
                if pos.sl is not None and (price <= pos.sl if pos.type == 0 else price >= pos.sl):
                    self.close(pos.ticket, reason=REASON_SL, price=pos.sl)
                elif pos.tp is not None and (price >= pos.tp if pos.type == 0 else price <= pos.tp):
                    self.close(pos.ticket, reason=REASON_TP, price=pos.tp)
            now_s = self.now_ms() // 1000
            for order in list(self.orders.values()):
                if order.expiration and now_s >= order.expiration:
                    del self.orders[order.ticket]
                    continue
                bid, ask, _ = self.quotes[order.symbol]
                buy = order.type % 2 == 0
                market = ask if buy else bid
                limit = order.type in (2, 3)
                hit = (
                    (market <= order.price if buy else market >= order.price)
                    if limit
                    else (market >= order.price if buy else market <= order.price)
                )
                if hit:
                    del self.orders[order.ticket]
                    self._fill(order.ticket, order.symbol, 0 if buy else 1, order.volume, market,
                               order.sl, order.tp, order.magic, order.comment)  # fmt: skip
                    self.check_stops()
                    return


def round_down(volume: Decimal, step: Decimal) -> Decimal:
    """``volume`` rounded down to a multiple of ``step``, written without trailing zeros."""
    steps = (volume / step).to_integral_value(rounding=ROUND_FLOOR)
    return Decimal(format((steps * step).normalize(), "f"))


def _request_tuple(spec: OrderSpec, order: int, volume: Decimal, price: Decimal) -> list[Any]:
    """The terminal's TradeRequest as the gateway serialises it (a namedtuple: a JSON list):
    action, magic, order, symbol, volume, price, stoplimit, sl, tp, deviation, type,
    type_filling, type_time, expiration, comment, position, position_by."""
    return [
        5 if spec.type >= 2 else 1,
        spec.magic,
        order if spec.type >= 2 else 0,
        spec.symbol,
        float(volume),
        float(price),
        0.0,
        float(spec.sl or 0),
        float(spec.tp or 0),
        spec.deviation,
        spec.type,
        spec.type_filling,
        spec.type_time,
        spec.expiration,
        spec.comment,
        0,
        0,
    ]
