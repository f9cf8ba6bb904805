"""The signed transport under :class:`~qkt.brokers.bybit.client.BybitClient`: reads retried, writes
sent once, the venue's clock, one error shape (reference/bybit-v5.md).

Reads (GET) are retried within ``retry_attempts`` on transport errors, 5xx, HTTP 429, an
unreadable answer, retCode 10006 (after the rate-limit window frees) and 10002 (after
resynchronising the clock); a read that still fails, or is refused, raises :class:`BybitError` —
"unknown", never "empty". Writes (POST) are sent exactly once and return a
:class:`~qkt.brokers.bybit.models.WriteOutcome`; nothing here retries them. Private requests are
stamped with the venue's clock (:class:`~.signing.Signer`), measured on ``/v5/market/time`` at the
first private call and after any 10002. The key and secret never appear in a message: a retMsg is
cleaned of both, and the text of a 10004 (it echoes the signed text) is not reported at all.
Nothing here logs.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
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
    Envelope,
    Page,
    ServerTime,
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


class Transport:
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
