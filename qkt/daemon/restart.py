"""A deployment brought back after a restart — clean, or after ``kill -9`` at any moment (SPEC
§6.1, precise on purpose) — before its session sees its first row:

1. its paper positions, balances and ledger come back from the journal
   (:mod:`qkt.daemon.paperstate`);
2. every journaled order without a final outcome is handed to its venue broker
   (:class:`~qkt.brokers.base.JournaledBroker`, ``expect``): it may have reached the venue;
3. the brokers start: the venue positions whose comment tag names the deployment are recovered,
   and an order of step 2 that this very read of the venue shows, inside a recovered position (or
   a close), is settled in the journal only — its effect is in the recovered position, so the
   session gets no second fill. A gateway that does not answer is waited for (the broker is
   ``down`` meanwhile; nothing else is refused for it);
4. the journal's record of its venue positions, with the orders settled in step 3, is compared
   with what the venue holds: a difference (a position closed or changed by hand, or by the venue
   while the daemon was down) is taken from the venue and reported, in the log and ``status``;
5. the orders still open are resolved at the venue: found later (the gateway placed it after the
   read of step 3) it is tracked and filled as usual; absent from several clean reads once its
   send time plus twice the request timeout has passed, it was not placed.

Only then do rows flow: no rule sees a position the venue has not confirmed, and the next order
takes a new client id from the journal's sequence — a client id is never sent twice. A journaled
paper order without its fill is one the daemon stopped between the two (they are one synchronous
step): not placed.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING

from qkt.brokers.base import JournaledBroker
from qkt.daemon import paperstate
from qkt.daemon.eventlog import money
from qkt.daemon.records import OrderRecord
from qkt.engine.events import OrderRequest
from qkt.session import SessionRefused

if TYPE_CHECKING:
    from qkt.daemon.deployment import LiveDeployment

RETRY_S = 5.0
"""Between two starts of a restored deployment whose gateway does not answer."""
RESOLVE_POLL_S = 0.25
Key = tuple[str, str]


def seed(dep: LiveDeployment, *, paper: bool) -> dict[Key, Decimal]:
    """Steps 1 (with ``paper``) and 2; the venue positions the ledger recorded."""
    assert dep.session is not None
    session, journal = dep.session, dep.env.context.journal
    expected = paperstate.restore(session, journal.load_paper(dep.name)) if paper else {}
    _hand_holds(dep, expected)
    waiting = 0
    for record in journal.open_orders(dep.name):
        broker = session.venues.get(record.order.profile)
        if isinstance(broker, JournaledBroker):
            broker.expect(request_of(record), record.order.tag, record.updated)
            dep.recorder.expect(record)
            waiting += 1
            continue
        reason = "a paper order the daemon stopped before its fill: not placed"
        journal.outcome(record.order.client_id, "not_placed", reason)
        dep.log.warning(f"not placed: {reason}  [{record.order.client_id}]")
    if waiting:
        dep.log.info(
            f"{waiting} order(s) of an earlier run without a final outcome: resolved at the "
            "venue before anything is sent"
        )
    return expected


def _hand_holds(dep: LiveDeployment, expected: dict[Key, Decimal]) -> None:
    """Tell each venue broker what the journal says the session holds per broker symbol: on a
    netting account sessions sharing a symbol share one position, and each takes back only its
    own volume (:meth:`~qkt.brokers.mt5.broker.MT5Broker.start`)."""
    assert dep.session is not None
    session = dep.session
    seen: set[Key] = set()
    for route in session.plan.routes:
        key = (route.label.lower(), route.symbol)
        broker = session.venues.get(route.profile)
        if key in seen or key not in expected or not isinstance(broker, JournaledBroker):
            continue
        seen.add(key)
        holds = broker.journal_holds
        holds[route.broker_symbol] = holds.get(route.broker_symbol, Decimal(0)) + expected[key]


async def restore(dep: LiveDeployment) -> None:
    expected = seed(dep, paper=True)
    await start_retrying(dep)
    compare(dep, expected)
    await resolve_expected(dep)
    dep.recorder.save()
    dep.log.info("restored: trading resumes")


async def start_retrying(dep: LiveDeployment) -> None:
    """Step 3, until the gateways answer; any other refusal (an account other than expected)
    is raised: the deployment fails with it."""
    from qkt.daemon.deployment import first_line

    assert dep.session is not None
    told = False
    while True:
        try:
            await dep.start()
        except SessionRefused as exc:
            if any(d.code != "gateway-unavailable" for d in exc.diagnostics):
                raise
            reason = first_line(exc)
            for profile in dep.session.venues:
                dep.env.connectivity.refused(dep.key, profile, reason)
            if not told:
                dep.log.warning(f"cannot start yet: {reason}; trying again every {RETRY_S:g} s")
                told = True
            await asyncio.sleep(RETRY_S)
            continue
        for profile in dep.session.venues:
            dep.env.connectivity.answered(dep.key, profile)
        return


def compare(dep: LiveDeployment, expected: dict[Key, Decimal]) -> None:
    """Step 4: the venue's positions are kept (the session already has them)."""
    assert dep.session is not None
    session = dep.session
    held: dict[Key, Decimal] = {}
    for p in session.positions.all():
        if p.qty and not paperstate.is_paper(session, p.label):
            held[(p.label.lower(), p.symbol)] = p.qty
    settled = dep.recorder.settled_qty
    labels = {s.label.lower(): s.label for s in session.strategy.streams}
    for key in sorted(set(expected) | set(held) | set(settled)):
        want = expected.get(key, Decimal(0)) + settled.get(key, Decimal(0))
        have = held.get(key, Decimal(0))
        if want == have:
            continue
        label, symbol = labels.get(key[0], key[0].upper()), key[1]
        profile = session.composite.route_of_label.get(key[0], "the venue")
        note = (
            f"journal and venue differ on {label}:{symbol}: the journal has {money(want)}, "
            f"{profile} holds {money(have)}; the venue's position is taken"
        )
        dep.notes.append(note)
        dep.log.warning(note)


async def resolve_expected(dep: LiveDeployment) -> None:
    """Step 5: until no order of an earlier run is left unresolved."""
    assert dep.session is not None
    brokers = [
        b for b in dep.session.venues.values() if isinstance(b, JournaledBroker) and b.expected
    ]
    while brokers:
        for broker in brokers:
            await broker.resolve_expected()
        brokers = [b for b in brokers if b.expected]
        if brokers:
            await asyncio.sleep(RESOLVE_POLL_S)


def request_of(record: OrderRecord) -> OrderRequest:
    """The request a journaled order was, as its broker resolves it."""
    o = record.order
    return OrderRequest(
        o.client_id, o.deployment, o.alias, o.label, o.symbol, o.side, o.qty, o.time,
        o.stop_loss, o.take_profit, o.reduce_only,
    )  # fmt: skip
