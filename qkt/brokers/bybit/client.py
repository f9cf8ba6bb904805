"""HTTP client of Bybit's v5 REST API (reference/bybit-v5.md): one request, one typed answer.

Every call is a coroutine over the signed :class:`~qkt.brokers.bybit.transport.Transport`: reads
retried, writes (``create_order``, ``trading_stop``) sent exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from qkt.brokers.bybit.models import (
    ApiKeyInfo,
    CreateOutcome,
    Execution,
    Instrument,
    Kline,
    Order,
    Position,
    Ticker,
    WalletBalance,
    WriteOutcome,
)
from qkt.brokers.bybit.transport import (
    LIMIT_WAIT_MAX_S,
    MAINNET_URL,
    MAX_PAGES,
    NOT_MODIFIED,
    TESTNET_URL,
    BybitError,
    Transport,
    base_url_for,
)

__all__ = [
    "LIMIT_WAIT_MAX_S",
    "MAINNET_URL",
    "MAX_PAGES",
    "NOT_MODIFIED",
    "TESTNET_URL",
    "BybitClient",
    "BybitError",
    "base_url_for",
]


class BybitClient(Transport):
    """Bybit v5's endpoints qkt uses (the table of the reference)."""

    # ------------------------------------------------------------ market data (public)
    async def tickers(self, category: str, symbol: str | None = None) -> list[Ticker]:
        """Best bid/ask and last price: one symbol, or every symbol of the category."""
        path = "/v5/market/tickers"
        answer = await self._read(path, {"category": category, "symbol": symbol})
        return self._rows(Ticker, answer.result, path)[0]

    async def instrument(self, category: str, symbol: str) -> Instrument | None:
        """The symbol's trading rules; None when the venue lists no such instrument (Bybit
        lists only ``Trading`` ones unless asked for another ``status``)."""
        path = "/v5/market/instruments-info"
        answer = await self._read(path, {"category": category, "symbol": symbol})
        rows = self._rows(Instrument, answer.result, path)[0]
        return next((r for r in rows if r.symbol == symbol), None)

    async def klines(
        self,
        category: str,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 200,
    ) -> list[Kline]:
        """Bars of ``interval`` (``1 3 5 15 30 60 120 240 360 720 D W M``), **oldest first**.
        The last row may be the bar still open (its close is the last trade): the caller drops a
        bar whose end is later than the server time."""
        path = "/v5/market/kline"
        params: dict[str, Any] = {"category": category, "symbol": symbol, "interval": interval}
        params.update(start=start_ms, end=end_ms, limit=limit)
        answer = await self._read(path, params)
        rows = self._rows(Kline, answer.result, path)[0]
        return sorted(rows, key=lambda k: k.start_ms)

    # ------------------------------------------------------------ account (private)
    async def wallet_balance(self, coin: str | None = None) -> WalletBalance:
        """The unified account's balances (``coin``: e.g. ``USDT`` or ``USDT,BTC``)."""
        path = "/v5/account/wallet-balance"
        answer = await self._read(path, {"accountType": "UNIFIED", "coin": coin}, private=True)
        rows = self._rows(WalletBalance, answer.result, path)[0]
        if not rows:
            raise self._error("venue-error", path, "no unified account in the answer")
        return rows[0]

    async def api_key_info(self) -> ApiKeyInfo:
        path = "/v5/user/query-api"
        answer = await self._read(path, private=True)
        return self._model(ApiKeyInfo, answer.result, path)

    async def positions(self, category: str, symbol: str | None = None) -> list[Position]:
        """One symbol's position (a flat one too), or every open one settled in USDT."""
        params = {"category": category, "symbol": symbol, "limit": 200}
        if symbol is None:
            params["settleCoin"] = "USDT"
        return await self._pages(Position, "/v5/position/list", params)

    def _order_query(
        self, category: str, symbol: str | None, order_link_id: str | None, limit: int
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"category": category, "symbol": symbol}
        if symbol is None and category == "linear":
            params["settleCoin"] = "USDT"  # linear needs symbol, baseCoin or settleCoin
        params.update(orderLinkId=order_link_id, limit=limit)
        return params

    async def open_orders(
        self, category: str, symbol: str | None = None, order_link_id: str | None = None
    ) -> list[Order]:
        """``/v5/order/realtime``: open orders; by ``order_link_id`` also a recently closed one."""
        params = self._order_query(category, symbol, order_link_id, 50)
        return await self._pages(Order, "/v5/order/realtime", params)

    async def order_history(
        self, category: str, symbol: str | None = None, order_link_id: str | None = None
    ) -> list[Order]:
        """``/v5/order/history``: the last 7 days' orders (it may lag behind placement)."""
        params = self._order_query(category, symbol, order_link_id, 50)
        return await self._pages(Order, "/v5/order/history", params)

    async def executions(
        self,
        category: str,
        symbol: str | None = None,
        order_link_id: str | None = None,
        start_ms: int | None = None,
        limit: int = 100,
    ) -> list[Execution]:
        """Executions (every ``execType``: filter ``Trade``), **oldest first** (Bybit sends
        newest first), ``limit`` per page, at most MAX_PAGES pages."""
        params: dict[str, Any] = {"category": category, "symbol": symbol}
        params["orderLinkId"] = order_link_id
        params.update(startTime=start_ms, limit=limit)
        rows = await self._pages(Execution, "/v5/execution/list", params)
        rows.reverse()  # Bybit sends newest first; the sort (stable) orders the pages too
        return sorted(rows, key=lambda e: e.exec_time)

    # ------------------------------------------------------------ writes (sent once)
    async def create_order(self, body: Mapping[str, Any]) -> CreateOutcome:
        """``POST /v5/order/create`` with ``body`` as given (strings for qty/price/TP/SL; the
        ``orderLinkId`` is the client id). Sent once; see WriteOutcome for the statuses."""
        outcome, result = await self._send("/v5/order/create", body)
        ids = result if isinstance(result, dict) else {}
        return CreateOutcome.model_validate(
            {
                **outcome.model_dump(),
                "order_id": str(ids.get("orderId") or ""),
                "order_link_id": str(ids.get("orderLinkId") or body.get("orderLinkId") or ""),
            }
        )

    async def trading_stop(
        self,
        category: str,
        symbol: str,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
        *,
        position_idx: int = 0,
    ) -> WriteOutcome:
        """Set the position's TP/SL in ``Full`` mode: only the legs given change, ``0`` cancels
        one. retCode 34040 (already those levels) counts as accepted."""
        if take_profit is None and stop_loss is None:
            raise ValueError("trading_stop needs take_profit or stop_loss")
        body: dict[str, Any] = {"category": category, "symbol": symbol, "tpslMode": "Full"}
        body["positionIdx"] = position_idx
        if take_profit is not None:
            body["takeProfit"] = format(take_profit, "f")
        if stop_loss is not None:
            body["stopLoss"] = format(stop_loss, "f")
        outcome, _ = await self._send("/v5/position/trading-stop", body)
        if outcome.ret_code == NOT_MODIFIED:
            return outcome.model_copy(update={"status": "accepted"})
        return outcome
