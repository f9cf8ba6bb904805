"""HTTP client of an mt5-gateway (reference/mt5-gateway.md).

Every call is a coroutine: the gateway is an edge, and edges are asyncio. Reads (GET) are
retried with exponential backoff within the profile's ``retry_attempts``, each bounded by
``http_timeout_ms``; a read that still fails raises :class:`GatewayError` — "unknown", never
"empty". Writes (POST) are sent exactly once with an ``Idempotency-Key`` and return an
:class:`Outcome`: ``done``, ``rejected`` (nothing was placed) or ``unknown`` (it may have been
placed: the caller must reconcile before sending anything else for that symbol).
"""

from __future__ import annotations

import ssl
from decimal import Decimal
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from qkt.diagnostics import error
from qkt.errors import QktError

SUCCESS_RETCODES = frozenset({10008, 10009, 10010})
OPTIONAL_ENDPOINTS = frozenset({"/reconcile", "/fetch_data_range", "/fetch_data_pos"})
"""Endpoints some deployed gateways lack: a 404 there raises :class:`Unsupported`."""


class GatewayError(QktError):
    """A read from the gateway failed after its retries (the answer is unknown)."""


class Unsupported(GatewayError):
    """The gateway does not serve this endpoint (404/405): an older or smaller gateway."""


class _Retry(Exception):
    """A read answered with a status worth retrying (5xx, 429) or unreadable JSON."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=False)


class Account(_Wire):
    login: int
    server: str = ""
    currency: str = "USD"
    balance: Decimal = Decimal(0)
    equity: Decimal = Decimal(0)
    margin_mode: int = 0
    trade_mode: int = 0


class SymbolInfo(_Wire):
    bid: Decimal | None = None
    ask: Decimal | None = None
    digits: int = 5
    point: Decimal | None = None
    volume_min: Decimal = Decimal("0.01")
    volume_max: Decimal = Decimal(1000)
    volume_step: Decimal = Decimal("0.01")
    trade_contract_size: Decimal = Decimal(1)
    trade_stops_level: int = 0
    trade_mode: int | None = None


class Quote(_Wire):
    symbol: str = ""
    bid: Decimal
    ask: Decimal
    time: int = 0
    time_msc: int = 0


class Position(_Wire):
    """An open position as the terminal records it. ``identifier`` names the position for its
    whole life (deals carry it as ``position_id``); ``ticket`` changes when a netting position is
    reversed. Gateways that leave ``identifier`` out are read with identifier = ticket."""

    ticket: int
    identifier: int = 0
    symbol: str
    type: int  # 0 buy, 1 sell
    volume: Decimal
    price_open: Decimal
    price_current: Decimal | None = None
    sl: Decimal | None = None
    tp: Decimal | None = None
    profit: Decimal = Decimal(0)
    magic: int = 0
    comment: str = ""
    client_order_id: str = ""  # echoed by some gateways only
    time: int = 0  # broker wall clock (see qkt.brokers.mt5.clock)
    time_msc: int = 0

    @model_validator(mode="after")
    def _identify(self) -> Position:
        if not self.identifier:
            self.identifier = self.ticket
        return self


class Deal(_Wire):
    ticket: int
    order: int = 0
    position_id: int = 0
    symbol: str = ""
    type: int = 0
    entry: int = 0
    volume: Decimal = Decimal(0)
    price: Decimal = Decimal(0)
    profit: Decimal = Decimal(0)
    magic: int = 0
    comment: str = ""
    client_order_id: str = ""  # echoed by some gateways only
    reason: int = 0
    time: int = 0
    time_msc: int = 0


class TradeResult(_Wire):
    retcode: int = -1
    order: int = 0
    deal: int = 0
    price: Decimal | None = None
    volume: Decimal | None = None
    comment: str = ""


class Snapshot(_Wire):
    """What ``/reconcile`` knows of one magic: positions, pending orders, the last day's deals."""

    positions: list[Position] = Field(default_factory=list)
    deals: list[Deal] = Field(default_factory=list)
    orders: list[dict[str, Any]] = Field(default_factory=list)


class Outcome(_Wire):
    status: Literal["done", "rejected", "unknown"]
    result: TradeResult = Field(default_factory=TradeResult)
    message: str = ""
    # False when no answer came back (a timeout after sending, a request still in progress): the
    # gateway may still be placing the order, so "not placed" must wait for it to have finished.
    answered: bool = True


def _unwrap(payload: Any) -> Any:
    if isinstance(payload, dict) and "data" in payload:
        return payload["data"]
    return payload


