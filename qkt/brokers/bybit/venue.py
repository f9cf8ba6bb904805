"""One Bybit account per profile, shared by every session that trades on it (SPEC §6.1).

What a profile has once, however many sessions use it: the signed
:class:`~qkt.brokers.bybit.client.BybitClient` and its clock offset; the start-up guard — the key
valid, not read-only, allowed to trade the category, not expired; a unified account; one-way
position mode — checked once while sessions are attached; the instruments read; one order at a
time per symbol; one poller reading the account's executions once per ``poll_interval_ms`` and
handing each to the session it belongs to (its ``orderLinkId`` names the session; an execution
Bybit made itself — a take-profit, a stop-loss, a liquidation — or one made by hand goes to the
sessions holding that symbol); one quote poller per symbol (public tickers, no key needed); and
outages, said on every attached session's bus.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from qkt.brokers.bybit.checks import guard_problems
from qkt.brokers.bybit.client import BybitClient, BybitError, base_url_for
from qkt.brokers.bybit.ids import session_of_link
from qkt.brokers.bybit.models import Execution, Instrument
from qkt.brokers.edge import SharedVenue
from qkt.brokers.notices import Outage
from qkt.diagnostics import error
from qkt.errors import QktError

if TYPE_CHECKING:
    from qkt.brokers.bybit.broker import BybitBroker

KLINES_PER_READ = 1000  # the most one /v5/market/kline answers
LOOKBACK_MS = 7 * 24 * 3600 * 1000  # how far back executions go (Bybit keeps 7 days by default)


class VenueRefused(QktError):
    """The profile's key or account cannot trade as configured."""


@dataclass(frozen=True)
class Quote:
    bid: Decimal
    ask: Decimal
    time_msc: int = 0  # tickers carry no time: every read is news
    last: Decimal | None = None  # the last trade: what Bybit checks TP/SL against


