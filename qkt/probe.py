"""``qkt validate --probe``: ask each routed gateway for its readiness and account.

Only profiles some route uses are probed, each once. An unreachable or not-ready gateway is a
strict-sensitive warning (an error in strict mode); an account that differs from the profile's
``expected_*`` fields is always an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from qkt.brokers.registry import BrokerRegistry
from qkt.diagnostics import Diagnostic, warning
from qkt.routing import Route


@dataclass(frozen=True, slots=True)
class Probe:
    profile: str
    target: str
    ready: bool
    login: int | None = None
    server: str | None = None
    trade_mode: str | None = None
    margin_mode: str | None = None  # netting | hedging

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "target": self.target,
            "ready": self.ready,
            "login": self.login,
            "server": self.server,
            "trade_mode": self.trade_mode,
            "margin_mode": self.margin_mode,
        }


def probe_routes(
    routes: Iterable[Route], registry: BrokerRegistry
) -> tuple[list[Probe], list[Diagnostic]]:
    """Probe every routed MT5 profile once; the gateways are asked side by side."""
    targets: dict[str, tuple[Route, Any]] = {}
    for route in routes:
        entry = registry.resolve(route.profile)
        if route.type == "mt5" and entry is not None:
            targets.setdefault(route.profile, (route, entry.profile))
    if not targets:
        return [], []

    async def probe_all() -> list[tuple[Probe, list[Diagnostic]]]:
        return await asyncio.gather(*(_probe(r, p) for r, p in targets.values()))

    probes: list[Probe] = []
    diags: list[Diagnostic] = []
    for probe, found in asyncio.run(probe_all()):
        probes.append(probe)
        diags.extend(found)
    return probes, diags


async def _probe(route: Route, profile: Any) -> tuple[Probe, list[Diagnostic]]:
    from qkt.brokers.mt5.broker import HEDGING, account_mismatches, trade_mode
    from qkt.brokers.mt5.client import GatewayClient, GatewayError

    values = profile.values
    client = GatewayClient(
        route.target,
        api_key=profile.secret("api_key"),
        timeout_ms=int(values.get("http_timeout_ms") or 5000),
        retry_attempts=1,
    )
    try:
        problem = await client.readiness()
        if problem is not None:
            return Probe(route.profile, route.target, False), [
                warning(
                    "gateway-unreachable",
                    f"profile `{route.profile}`: gateway {route.target} {problem}",
                    strict=True,
                )
            ]
        try:
            account = await client.account()
        except GatewayError as exc:
            return Probe(route.profile, route.target, True), [
                warning("gateway-unreachable", exc.diagnostics[0].message, strict=True)
            ]
        mode = trade_mode(account)
        positions = "hedging" if account.margin_mode == HEDGING else "netting"
        probe = Probe(
            route.profile, route.target, True, account.login, account.server, mode, positions
        )
        return probe, account_mismatches(route.profile, route.target, values, account)
    finally:
        await client.aclose()