def _plain(value: Decimal | None) -> float | None:
    """Bodies carry bare JSON numbers in plain notation (the shortest float repr of the decimal)."""
    return None if value is None else float(value)


class GatewayClient:
    """An mt5-gateway over ``httpx.AsyncClient``: every call is a coroutine of the caller's loop.

    What to send and how to read the answer are plain functions (:func:`read_answer`,
    :func:`write_outcome`, :func:`write_failure`); this class only moves bytes, so the rules are
    tested without a network and any transport (a test's mock, a Unix socket) can carry them.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_ms: int = 5000,
        retry_attempts: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_s: float = 0.05,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout_ms / 1000
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._attempts = max(1, retry_attempts)
        self._backoff = backoff_s

    @property
    def _http(self) -> httpx.AsyncClient:
        # Made on first use, inside the loop that will drive it (a pool belongs to one loop).
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                timeout=self._timeout,
                transport=self._transport,
                verify=_tls(),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------ reads
    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff, max=2.0),
            retry=retry_if_exception_type((httpx.TransportError, _Retry)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._http.get(path, params=params)
                    return read_answer(self.base_url, path, response)
        except (httpx.TransportError, _Retry) as exc:
            reason = type(exc).__name__ if not str(exc) else str(exc)
            raise GatewayError(
                _diag(self.base_url, path, f"no answer after {self._attempts} attempts ({reason})")
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _model(self, model: type[Any], data: Any, path: str) -> Any:
        return parse_model(self.base_url, path, model, data)

    def _rows(self, model: type[Any], data: Any, path: str, what: str) -> list[Any]:
        if not isinstance(data, list):
            raise GatewayError(_diag(self.base_url, path, f"expected a list of {what}"))
        return [self._model(model, row, path) for row in data]

    async def ready(self) -> bool:
        return (await self.readiness_state())[0] == "ready"

    async def readiness(self) -> str | None:
        """None when the gateway is ready, else why not (one try, never retried)."""
        state, reason = await self.readiness_state()
        return None if state == "ready" else reason

    async def readiness_state(self) -> tuple[Literal["ready", "refused", "waiting"], str]:
        """One look at ``/health/ready``: ``ready``; ``refused`` (the api_key is not accepted:
        waiting will not help); or ``waiting`` (unreachable, terminal not connected, kill
        switch engaged), with the reason."""
        try:
            response = await self._http.get("/health/ready")
        except httpx.HTTPError as exc:
            return "waiting", f"is unreachable ({type(exc).__name__})"
        if response.status_code in (401, 403):
            return "refused", f"refused the api_key (HTTP {response.status_code})"
        try:
            body = _unwrap(response.json())
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        status = body.get("status")
        if response.status_code == 200 and status == "ready":
            return "ready", "is ready"
        if body.get("kill_switch_active"):
            return "waiting", "has trading halted by its kill switch"
        detail = body.get("error") or body.get("mt5_status") or status
        return "waiting", f"is not ready (HTTP {response.status_code}, {detail!r})"

    async def account(self) -> Account:
        data = await self._get("/account")
        return self._model(Account, data, "/account")  # type: ignore[no-any-return]

    async def symbol_info(self, broker_symbol: str) -> SymbolInfo:
        path = f"/symbol_info/{broker_symbol}"
        return self._model(SymbolInfo, await self._get(path), path)  # type: ignore[no-any-return]

    async def quote(self, broker_symbol: str) -> Quote:
        path = f"/symbol_info_tick/{broker_symbol}"
        return self._model(Quote, await self._get(path), path)  # type: ignore[no-any-return]

    async def positions(self, magic: int | None = None) -> list[Position]:
        params = {"magic": magic} if magic is not None else None
        data = await self._get("/get_positions", params)
        positions: list[Position] = self._rows(Position, data, "/get_positions", "positions")
        return [p for p in positions if magic is None or p.magic == magic]

    async def deals(self, from_date: str, to_date: str, position: int | None = None) -> list[Deal]:
        params: dict[str, Any] = {"from_date": from_date, "to_date": to_date}
        if position is not None:
            params["position"] = position
        data = await self._get("/history_deals_get", params)
        deals: list[Deal] = self._rows(Deal, data, "/history_deals_get", "deals")
        # Some gateways return other positions' deals too: filter here.
        return [d for d in deals if position is None or d.position_id == position]

    async def pending_orders(self, magic: int | None = None) -> list[dict[str, Any]]:
        """Working orders; gateways ignore ``?magic=``, so they are filtered here."""
        payload = await self._get("/orders", {"magic": magic} if magic is not None else None)
        rows = payload.get("orders", []) if isinstance(payload, dict) else payload
        if not isinstance(rows, list):
            raise GatewayError(_diag(self.base_url, "/orders", "expected a list of orders"))
        return [
            r for r in rows if isinstance(r, dict) and (magic is None or r.get("magic") == magic)
        ]

    async def reconcile(self, magic: int) -> Snapshot | None:
        """``GET /reconcile?magic=``: the magic's positions, pending orders and last 24 h of deals
        in one call; None where the gateway does not serve it (404/405: read positions and deals
        instead)."""
        try:
            payload = await self._get("/reconcile", {"magic": magic})
        except Unsupported:
            return None
        if not isinstance(payload, dict):
            raise GatewayError(_diag(self.base_url, "/reconcile", "expected an object"))
        positions = self._rows(Position, payload.get("positions") or [], "/reconcile", "positions")
        deals = self._rows(Deal, payload.get("deals") or [], "/reconcile", "deals")
        orders = payload.get("orders") or payload.get("pending_orders") or []
        return Snapshot(
            positions=[p for p in positions if p.magic == magic],
            deals=[d for d in deals if d.magic == magic],
            orders=[o for o in orders if isinstance(o, dict) and o.get("magic") == magic],
        )

    async def bars(
        self, broker_symbol: str, timeframe: str, from_date: str, to_date: str
    ) -> list[dict[str, Any]]:
        """``GET /fetch_data_range``: the gateway's rows of ``timeframe`` bars (``M1`` ... ``D1``)
        opened from ``from_date`` to ``to_date`` (ISO-8601 UTC: bar endpoints speak UTC, not the
        server's clock), oldest first; read by :mod:`qkt.feeds.warmup`. A gateway without the
        endpoint raises :class:`Unsupported`."""
        path = "/fetch_data_range"
        params = {"symbol": broker_symbol, "timeframe": timeframe}
        payload = await self._get(path, {**params, "from_date": from_date, "to_date": to_date})
        rows = payload.get("bars") if isinstance(payload, dict) else payload
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise GatewayError(_diag(self.base_url, path, "expected a list of bars"))
        return rows

    # ------------------------------------------------------------ writes (sent once)
    async def _post(self, path: str, body: dict[str, Any], key: str | None = None) -> Outcome:
        headers = {"Idempotency-Key": key} if key else {}
        try:
            response = await self._http.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return write_failure(exc)
        return write_outcome(response)

    async def order(
        self,
        *,
        symbol: str,
        side: Literal["buy", "sell"],
        volume: Decimal,
        magic: int,
        client_order_id: str,
        comment: str,
        deviation: int,
        sl: Decimal | None = None,
        tp: Decimal | None = None,
    ) -> Outcome:
        """``POST /order``, the one endpoint that deduplicates: its ``Idempotency-Key`` is the
        client id (both must match, 1-128 characters)."""
        body: dict[str, Any] = {
            "symbol": symbol,
            "volume": _plain(volume),
            "type": side.upper(),
            "deviation": deviation,
            "magic": magic,
            "client_order_id": client_order_id,
            "comment": comment,
        }
        if sl is not None:
            body["sl"] = _plain(sl)
        if tp is not None:
            body["tp"] = _plain(tp)
        return await self._post("/order", body, client_order_id)

    async def close_position(self, ticket: int) -> Outcome:
        """Close the whole position (gateways ignore a volume here, and deduplicate nothing)."""
        return await self._post("/close_position", {"position": {"ticket": ticket}})

    async def close_partial(self, ticket: int, volume: Decimal) -> Outcome:
        """Close ``volume`` (below the position's) of a position."""
        return await self._post(
            "/position_close_partial", {"ticket": ticket, "volume": _plain(volume)}
        )

    async def modify_sl_tp(
        self,
        ticket: int,
        *,
        sl: Decimal | None = None,
        tp: Decimal | None = None,
        clear_sl: bool = False,
        clear_tp: bool = False,
    ) -> Outcome:
        """Change only the levels given: an omitted level is kept by the gateway, and clearing
        one takes ``clear_sl``/``clear_tp`` (a null level is refused)."""
        body: dict[str, Any] = {"position": ticket}
        if sl is not None:
            body["sl"] = _plain(sl)
        if tp is not None:
            body["tp"] = _plain(tp)
        if clear_sl:
            body["clear_sl"] = True
        if clear_tp:
            body["clear_tp"] = True
        return await self._post("/modify_sl_tp", body)


_TLS: list[ssl.SSLContext] = []


def _tls() -> ssl.SSLContext:
    """One TLS context (certificates verified against certifi's bundle, as httpx does by
    default) for every gateway client of the process: building one reads the CA bundle, tens
    of ms, and the daemon makes a client for each session it starts."""
    if not _TLS:
        _TLS.append(httpx.create_ssl_context())
    return _TLS[0]


# ---------------------------------------------------------------- reading answers (no I/O)
def _diag(base_url: str, path: str, message: str) -> Any:
    return error("gateway-unavailable", f"{base_url}{path}: {message}")


def read_answer(base_url: str, path: str, response: httpx.Response) -> Any:
    """The ``data`` of a read's answer. 5xx, 429 and unreadable JSON are worth another attempt
    (:class:`_Retry`); any other 4xx is final (:class:`GatewayError`)."""
    if response.status_code >= 500 or response.status_code == 429:
        raise _Retry(f"HTTP {response.status_code}")
    if response.status_code in (404, 405) and path in OPTIONAL_ENDPOINTS:
        raise Unsupported(_diag(base_url, path, f"not served (HTTP {response.status_code})"))
    if response.status_code >= 400:
        raise GatewayError(
            _diag(base_url, path, f"HTTP {response.status_code}: {_error_text(response)}")
        )
    try:
        return _unwrap(response.json())
    except ValueError:
        raise _Retry("malformed JSON") from None


def parse_model(base_url: str, path: str, model: type[Any], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GatewayError(
            _diag(base_url, path, f"unexpected answer ({where}: {first['msg']})")
        ) from None


def write_failure(exc: httpx.HTTPError) -> Outcome:
    """A write that got no answer: refused before sending means nothing was placed; anything
    after the request left (read timeout, dropped connection) leaves the outcome unknown."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return Outcome(status="rejected", message=f"gateway unreachable, nothing sent ({exc})")
    return Outcome(
        status="unknown",
        message=f"no answer after sending ({type(exc).__name__})",
        answered=False,
    )


def write_outcome(response: httpx.Response) -> Outcome:
    """A write's answer, as the gateway means it (reference/mt5-gateway.md, "POST /order"):

    - 2xx: ``done`` on a success retcode, else ``rejected`` with the retcode;
    - 400 (the terminal's pre-check or a bad request, with ``details.retcode`` when the terminal
      refused), 401/403, 404, 422, 409 requote: ``rejected`` — nothing was placed;
    - 423: ``rejected`` — trading halted by the gateway's kill switch;
    - 503: ``rejected`` — MT5 unavailable, answered before anything reached the terminal;
    - 409 ``idempotency_in_progress`` / ``idempotency_conflict``: ``unknown`` — an order with this
      key exists or is being placed;
    - 502 ``unknown_outcome``, 500 and other 5xx, an unreadable 2xx body: ``unknown``."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    body = payload if isinstance(payload, dict) else {}
    result = TradeResult()
    if isinstance(body.get("result"), dict):
        try:
            result = TradeResult.model_validate(body["result"])
        except ValidationError:
            result = TradeResult()
    text = _error_text(response) if payload is not None else response.text[:200]
    kind = str(body.get("error_type") or "")
    status = response.status_code
    if status == 409 and (kind.startswith("idempotency") or "idempotency" in text.lower()):
        return Outcome(
            status="unknown",
            result=result,
            message=f"HTTP 409 {kind}: {text}",
            answered="progress" not in kind and "progress" not in text.lower(),
        )
    if status == 423:
        return Outcome(
            status="rejected",
            result=result,
            message=f"trading halted by the gateway's kill switch (HTTP 423): {text}",
        )
    if status == 503:
        return Outcome(
            status="rejected",
            result=result,
            message=f"MT5 unavailable, nothing sent (HTTP 503): {text}",
        )
    if status in (401, 403):
        return Outcome(
            status="rejected", message=f"the gateway refused the api_key (HTTP {status})"
        )
    if 400 <= status < 500:
        details = body.get("details")
        retcode = details.get("retcode") if isinstance(details, dict) else None
        if retcode is None and result.retcode != -1:
            retcode = result.retcode
        code = f", retcode {retcode}" if retcode is not None else ""
        return Outcome(status="rejected", result=result, message=f"HTTP {status}{code}: {text}")
    if status >= 500 or payload is None or not (200 <= status < 300):
        return Outcome(status="unknown", result=result, message=f"HTTP {status}: {text}")
    if result.retcode in SUCCESS_RETCODES:
        return Outcome(status="done", result=result, message=result.comment)
    return Outcome(status="rejected", result=result, message=f"retcode {result.retcode}: {text}")


def _error_text(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(payload, dict):
        if payload.get("error"):
            return str(payload["error"])[:200]
        result = payload.get("result")
        if isinstance(result, dict) and result.get("comment"):
            return str(result["comment"])[:200]
    return str(payload)[:200]
