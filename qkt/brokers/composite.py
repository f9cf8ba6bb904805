"""Routes each order to the broker its stream's route names (SPEC §7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qkt.engine.events import OrderRequest


class CompositeBroker:
    """One broker per profile; requests are routed by their stream's label through the plan."""

    def __init__(self, brokers: Mapping[str, Any], route_of_label: Mapping[str, str]) -> None:
        self.brokers = dict(brokers)  # profile -> broker
        self.route_of_label = {k.lower(): v for k, v in route_of_label.items()}  # label -> profile
        self.name = "composite"
        caps: set[str] = set()
        for broker in self.brokers.values():
            caps |= set(broker.capabilities)
        self.capabilities = frozenset(caps)

    def broker_for(self, label: str) -> Any:
        return self.brokers[self.route_of_label[label.lower()]]

    def submit(self, request: OrderRequest) -> Any:
        return self.broker_for(request.label).submit(request)

    def cancel(self, client_id: str) -> Any:
        return any(b.cancel(client_id) for b in self.brokers.values())

    def close_position(self, label: str, symbol: str) -> Any:
        return self.broker_for(label).close_position(label, symbol)
