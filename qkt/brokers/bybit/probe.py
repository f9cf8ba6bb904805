"""``qkt validate --probe`` for a Bybit profile: read-only questions, nothing is ever sent.

The clock (``/v5/market/time``: an unreachable venue is a strict-sensitive warning,
``gateway-unreachable``), the key (``/v5/user/query-api``: refused → ``gateway-auth-refused``; read
only, no trade permission for the category, expired, not a unified account → ``venue-refused``),
the position mode of every routed linear symbol (hedge mode → ``venue-refused``) and every routed
symbol's instrument (absent → ``symbol-not-found``, not ``Trading`` → ``symbol-not-tradable``); the
strategies' constant order sizes are then checked against the live lot sizes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from qkt.brokers.bybit.checks import guard_problems
from qkt.brokers.bybit.client import BybitError
from qkt.brokers.bybit.models import Instrument, Position
from qkt.brokers.bybit.venue import BybitVenue
from qkt.diagnostics import Diagnostic, error, warning

REFUSING = {10003, 10004, 10005, 10010}  # key invalid, bad signature, no permission, IP not bound


@dataclass(frozen=True)
class Limits:
    """An instrument's lot sizes, as the order-size checks read them."""

    volume_min: Decimal | None
    volume_step: Decimal | None
    volume_max: Decimal | None


def limits(category: str, inst: Instrument) -> Limits:
    lot = inst.lot_size_filter
    if category == "spot":
        return Limits(lot.base_precision, lot.base_precision, lot.max_market_order_qty)
    return Limits(lot.min_order_qty, lot.qty_step, lot.max_mkt_order_qty)


async def probe(target: Any) -> Any:
    from qkt.probe import Probe as Probed
    from qkt.probe import ProbedAccount, ProbedSymbol, _Answer

    venue = BybitVenue(target.profile)
    client, name, url, category = venue.client, venue.name, venue.url, venue.category
    unasked = tuple(ProbedSymbol(s, b) for b, s in target.symbols.items())
    try:
        try:
            await client.sync_time()
        except BybitError as exc:
            reason = exc.diagnostics[0].message
            return _Answer(
                Probed(name, "bybit", url, "unreachable", symbols=unasked, problem=reason),
                [warning("gateway-unreachable", f"profile `{name}`: {reason}", strict=True)],
                {},
            )
        try:
            key = await client.api_key_info()
        except BybitError as exc:
            reason = exc.diagnostics[0].message
            refused = exc.ret_code in REFUSING or exc.http_status == 401
            code = "gateway-auth-refused" if refused else "gateway-unreachable"
            said = f"profile `{name}`: {reason}"
            diag = (
                error(code, said, hint="check the profile's api_key and api_secret (and testnet)")
                if refused
                else warning(code, said, strict=True)
            )
            answer = Probed(name, "bybit", url, "not-ready", symbols=unasked, problem=reason)
            if refused:
                answer = Probed(
                    name, "bybit", url, "refused", symbols=unasked, problem=reason, refusal=reason
                )
            return _Answer(answer, [diag], {})

        async def one(symbol: str) -> tuple[Instrument | None, list[Position]] | BybitError:
            try:
                inst = await client.instrument(category, symbol)
                listed = inst is not None and category == "linear"  # Bybit: 10001 otherwise
                rows = await client.positions(category, symbol) if listed else []
            except BybitError as exc:
                return exc
            return inst, rows

        answers = await asyncio.gather(*(one(s) for s in target.symbols))
        diags: list[Diagnostic] = []
        symbols: list[ProbedSymbol] = []
        info: dict[str, Limits] = {}
        positions: list[Position] = []
        for (broker_symbol, qkt_symbol), got in zip(target.symbols.items(), answers, strict=True):
            if isinstance(got, BybitError) or got[0] is None:
                why = got.diagnostics[0].message if isinstance(got, BybitError) else "not listed"
                symbols.append(ProbedSymbol(qkt_symbol, broker_symbol, tradable=False))
                diags.append(
                    error(
                        "symbol-not-found",
                        f"profile `{name}`: Bybit {category} has no {broker_symbol} "
                        f"(for {qkt_symbol}): {why}",
                    )
                )
                continue
            inst, rows = got[0], got[1]
            assert inst is not None
            positions += rows
            lots = limits(category, inst)
            tradable = inst.status in ("", "Trading")
            exponent = inst.price_filter.tick_size.normalize().as_tuple().exponent
            digits = -exponent if isinstance(exponent, int) else 0
            symbols.append(
                ProbedSymbol(
                    qkt_symbol, broker_symbol, tradable, lots.volume_min, lots.volume_step,
                    lots.volume_max, max(0, int(digits)),
                )
            )  # fmt: skip
            if tradable:
                info[broker_symbol] = lots
            else:
                diags.append(
                    error(
                        "symbol-not-tradable",
                        f"profile `{name}`: {broker_symbol} (for {qkt_symbol}) is {inst.status} "
                        f"on Bybit {category}, not Trading",
                    )
                )
        refusals = guard_problems(name, url, category, key, positions)
        diags += refusals
        account = ProbedAccount(
            key.user_id or 0,
            "testnet" if "testnet" in url else url,
            "demo" if "testnet" in url or "demo" in url else "real",
            "one-way",
        )
        problems = "; ".join(d.message.split(": ", 1)[-1] for d in diags) or None
        probed = Probed(name, "bybit", url, "ready", account, tuple(symbols), problems)
        return _Answer(probed, diags, dict(info))
    finally:
        await client.aclose()
