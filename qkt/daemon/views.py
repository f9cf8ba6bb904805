"""Deployments as the control API shows them (``qkt.deployments/1``, ``qkt.status/1``, SPEC §5.5):
from the journal's records, and from the running session where there is one. Decimals are
strings, times ISO-8601 UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from qkt.daemon import paperstate
from qkt.daemon.connectivity import when
from qkt.daemon.eventlog import fill_json, money
from qkt.daemon.journal import Journal
from qkt.daemon.models import (
    BrokerOut,
    DeploymentOut,
    DeploymentState,
    OrderOut,
    PositionOut,
    RouteOut,
    StatusOut,
)
from qkt.daemon.records import Deployment
from qkt.routing import Route

ZERO = Decimal(0)


def params_out(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: money(v) if isinstance(v, Decimal) else v for k, v in params.items()}


def routes_out(routes: Iterable[Route]) -> list[RouteOut]:
    return [RouteOut(**route.to_json()) for route in routes]


def deployment_out(
    spec: Deployment,
    state: DeploymentState,
    reason: str | None,
    since: datetime,
    routes: Iterable[Route],
) -> DeploymentOut:
    return DeploymentOut(
        name=spec.name,
        portfolio=spec.portfolio,
        strategy=spec.strategy,
        file=spec.file,
        state=state,
        reason=reason,
        since=when(since),
        strict=spec.strict,
        params=params_out(spec.params),
        routes=routes_out(routes),
    )


def status_out(
    base: DeploymentOut,
    journal: Journal,
    session: Any,
    brokers: list[BrokerOut],
    warmup: str | None,
    notes: list[str],
) -> StatusOut:
    """``base`` with its positions, open orders, last fills, money and brokers."""
    name = base.name
    orders = [
        OrderOut(
            client_id=r.order.client_id,
            alias=r.order.alias,
            label=r.order.label,
            symbol=r.order.symbol,
            side=r.order.side,
            qty=money(r.order.qty),
            state=r.state,
        )
        for r in journal.open_orders(name)
    ]
    fills = [fill_json(f, base.strategy) for f in journal.fills(name, 20)]
    if session is not None:
        positions, balance, equity = _live(session)
    else:
        positions, balance, equity = _saved(journal, name)
    return StatusOut(
        **base.model_dump(),
        positions=positions,
        orders=orders,
        fills=fills,
        balance=money(balance),
        equity=money(equity),
        brokers=brokers,
        warmup=warmup,
        notes=notes,
    )


def _live(session: Any) -> tuple[list[PositionOut], Decimal, Decimal]:
    labels = {s.label.lower(): s.label for s in session.strategy.streams}
    positions = []
    for p in sorted(session.positions.all(), key=lambda p: (p.label, p.symbol)):
        if p.qty == 0 and p.realized == 0:
            continue
        last = session.prices.last(p.label, p.symbol)
        positions.append(
            PositionOut(
                label=labels.get(p.label, p.label.upper()),
                symbol=p.symbol,
                qty=money(p.qty),
                avg_price=money(p.avg_price),
                unrealized_pnl=money(p.unrealized(last)),
                realized_pnl=money(p.realized),
            )
        )
    balance = session._account_value("balance")
    equity = session._account_value("equity")
    return positions, balance, equity


def _saved(journal: Journal, name: str) -> tuple[list[PositionOut], Decimal, Decimal]:
    """A deployment not running: its positions and money as last saved (no price: unrealized
    PnL is not known, equity is the balance)."""
    ledger = next((a for a in journal.load_paper(name) if a.name == paperstate.LEDGER), None)
    if ledger is None:
        return [], ZERO, ZERO
    positions = [
        PositionOut(
            label=p.label.upper(),
            symbol=p.symbol,
            qty=money(p.qty),
            avg_price=money(p.avg_price),
            unrealized_pnl="0",
            realized_pnl=money(p.realized),
        )
        for p in ledger.positions
    ]
    realized = sum((p.realized for p in ledger.positions), ZERO)
    balance = ledger.starting_balance + realized - ledger.commission_paid
    return positions, balance, balance