class BybitVenue(SharedVenue["BybitBroker"]):
    zone = None  # Bybit writes UTC epoch milliseconds everywhere

    def __init__(self, profile: Any, client: BybitClient | None = None) -> None:
        super().__init__()
        self.profile = profile
        self.name: str = profile.name
        values = profile.values
        self.category: str = str(values.get("category") or "linear")
        self.url = base_url_for(values.get("testnet") is not False, values.get("base_url"))
        self.client: BybitClient = client or BybitClient(
            self.url,
            profile.secret("api_key") or "",
            profile.secret("api_secret") or "",
            recv_window_ms=int(values.get("recv_window_ms") or 5000),
            timeout_ms=int(values.get("http_timeout_ms") or 5000),
            retry_attempts=int(values.get("retry_attempts") or 3),
        )
        self.poll_every_s = int(values.get("poll_interval_ms") or 1000) / 1000
        self.tick_every_s = int(values.get("tick_poll_interval_ms") or 1000) / 1000
        self._instruments: dict[str, asyncio.Task[Instrument | None]] = {}
        self._modes: dict[str, asyncio.Task[str | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._seen: set[str] = set()  # execIds handed out
        self._since_ms: int | None = None  # executions are read from here on
        self.executions_outage = Outage(
            self.everyone, self.everyone, self.name, f"executions of {self.category}"
        )

    # ------------------------------------------------------------ sessions
    def _forget(self) -> None:
        for task in (*self._instruments.values(), *self._modes.values()):
            if not task.done():
                task.cancel()
        self._instruments.clear()
        self._modes.clear()
        self._locks.clear()
        self._since_ms = None

    def broker_symbol(self, symbol: str) -> str:
        return symbol.upper()  # Bybit symbols need no suffix or alias

    def lock(self, symbol: str) -> asyncio.Lock:
        lock = self._locks.get(symbol)
        if lock is None:
            lock = self._locks[symbol] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------ the start-up guard
    async def _check(self) -> None:
        where = f"profile `{self.name}` ({self.url})"
        try:
            await self.client.sync_time()
            key = await self.client.api_key_info()
            await self.client.wallet_balance("USDT")
            positions = await self.client.positions(self.category) if self.linear else []
        except BybitError as exc:
            first = exc.diagnostics[0]  # venue-refused (the key) or venue-unavailable
            hint = "check the profile's api_key, api_secret and testnet"
            refused = first.code == "venue-refused"
            raise VenueRefused(
                error(first.code, f"{where}: {first.message}", hint=hint if refused else None)
            ) from None
        problems = guard_problems(self.name, self.url, self.category, key, positions)
        if problems:
            raise VenueRefused(problems)

    @property
    def linear(self) -> bool:
        return self.category == "linear"

    # ------------------------------------------------------------ reads shared by sessions
    async def instrument(self, symbol: str) -> Instrument:
        task = self._instruments.get(symbol)
        if task is None or (task.done() and task.exception() is not None):
            loop = asyncio.get_running_loop()
            task = self._instruments[symbol] = loop.create_task(
                self.client.instrument(self.category, symbol)
            )
        found = await asyncio.shield(task)
        if found is None:
            raise BybitError(
                error("venue-error", f"{self.category} {symbol}: no such instrument at Bybit")
            )
        if found.status and found.status != "Trading":
            raise BybitError(
                error("venue-error", f"{self.category} {symbol} is {found.status}, not Trading")
            )
        return found

    async def position_mode(self, symbol: str) -> str | None:
        """Why a linear symbol cannot be traded one-way (hedge mode), or None."""
        if not self.linear:
            return None
        task = self._modes.get(symbol)
        if task is None or (task.done() and task.exception() is not None):
            task = self._modes[symbol] = asyncio.get_running_loop().create_task(self._mode(symbol))
        return await asyncio.shield(task)

    async def _mode(self, symbol: str) -> str | None:
        rows = await self.client.positions(self.category, symbol)
        if any(r.position_idx != 0 for r in rows):
            return f"{symbol} is in hedge mode; qkt trades one-way mode only"
        return None

    async def quote(self, symbol: str) -> Quote:
        rows = await self.client.tickers(self.category, symbol)
        row = next((r for r in rows if r.symbol == symbol), None)
        if row is None or not row.bid1_price or not row.ask1_price:
            raise BybitError(error("venue-error", f"{symbol}: Bybit gave no bid and ask"))
        return Quote(row.bid1_price, row.ask1_price, last=row.last_price)

    # ------------------------------------------------------------ bar history (warm-up)
    history_kind = "Bybit klines (1m to 1d)"
    history_timeframes: tuple[tuple[str, int], ...] = (
        ("D", 86400), ("720", 43200), ("360", 21600), ("240", 14400), ("120", 7200),
        ("60", 3600), ("30", 1800), ("15", 900), ("5", 300), ("3", 180), ("1", 60),
    )  # fmt: skip

    def history_chunk(self, seconds: int) -> timedelta:
        return timedelta(seconds=seconds * KLINES_PER_READ)

    async def history(
        self, symbol: str, interval: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """Klines opened from ``start`` to ``end``, oldest first, as warm-up rows (the bar still
        open is dropped by the warm-up, which knows the time). Bybit filters on the bars' open
        times: ``start`` is taken back to the open of the bar it falls in."""
        length = dict(self.history_timeframes).get(interval, 60) * 1000
        first = int(start.timestamp() * 1000)
        rows = await self.client.klines(
            self.category,
            symbol,
            interval,
            first - first % length,
            int(end.timestamp() * 1000),
            KLINES_PER_READ,
        )
        return [
            {
                "time": k.start_ms,
                "open": str(k.open),
                "high": str(k.high),
                "low": str(k.low),
                "close": str(k.close),
                "volume": str(k.volume),
            }
            for k in rows
        ]

    # ------------------------------------------------------------ the poller
    async def _poll(self) -> dict[BybitBroker, int | BaseException]:
        seats = list(self.sessions)
        results: dict[BybitBroker, int | BaseException] = {}
        for seat in seats:
            try:
                await seat.resolve_pending()
            except Exception as exc:
                results[seat] = exc
        try:
            news = await self.new_executions()
        except BybitError as exc:
            self.executions_outage.failed(exc.diagnostics[0].message)
            return {seat: results.get(seat, 0) for seat in seats}
        self.executions_outage.answered()
        counts = {seat: 0 for seat in seats if seat not in results}
        for execution in news:
            self._seen.add(execution.exec_id)
            if session_of_link(execution.order_link_id) is not None:
                continue  # an order of a qkt session: its own look-ups report it
            closed = execution.closed_size if self.linear else execution.exec_qty
            available = closed or Decimal(0)
            for seat in counts:
                took = seat.exit_from(execution, available)
                if took:
                    counts[seat] += 1
                    available -= took
        if not self.linear:
            await self._check_legs(list(counts))
        results.update(counts)
        return results

    async def _check_legs(self, seats: list[BybitBroker]) -> None:
        """Spot brackets are held by qkt: one quote read per symbol that has legs."""
        symbols = {
            symbol
            for seat in seats
            for symbol, held in seat.held.items()
            if held.stop_loss is not None or held.take_profit is not None
        }
        for symbol in sorted(symbols):
            try:
                quote = await self.quote(symbol)
            except BybitError as exc:
                self.notice(
                    "warning",
                    f"{symbol}: the bracket cannot be checked: {exc.diagnostics[0].message}",
                )
                continue
            for seat in seats:
                seat.crossed(symbol, quote.bid)

    async def new_executions(self) -> list[Execution]:
        """Trade executions not handed out yet, oldest first (read from a second before the
        newest one seen, so none falls between two reads)."""
        now = int(time.time() * 1000)
        since = self._since_ms if self._since_ms is not None else now - 60_000
        rows = await self.client.executions(self.category, start_ms=since)
        news = [r for r in rows if r.exec_type == "Trade" and r.exec_id not in self._seen]
        if rows:
            self._since_ms = max(since, max(r.exec_time for r in rows) - 1000)
        elif self._since_ms is None:
            self._since_ms = since
        return news
