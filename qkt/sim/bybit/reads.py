"""The ``result`` objects of the read endpoints, from a :class:`BybitState` and the request's
(decoded) query parameters; a parameter Bybit would refuse raises :class:`Refused`.

Lists come newest first. ``/v5/order/realtime``: open orders (``openOnly`` 0, the default), the
last 500 closed ones (``openOnly`` 1), or, by ``orderId``/``orderLinkId``, one order open or
closed. ``/v5/order/history`` and ``/v5/execution/list``: a window of at most 7 days (the last
7 days by default); an ``orderId``/``orderLinkId`` given to ``execution/list`` overrides the
other filters. ``/v5/market/kline``: the newest ``limit`` bars of the ``start``..``end`` window.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from qkt.sim.bybit.common import (
    DAY_MS,
    ZERO,
    Refused,
    category_param,
    int_param,
    num,
    page,
    params_error,
)
from qkt.sim.bybit.instruments import Spec, linear_row, spot_row
from qkt.sim.bybit.market import INTERVALS
from qkt.sim.bybit.records import FEE_PLACES, Order
from qkt.sim.bybit.state import BybitState

Query = Mapping[str, str]
WINDOW_MS = 7 * DAY_MS
MAX_TIME = 2**62


def _spec(state: BybitState, symbol: str | None, required: bool = True) -> Spec | None:
    if not symbol:
        if required:
            raise params_error("Missing some parameters that must be filled in, symbol")
        return None
    spec = state.specs.get(symbol)
    if spec is None:
        raise params_error("params error: symbol invalid")
    return spec


def _window(q: Query, now: int) -> tuple[int, int]:
    start = int_param(q.get("startTime"), "startTime", -1, 0, MAX_TIME)
    end = int_param(q.get("endTime"), "endTime", -1, 0, MAX_TIME)
    if start < 0 and end < 0:
        end, start = now, now - WINDOW_MS
    elif start < 0:
        start = end - WINDOW_MS
    elif end < 0:
        end = start + WINDOW_MS
    if end < start or end - start > WINDOW_MS:
        raise params_error("The time range between startTime and endTime cannot exceed 7 days")
    return start, end


def _money(value: Decimal) -> str:
    return num(value.quantize(FEE_PLACES))


# ------------------------------------------------------------------ market data
def server_time(state: BybitState) -> dict[str, Any]:
    ns = state.now_ns()
    return {"timeSecond": str(ns // 10**9), "timeNano": str(ns)}


def tickers(state: BybitState, q: Query) -> dict[str, Any]:
    category = category_param(q.get("category"))
    symbol = q.get("symbol")
    if symbol and symbol not in state.specs:
        raise params_error("Not supported symbols")
    rows = []
    with state.lock:
        for spec in state.specs.values():
            if symbol and spec.symbol != symbol:
                continue
            quote = state.market.quotes[spec.symbol]
            prev, high, low, volume, turnover = state.market.day_stats(spec.symbol)
            p = spec.price_text
            size = spec.qty_text(spec.qty_step * 250)
            row = {
                "symbol": spec.symbol,
                "bid1Price": p(quote.bid),
                "bid1Size": size,
                "ask1Price": p(quote.ask),
                "ask1Size": size,
                "lastPrice": p(quote.last),
                "prevPrice24h": p(prev),
                "price24hPcnt": num(((quote.last - prev) / prev).quantize(Decimal("0.000001"))),
                "highPrice24h": p(high),
                "lowPrice24h": p(low),
                "turnover24h": _money(turnover),
                "volume24h": num(volume),
            }
            if category == "linear":
                next_funding = (state.now_ms() // (8 * 3_600_000) + 1) * 8 * 3_600_000
                row |= {
                    "indexPrice": p(quote.last),
                    "markPrice": p(quote.last),
                    "prevPrice1h": p(prev),
                    "openInterest": num(spec.qty_step * 100_000),
                    "openInterestValue": _money(spec.qty_step * 100_000 * quote.last),
                    "fundingRate": "0.0001",
                    "nextFundingTime": str(next_funding),
                    "predictedDeliveryPrice": "",
                    "basisRate": "",
                    "deliveryFeeRate": "",
                    "deliveryTime": "0",
                    "basis": "",
                }
            else:
                row["usdIndexPrice"] = p(quote.last)
            rows.append(row)
    return {"category": category, "list": rows}


def instruments(state: BybitState, q: Query) -> dict[str, Any]:
    category = category_param(q.get("category"))
    symbol = q.get("symbol")
    status = q.get("status") or "Trading"
    render = linear_row if category == "linear" else spot_row
    rows = [
        render(spec)
        for spec in state.specs.values()
        if (not symbol or spec.symbol == symbol) and status == "Trading"
    ]
    return {"category": category, "list": rows, "nextPageCursor": ""}


def kline(state: BybitState, q: Query) -> dict[str, Any]:
    category = category_param(q.get("category") or "linear")
    spec = _spec(state, q.get("symbol"))
    assert spec is not None
    interval = q.get("interval")
    if interval not in INTERVALS:
        raise params_error("Invalid period!")
    start = int_param(q.get("start"), "start", 0, 0, MAX_TIME)
    end = int_param(q.get("end"), "end", MAX_TIME, 0, MAX_TIME)
    limit = int_param(q.get("limit"), "limit", 200, 1, 1000)
    with state.lock:
        bars = state.market.candles(spec.symbol, interval)
    chosen = [b for b in bars if start <= b[0] <= end][-limit:]
    p = spec.price_text
    rows = [
        [str(t), p(o), p(h), p(lo), p(c), num(v), _money(v * c)]
        for t, o, h, lo, c, v in reversed(chosen)
    ]
    return {"symbol": spec.symbol, "category": category, "list": rows}


# ------------------------------------------------------------------ orders and fills
def _orders(state: BybitState, category: str, q: Query) -> list[tuple[int, Order]]:
    symbol, base, settle = q.get("symbol"), q.get("baseCoin"), q.get("settleCoin")
    kind = q.get("orderFilter")
    out = []
    for index, order in enumerate(state.ledger.orders):
        if order.category != category:
            continue
        if symbol and order.symbol != symbol:
            continue
        if base and order.spec.base != base:
            continue
        if settle and settle != "USDT":
            continue
        if kind == "Order" and order.stop_order_type:
            continue
        if kind in ("StopOrder", "tpslOrder") and not order.stop_order_type:
            continue
        out.append((index, order))
    return out


def _by_ids(pool: list[tuple[int, Order]], q: Query) -> list[tuple[int, Order]] | None:
    order_id, link = q.get("orderId"), q.get("orderLinkId")
    if order_id:
        return [(i, o) for i, o in pool if o.order_id == order_id]
    if link:
        return [(i, o) for i, o in pool if o.link_id == link]
    return None


def _listed(pool: list[tuple[int, Order]], category: str, q: Query, limit: int) -> dict[str, Any]:
    newest = sorted(pool, key=lambda io: (io[1].created, io[0]), reverse=True)
    rows, cursor = page([o.row() for _, o in newest], q.get("cursor"), limit)
    return {"list": rows, "nextPageCursor": cursor, "category": category}


def realtime(state: BybitState, q: Query) -> dict[str, Any]:
    category = category_param(q.get("category"))
    if category == "linear" and not any(q.get(k) for k in ("symbol", "baseCoin", "settleCoin")):
        raise params_error(
            "Missing some parameters that must be filled in, symbol or settleCoin or baseCoin"
        )
    open_only = int_param(q.get("openOnly"), "openOnly", 0, 0, 2)
    limit = int_param(q.get("limit"), "limit", 20, 1, 50)
    with state.lock:
        pool = _orders(state, category, q)
        opened = [(i, o) for i, o in pool if o.is_open]
        closed = [(i, o) for i, o in pool if not o.is_open][-500:]
        found = _by_ids(opened + closed, q)
        chosen = found if found is not None else opened if open_only == 0 else closed
        return _listed(chosen, category, q, limit)


def history(state: BybitState, q: Query) -> dict[str, Any]:
    category = category_param(q.get("category"))
    limit = int_param(q.get("limit"), "limit", 20, 1, 50)
    status = q.get("orderStatus")
    with state.lock:
        start, end = _window(q, state.now_ms())
        pool = [
            (i, o)
            for i, o in _orders(state, category, q)
            if start <= o.created <= end and (not status or o.status == status)
        ]
        found = _by_ids(pool, q)
        return _listed(pool if found is None else found, category, q, limit)


def executions(state: BybitState, q: Query) -> dict[str, Any]:
    category = category_param(q.get("category"))
    limit = int_param(q.get("limit"), "limit", 50, 1, 100)
    order_id, link = q.get("orderId"), q.get("orderLinkId")
    symbol, exec_type = q.get("symbol"), q.get("execType")
    with state.lock:
        start, end = _window(q, state.now_ms())
        rows = []
        for cat, row in state.ledger.executions:
            if cat != category:
                continue
            if order_id or link:
                if (order_id and row["orderId"] != order_id) or (
                    not order_id and row["orderLinkId"] != link
                ):
                    continue
            elif (symbol and row["symbol"] != symbol) or not (start <= int(row["execTime"]) <= end):
                continue
            if exec_type and row["execType"] != exec_type:
                continue
            rows.append(row)
    newest = [r for _, r in sorted(enumerate(rows), key=lambda ir: (int(ir[1]["execTime"]),
                                                                    ir[0]), reverse=True)]  # fmt: skip
    listed, cursor = page(newest, q.get("cursor"), limit)
    return {"list": listed, "nextPageCursor": cursor, "category": category}


# ------------------------------------------------------------------ positions and wallet
def positions(state: BybitState, q: Query) -> dict[str, Any]:
    category = category_param(q.get("category"), ("linear",))
    symbol, settle = q.get("symbol"), q.get("settleCoin")
    if not symbol and not settle:
        raise params_error("Missing some parameters that must be filled in, symbol or settleCoin")
    limit = int_param(q.get("limit"), "limit", 20, 1, 200)
    book = state.linear.positions
    with state.lock:
        if symbol:
            spec = _spec(state, symbol)
            assert spec is not None
            rows = [book.row(book.get(spec.symbol))]
        else:
            held = [p for p in book.book.values() if p.size and settle == "USDT"]
            rows = [book.row(p) for p in held]
    listed, cursor = page(rows, q.get("cursor"), limit)
    return {"list": listed, "nextPageCursor": cursor, "category": category}


def wallet(state: BybitState, q: Query) -> dict[str, Any]:
    account = q.get("accountType")
    if account != "UNIFIED":
        raise Refused(10001, "accountType only support UNIFIED.")
    wanted = [c for c in (q.get("coin") or "").split(",") if c]
    ledger, book = state.ledger, state.linear.positions
    with state.lock:
        upl, im, order_im = book.total_upl(), book.total_im(), state.linear.order_margin()
        mm = sum((p.size * p.avg * Decimal("0.005") for p in book.book.values()), ZERO)
        coins = []
        total_equity = total_wallet = ZERO
        for coin in sorted(set(ledger.coins) | set(ledger.locked) | set(wanted)):
            balance = ledger.coins.get(coin, ZERO)
            locked = ledger.locked.get(coin, ZERO)
            usdt = coin == "USDT"
            coin_upl = upl if usdt else ZERO
            if not wanted and balance == 0 and locked == 0 and coin_upl == 0:
                continue
            if wanted and coin not in wanted:
                continue
            price = Decimal(1) if usdt else _coin_price(state, coin)
            equity = balance + coin_upl
            total_equity += equity * price
            total_wallet += balance * price
            coins.append({
                "coin": coin,
                "equity": _money(equity),
                "usdValue": _money(equity * price),
                "walletBalance": _money(balance),
                "free": "",
                "locked": _money(locked),
                "spotHedgingQty": "0",
                "borrowAmount": "0",
                "availableToWithdraw": "",
                "availableToBorrow": "",
                "accruedInterest": "0",
                "totalOrderIM": _money(order_im if usdt else ZERO),
                "totalPositionIM": _money(im if usdt else ZERO),
                "totalPositionMM": _money(mm if usdt else ZERO),
                "unrealisedPnl": _money(coin_upl),
                "cumRealisedPnl": _money(ledger.realised.get(coin, ZERO)),
                "bonus": "0",
                "marginCollateral": True,
                "collateralSwitch": True,
            })  # fmt: skip
        margin = total_wallet + upl
        initial = im + order_im
        account_row = {
            "accountType": "UNIFIED",
            "accountIMRate": _money(initial / margin) if margin > 0 else "0",
            "accountMMRate": _money(mm / margin) if margin > 0 else "0",
            "accountLTV": "0",
            "totalEquity": _money(total_equity),
            "totalWalletBalance": _money(total_wallet),
            "totalMarginBalance": _money(margin),
            "totalAvailableBalance": _money(margin - initial),
            "totalPerpUPL": _money(upl),
            "totalInitialMargin": _money(initial),
            "totalMaintenanceMargin": _money(mm),
            "coin": coins,
        }
    return {"list": [account_row]}


def _coin_price(state: BybitState, coin: str) -> Decimal:
    quote = state.market.quotes.get(f"{coin}USDT")
    return ZERO if quote is None else quote.bid


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def query_api(state: BybitState, api_key: str) -> dict[str, Any]:
    """``/v5/user/query-api``: the key's facts (never its secret)."""
    return {
        "id": "13770661",
        "note": "qkt simulator",
        "apiKey": api_key,
        "readOnly": 1 if state.read_only else 0,
        "secret": "",
        "permissions": {
            "ContractTrade": [] if state.read_only else ["Order", "Position"],
            "Spot": [] if state.read_only else ["SpotTrade"],
            "Wallet": ["AccountTransfer", "SubMemberTransfer"],
            "Options": [],
            "Derivatives": [],
            "CopyTrading": [],
            "BlockTrade": [],
            "Exchange": [],
            "NFT": [],
            "Affiliate": [],
            "Earn": [],
        },
        "ips": ["*"],
        "type": 1,
        "deadlineDay": 83,
        "expiredAt": _iso(state.now_ms() + 83 * DAY_MS),
        "createdAt": "2025-01-01T00:00:00Z",
        "unified": 0,
        "uta": 1,
        "userID": 24617703,
        "inviterID": 0,
        "vipLevel": "No VIP",
        "mktMakerLevel": "0",
        "affiliateID": 0,
        "rsaPublicKey": "",
        "isMaster": True,
        "parentUid": "0",
        "kycLevel": "LEVEL_DEFAULT",
        "kycRegion": "",
    }
