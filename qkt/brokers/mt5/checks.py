"""What an mt5-gateway and its terminal accept, checked before anything is sent (no I/O).

The account a profile expects, the volume limits of the venue and of the gateway, and where a
stop-loss or take-profit may stand: an order that would be refused is refused here, with the
reason, instead of by the gateway's 400 (reference/mt5-gateway.md, "What real gateways do").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from qkt.brokers.mt5.client import Account, SymbolInfo
from qkt.brokers.volumes import volume_problems, volume_text
from qkt.diagnostics import Diagnostic, error
from qkt.engine.events import OrderRequest

TRADE_MODES = {0: "demo", 1: "contest", 2: "real"}
HEDGING = 2  # /account margin_mode of a hedging account (0 is netting)
GATEWAY_MAX_VOLUME = Decimal(100)  # the gateway's MAX_ORDER_VOLUME unless overrides say otherwise


def trade_mode(account: Account) -> str:
    return TRADE_MODES.get(account.trade_mode, str(account.trade_mode))


def account_mismatches(profile: str, url: str, values: Any, account: Account) -> list[Diagnostic]:
    """The profile's ``expected_*`` fields the gateway's account does not match."""
    found = []
    for key, actual in (
        ("expected_account_login", account.login),
        ("expected_account_server", account.server),
        ("expected_trade_mode", trade_mode(account)),
    ):
        expected = values.get(key)
        if expected is not None and str(expected) != str(actual):
            found.append(
                error(
                    "account-mismatch",
                    f"profile `{profile}`: gateway {url} is logged in with "
                    f"{key.removeprefix('expected_')} {actual!r}, expected {expected!r}",
                )
            )
    return found


def to_digits(price: Decimal | None, digits: int) -> Decimal | None:
    return None if price is None else price.quantize(Decimal(1).scaleb(-digits))


def volume_problem(qty: Decimal, info: SymbolInfo, gateway_max: Decimal) -> str | None:
    """Why the venue (its ``symbol_info``) or the gateway (its per-order limit) would refuse
    ``qty``, or None."""
    if not qty.is_finite() or qty <= 0:
        return f"volume {qty} is not a positive number"
    if qty > gateway_max and qty <= info.volume_max:
        return (
            f"volume {qty} is above the gateway's limit of {gateway_max} lots per order "
            "(instrument_overrides max_volume raises it where the gateway allows more)"
        )
    found = volume_problems(qty, info.volume_min, info.volume_step, info.volume_max)
    if found:
        problem, limit = found[0]
        return f"volume {qty} {volume_text(problem, limit)}"
    return None


def stops_problem(request: OrderRequest, entry: Decimal, info: SymbolInfo) -> str | None:
    """Why the venue would refuse the order's stops at an expected fill of ``entry``, or None:
    a buy's stop-loss below and take-profit above it, a sell's the other way round, each at
    least the symbol's ``trade_stops_level`` points away."""
    buy = request.side == "buy"
    fill = f"the expected fill {entry} ({'ask' if buy else 'bid'})"
    gap = Decimal(info.trade_stops_level) * (info.point or Decimal(1).scaleb(-info.digits))
    for name, level, below in (
        ("stop-loss", request.stop_loss, buy),
        ("take-profit", request.take_profit, not buy),
    ):
        if level is None:
            continue
        distance = entry - level if below else level - entry
        if distance <= 0:
            return f"{name} {level} is not {'below' if below else 'above'} {fill}"
        if distance < gap:
            return (
                f"{name} {level} is closer to {fill} than the symbol's stops level "
                f"({info.trade_stops_level} points)"
            )
    return None
