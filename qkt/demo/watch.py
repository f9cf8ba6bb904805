"""What changed since the last look: the order requests that reached the simulator
(``GET /_sim/orders``, the whole list each time, new ones by position) and each deployment's
state, positions and fills (``GET /v1/deployments/NAME``, what ``qkt status NAME --json``
prints; the fills are its last 20, new ones told apart by what they are)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qkt.daemon.client import deployment_path
from qkt.demo.events import Child, Event, Fill, GatewayOrder, Position, StateChange

if TYPE_CHECKING:
    import httpx

    from qkt.daemon.client import DaemonClient


class Watcher:
    def __init__(
        self, sim: httpx.Client, daemon: DaemonClient, name: str, started: list[dict[str, Any]]
    ) -> None:
        self.sim = sim
        self.daemon = daemon
        self.name = name  # the portfolio: every child in one answer
        self.children = {
            d["name"]: Child(d["name"], d.get("state", "starting"), d.get("reason"))
            for d in started
        }
        self._orders = 0
        self._fills: set[tuple[str, ...]] = set()

    def poll(self) -> list[Event]:
        """New gateway orders first, then the fills and state changes the daemon reports (read
        before the orders: every order a fill answers is then already among them)."""
        deployments = self._deployments()
        return [*self._gateway(), *deployments]

    @property
    def done(self) -> bool:
        return all(c.final for c in self.children.values())

    def view(self) -> list[Child]:
        return list(self.children.values())

    def _gateway(self) -> list[GatewayOrder]:
        answer = self.sim.get("/_sim/orders").json()
        received: list[dict[str, Any]] = answer.get("data") or []
        new = received[self._orders :]
        self._orders = len(received)
        orders = []
        for item in new:
            body = item.get("body") or {}
            client_id = str(body.get("client_order_id") or item.get("idempotency_key") or "")
            order = GatewayOrder(
                deployment=_owner(client_id, self.children),
                side=str(body.get("type", "?")),
                volume=_text(body.get("volume")) or "?",
                symbol=str(body.get("symbol", "?")),
                sl=_text(body.get("sl")),
                tp=_text(body.get("tp")),
                client_id=client_id,
            )
            if order.deployment in self.children:
                self.children[order.deployment].orders += 1
            orders.append(order)
        return orders

    def _deployments(self) -> list[Event]:
        answer = self.daemon.request("GET", deployment_path(self.name))
        events: list[Event] = []
        fills: list[Fill] = []
        for d in answer.get("deployments") or []:
            child = self.children.setdefault(d["name"], Child(d["name"]))
            for f in d.get("fills") or []:
                key = tuple(str(f.get(k)) for k in ("client_id", "time", "side", "reason", "price"))
                if (child.name, *key) in self._fills:
                    continue
                self._fills.add((child.name, *key))
                child.fills += 1
                fills.append(_fill(child.name, f))
            child.positions = [_position(p) for p in d.get("positions") or []]
            child.balance = str(d.get("balance", "-"))
            child.equity = str(d.get("equity", "-"))
            if d["state"] != child.state or d.get("reason") != child.reason:
                child.state, child.reason = d["state"], d.get("reason")
                events.append(StateChange(child.name, child.state, child.reason))
        fills.sort(key=lambda f: f.time)
        return [*fills, *events]


def _owner(client_id: str, children: dict[str, Child]) -> str:
    """The deployment a client id belongs to (``<deployment>-<stamp>-<sequence>``)."""
    head = client_id.rsplit("-", 2)[0]
    if head in children:
        return head
    return next((n for n in children if client_id.startswith(f"{n}-")), head)


def _fill(name: str, f: dict[str, Any]) -> Fill:
    return Fill(
        deployment=name,
        time=str(f.get("time", "")),
        side=str(f.get("side", "?")).upper(),
        qty=str(f.get("qty", "?")),
        label=str(f.get("label", "?")),
        symbol=str(f.get("symbol", "?")),
        price=str(f.get("price", "?")),
        reason=str(f.get("reason", "?")),
        route=str(f.get("route", "?")),
        client_id=str(f.get("client_id", "")),
    )


def _position(p: dict[str, Any]) -> Position:
    return Position(
        label=str(p.get("label", "?")),
        symbol=str(p.get("symbol", "?")),
        qty=str(p.get("qty", "0")),
        avg_price=str(p.get("avg_price", "0")),
        unrealized_pnl=str(p.get("unrealized_pnl", "0")),
        realized_pnl=str(p.get("realized_pnl", "0")),
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
