"""The symbols the simulated venue lists, each both a linear USDT perpetual and a spot pair, with
the filters ``/v5/market/instruments-info`` publishes (values modelled on Bybit's own)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from qkt.sim.bybit.common import fmt, places

SYMBOL = re.compile(r"[A-Z0-9]{2,20}USDT")
LAUNCH_MS = "1584230400000"  # launchTime of every listed contract
TAKER_LINEAR = Decimal("0.00055")
MAKER_LINEAR = Decimal("0.0002")
TAKER_SPOT = Decimal("0.001")
MAKER_SPOT = Decimal("0.001")


@dataclass(frozen=True)
class Spec:
    """One symbol: ``tick``/``qty_step``/... are the linear contract's filters, ``spot_*`` and
    ``base_precision``... the spot pair's. Quotes follow ``tick`` (the coarser grid)."""

    symbol: str
    price: Decimal  # where quotes start
    tick: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal  # limit orders
    max_mkt_qty: Decimal  # market orders
    min_notional: Decimal
    max_leverage: Decimal
    spot_tick: Decimal
    base_precision: Decimal
    quote_precision: Decimal
    min_order_amt: Decimal
    max_limit_qty: Decimal
    max_market_qty: Decimal

    @property
    def base(self) -> str:
        return self.symbol[: -len("USDT")]

    def price_text(self, value: Decimal) -> str:
        return fmt(value, self.tick)

    def qty_text(self, value: Decimal) -> str:
        return fmt(value, self.qty_step)


def _spec(symbol: str, *values: str) -> Spec:
    return Spec(symbol, *(Decimal(v) for v in values))


# price, tick, step, min, max limit, max market, min notional, leverage,
# spot tick, basePrecision, quotePrecision, minOrderAmt, maxLimitOrderQty, maxMarketOrderQty
KNOWN = {
    "BTCUSDT": ("86500.00", "0.10", "0.001", "0.001", "1190.000", "500.000", "5", "100.00",
                "0.01", "0.000001", "0.00000001", "5", "71.73956243", "11.4574639"),
    "ETHUSDT": ("3200.00", "0.01", "0.01", "0.01", "7240.00", "724.00", "5", "100.00",
                "0.01", "0.00001", "0.0000001", "5", "1229.2336343", "232.1754581"),
    "SOLUSDT": ("150.000", "0.010", "0.1", "0.1", "79770.0", "5000.0", "5", "100.00",
                "0.01", "0.001", "0.000001", "5", "12970.767", "1864.293"),
    "XRPUSDT": ("2.5000", "0.0001", "1", "1", "1000000", "290000", "5", "75.00",
                "0.0001", "0.01", "0.000001", "5", "720000.21", "201000.11"),
}  # fmt: skip
OTHER = ("100.00", "0.01", "0.1", "0.1", "100000.0", "10000.0", "5", "50.00",
         "0.01", "0.001", "0.000001", "5", "100000.000", "10000.000")  # fmt: skip


def spec_for(symbol: str, price: Decimal | None = None) -> Spec:
    """The listing of ``symbol`` (``XXXUSDT``): Bybit's figures for the well-known ones, generic
    ones otherwise; ``price`` moves where its quotes start."""
    if not SYMBOL.fullmatch(symbol):
        raise ValueError(f"{symbol!r} is not a USDT symbol like BTCUSDT")
    spec = _spec(symbol, *KNOWN.get(symbol, OTHER))
    if price is not None:
        spec = _spec(symbol, str(price), *KNOWN.get(symbol, OTHER)[1:])
    return spec


def linear_row(spec: Spec) -> dict[str, Any]:
    return {
        "symbol": spec.symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": spec.base,
        "quoteCoin": "USDT",
        "launchTime": LAUNCH_MS,
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(places(spec.tick)),
        "leverageFilter": {
            "minLeverage": "1",
            "maxLeverage": format(spec.max_leverage, "f"),
            "leverageStep": "0.01",
        },
        "priceFilter": {
            "minPrice": spec.price_text(spec.tick),
            "maxPrice": spec.price_text(spec.price * 20),
            "tickSize": format(spec.tick, "f"),
        },
        "lotSizeFilter": {
            "maxOrderQty": format(spec.max_qty, "f"),
            "minOrderQty": format(spec.min_qty, "f"),
            "qtyStep": format(spec.qty_step, "f"),
            "postOnlyMaxOrderQty": format(spec.max_qty, "f"),
            "maxMktOrderQty": format(spec.max_mkt_qty, "f"),
            "minNotionalValue": format(spec.min_notional, "f"),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "settleCoin": "USDT",
        "copyTrading": "both",
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "isPreListing": False,
        "preListingInfo": None,
    }


def spot_row(spec: Spec) -> dict[str, Any]:
    return {
        "symbol": spec.symbol,
        "baseCoin": spec.base,
        "quoteCoin": "USDT",
        "innovation": "0",
        "status": "Trading",
        "marginTrading": "utaOnly",
        "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": format(spec.base_precision, "f"),
            "quotePrecision": format(spec.quote_precision, "f"),
            "minOrderQty": format(spec.base_precision, "f"),  # deprecated, not checked
            "maxOrderQty": format(spec.max_limit_qty, "f"),
            "minOrderAmt": format(spec.min_order_amt, "f"),
            "maxOrderAmt": "2000000",
            "maxLimitOrderQty": format(spec.max_limit_qty, "f"),
            "maxMarketOrderQty": format(spec.max_market_qty, "f"),
        },
        "priceFilter": {"tickSize": format(spec.spot_tick, "f")},
        "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.05"},
    }
