"""HTTP client of Bybit's v5 REST API (reference/bybit-v5.md): one request, one typed answer.

Every call is a coroutine. Reads (GET) are retried within ``retry_attempts`` on transport
errors, 5xx, HTTP 429, an unreadable answer, retCode 10006 (after the rate-limit window frees)
and 10002 (after resynchronising the clock); a read that still fails, or is refused, raises
:class:`BybitError` — "unknown", never "empty". Writes (POST) are sent exactly once and return
a :class:`~qkt.brokers.bybit.models.WriteOutcome`; nothing here retries them.

Private requests are stamped with the venue's clock (:class:`~.signing.Signer`), measured on
``/v5/market/time`` at the first private call and after any 10002. The key and secret never
appear in a message: a retMsg is cleaned of both, and the text of a 10004 (it echoes the signed
text) is not reported at all. Nothing here logs.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from qkt.brokers.bybit.models import (
    REFUSED_CODES,
    ApiKeyInfo,
    CreateOutcome,
    Envelope,
    Execution,
    Instrument,
    Kline,
    Order,
    Page,
    Position,
    ServerTime,
    Ticker,
    WalletBalance,
    WriteOutcome,
    read_envelope,
    write_outcome,
)
from qkt.brokers.bybit.signing import Signer, body_bytes, query_string
from qkt.diagnostics import Diagnostic, error
from qkt.errors import QktError

TESTNET_URL = "https://api-testnet.bybit.com"
MAINNET_URL = "https://api.bybit.com"

NOT_MODIFIED = 34040  # trading-stop with the levels the position already has
LIMIT_WAIT_MAX_S = 1.0  # the rate-limit window is a rolling second
MAX_PAGES = 20

M = TypeVar("M", bound=BaseModel)


def base_url_for(testnet: bool, base_url: str | None = None) -> str:
    """``base_url`` when given (regional sites, demo trading), else testnet's or mainnet's."""
    if base_url:
        return base_url.rstrip("/")
    return TESTNET_URL if testnet else MAINNET_URL


class BybitError(QktError):
    """A call failed or was refused. ``ret_code``/``http_status`` say what the venue answered
    (both None when nothing came back); the diagnostic's code is ``venue-unavailable`` (no
    usable answer after the retries), ``venue-refused`` (the credentials: HTTP 401/403,
    retCode 10003/10004/10005/10010) or ``venue-error`` (any other refusal or answer)."""

    def __init__(
        self,
        diagnostic: Diagnostic,
        *,
        ret_code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(diagnostic)
        self.ret_code = ret_code
        self.http_status = http_status


@dataclass
class _Retry(Exception):
    """A read answered with something worth another attempt (after ``wait_s`` when known)."""

    reason: str
    ret_code: int | None = None
    http_status: int | None = None
    wait_s: float | None = None


class _Answer(NamedTuple):
    result: Any
    sent_ms: float  # local clock
    received_ms: float


def _now_ms() -> float:
    return time.time() * 1000


class BybitClient:
    """Bybit v5 over ``httpx.AsyncClient`` (made on first use, inside the loop that drives it).
    It keeps no state but the clock offset."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        recv_window_ms: int = 5000,
        timeout_ms: int = 5000,
        retry_attempts: int = 3,
        backoff_s: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._signer = Signer(api_key, api_secret, recv_window_ms)
        self.recv_window_ms = recv_window_ms
        self._timeout = timeout_ms / 1000
        self._attempts = max(1, retry_attempts)
        self._backoff = backoff_s
        self._exponential = wait_exponential(multiplier=backoff_s, max=2.0)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"BybitClient({self.base_url!r})"

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=self._timeout,
                transport=self._transport,
                verify=_tls(),
                headers={"Accept": "application/json"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------ clock
    async def server_time(self) -> int:
        """The venue's clock, epoch ms."""
        return (await self._server_time())[0]

    @property
    def offset_ms(self) -> float | None:
        """Server clock - local clock (ms) from the last :meth:`sync_time`; None before it."""
        return self._signer.offset_ms

    async def sync_time(self) -> int:
        """Measure and keep the offset of the venue's clock (ms, server - local)."""
        server_ms, answer = await self._server_time()
        return round(self._signer.observe(server_ms, answer.sent_ms, answer.received_ms))

    async def _server_time(self) -> tuple[int, _Answer]:
        path = "/v5/market/time"
        answer = await self._read(path)
        return self._model(ServerTime, answer.result, path).ms, answer

    async def _resync(self) -> None:
        try:
            await self.sync_time()
        except BybitError:
            self._signer.offset_ms = None  # measured again at the next private call

    # ------------------------------------------------------------ reads
    async def _read(
        self, path: str, params: Mapping[str, Any] | None = None, *, private: bool = False
    ) -> _Answer:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception_type((httpx.TransportError, _Retry)),
            reraise=True,
        )
        tries = f"after {self._attempts} attempt{'s' if self._attempts > 1 else ''}"
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._read_once(path, params, private)
        except httpx.TransportError as exc:
            raise self._error(
                "venue-unavailable", path, f"no answer {tries} ({type(exc).__name__})"
            ) from None
        except _Retry as exc:
            raise self._error(
                "venue-unavailable",
                path,
                f"failed {tries} ({exc.reason})",
                ret_code=exc.ret_code,
                http_status=exc.http_status,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.wait_s is not None:
            return exc.wait_s
        return float(self._exponential(state))

    async def _read_once(
        self, path: str, params: Mapping[str, Any] | None, private: bool
    ) -> _Answer:
        if private and self.offset_ms is None:
            await self.sync_time()
        qs = query_string(params)
        headers = self._signer.headers(qs) if private else None
        sent = _now_ms()
        response = await self._http.get(f"{path}?{qs}" if qs else path, headers=headers)
        received = _now_ms()
        status = response.status_code
        if status >= 500 or status == 429:
            raise _Retry(f"HTTP {status}", http_status=status)
        if status >= 400:
            code = "venue-refused" if status in (401, 403) else "venue-error"
            detail = self._signer.mask(response.text)
            raise self._error(
                code, path, f"HTTP {status}" + (f": {detail}" if detail else ""), http_status=status
            )
        envelope = read_envelope(response.content)
        if envelope is None:
            raise _Retry("malformed answer: not a v5 JSON envelope", http_status=status)
        ret = envelope.ret_code
        if ret == 0:
            return _Answer(envelope.result, sent, received)
        if ret == 10006:
            wait = self._limit_wait(response)
            raise _Retry("rate limited (retCode 10006)", ret_code=ret, wait_s=wait)
        if ret == 10002:
            await self._resync()
            raise _Retry("timestamp outside recv_window (retCode 10002)", ret_code=ret)
        code = "venue-refused" if ret in REFUSED_CODES else "venue-error"
        raise self._error(code, path, f"retCode {ret}: {self._venue_text(envelope)}", ret_code=ret)

    def _limit_wait(self, response: httpx.Response) -> float | None:
        """Seconds until ``X-Bapi-Limit-Reset-Timestamp`` (venue ms), within [backoff, 1 s]."""
        try:
            reset_ms = int(response.headers["X-Bapi-Limit-Reset-Timestamp"])
        except (KeyError, ValueError):
            return None
        wait = (reset_ms - self._signer.venue_now_ms()) / 1000
        return min(max(wait, self._backoff), LIMIT_WAIT_MAX_S)

    def _model(self, model: type[M], data: Any, path: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "result"
            raise self._error(
                "venue-error", path, f"unexpected answer ({where}: {first['msg']})"
            ) from None

    def _rows(self, model: type[M], data: Any, path: str) -> tuple[list[M], str]:
        page = self._model(Page, data if data is not None else {}, path)
        return [self._model(model, row, path) for row in page.rows], page.next_page_cursor

    async def _pages(self, model: type[M], path: str, params: dict[str, Any]) -> list[M]:
        """Every row, following ``nextPageCursor`` (sent back verbatim) for up to MAX_PAGES."""
        rows: list[M] = []
        cursor = ""
        for _ in range(MAX_PAGES):
            answer = await self._read(path, {**params, "cursor": cursor or None}, private=True)
            page, cursor = self._rows(model, answer.result, path)
            rows.extend(page)
            if not cursor:
                break
        return rows

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
    async def _send(self, path: str, body: Mapping[str, Any]) -> tuple[WriteOutcome, Any]:
        if self.offset_ms is None:
            try:
                await self.sync_time()
            except BybitError as exc:
                reason = exc.diagnostics[0].message
                return WriteOutcome(
                    status="rejected",
                    message=f"clock not synchronised, nothing sent ({reason})",
                    answered=False,
                ), None
        content = body_bytes(body)
        stamp = self._signer.stamp()
        headers = self._signer.headers(content.decode(), stamp)
        headers["Content-Type"] = "application/json"
        until = stamp + self.recv_window_ms
        try:
            response = await self._http.post(path, content=content, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            message = f"venue unreachable, nothing sent ({type(exc).__name__})"
            return WriteOutcome(
                status="rejected", message=message, answered=False, valid_until_ms=until
            ), None
        except httpx.HTTPError as exc:
            message = f"no answer after sending ({type(exc).__name__})"
            return WriteOutcome(
                status="unknown", message=message, answered=False, valid_until_ms=until
            ), None
        outcome, result = self._classify(response)
        if outcome.ret_code == 10002:
            await self._resync()
        return outcome.model_copy(update={"valid_until_ms": until}), result

    def _classify(self, response: httpx.Response) -> tuple[WriteOutcome, Any]:
        envelope = None if response.status_code >= 400 else read_envelope(response.content)
        text = self._venue_text(envelope) if envelope else self._signer.mask(response.text)
        return write_outcome(response.status_code, envelope, text), envelope and envelope.result

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

    # ------------------------------------------------------------ messages
    def _error(self, code: str, path: str, message: str, **answer: int | None) -> BybitError:
        """``answer``: ``ret_code`` and/or ``http_status``."""
        line = self._signer.mask(f"{self.base_url}{path}: {message}", limit=400)
        return BybitError(error(code, line), **answer)

    def _venue_text(self, envelope: Envelope) -> str:
        if envelope.ret_code == 10004:  # the venue's text echoes the signed text: not reported
            return "signature refused"
        return self._signer.mask(envelope.ret_msg) or f"retCode {envelope.ret_code}"


_TLS: list[ssl.SSLContext] = []


def _tls() -> ssl.SSLContext:
    """One TLS context (certifi's bundle, as httpx does by default) for every client."""
    if not _TLS:
        _TLS.append(httpx.create_ssl_context())
    return _TLS[0]
