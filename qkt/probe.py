"""``qkt validate --probe``: ask each routed gateway for its readiness and account.

Only profiles some route uses are probed, each once. An unreachable or not-ready gateway is a
strict-sensitive warning (an error in strict mode); an account that differs from the profile's
``expected_*`` fields is always an error.
"""

from __future__ import annotations

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

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "target": self.target,
            "ready": self.ready,
            "login": self.login,
            "server": self.server,
            "trade_mode": self.trade_mode,
        }


def probe_routes(
    routes: Iterable[Route], registry: BrokerRegistry
) -> tuple[list[Probe], list[Diagnostic]]:
    from qkt.brokers.mt5.broker import account_mismatches, trade_mode
    from qkt.brokers.mt5.client import GatewayClient, GatewayError

    probes: list[Probe] = []
    diags: list[Diagnostic] = []
    seen: set[str] = set()
    for route in routes:
        if route.type != "mt5" or route.profile in seen:
            continue
        seen.add(route.profile)
        entry = registry.resolve(route.profile)
        if entry is None:
            continue
        profile = entry.profile
        values = profile.values
        client = GatewayClient(
            route.target,
            api_key=profile.secret("api_key"),
            timeout_ms=int(values.get("http_timeout_ms") or 5000),
            retry_attempts=1,
        )
        try:
            if not client.ready():
                probes.append(Probe(route.profile, route.target, False))
                diags.append(
                    warning(
                        "gateway-unreachable",
                        f"profile `{route.profile}`: gateway {route.target} is not ready or not reachable",
                        strict=True,
                    )
                )
                continue
            try:
                account = client.account()
            except GatewayError as exc:
                probes.append(Probe(route.profile, route.target, True))
                diags.append(
                    warning("gateway-unreachable", exc.diagnostics[0].message, strict=True)
                )
                continue
            mode = trade_mode(account)
            probes.append(
                Probe(route.profile, route.target, True, account.login, account.server, mode)
            )
            diags.extend(account_mismatches(route.profile, route.target, values, account))
        finally:
            client.close()
    return probes, diags
