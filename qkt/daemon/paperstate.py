"""A session's money and positions as the journal keeps them between runs (SPEC §6.1: what
persists is positions, balances, the journal and the id sequence).

:func:`snapshot` turns a running session into :class:`~qkt.daemon.records.PaperAccount` rows,
saved in the same commit as each fill, and at shutdown:

- one account per paper broker of the session (``paper``, ``backtest``, ``paper:exness``…): its
  starting balance, the commission it charged, its positions with the stop-loss and take-profit
  it holds for them;
- the session's own ledger, :data:`LEDGER`: its starting balance and commission, and every
  position it knows with its realized PnL — paper and venue ones. For a venue position this is
  the journal's record of it, which a restart compares with what the venue holds (the venue
  wins, the difference is reported).

:func:`restore` puts them back into a session built for a restart, before it starts: paper
positions and legs into the paper brokers and the session, realized PnL and commission into the
ledger. Venue positions themselves come back from the venue (recovered by tag at start).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from qkt.brokers.paper import PaperBroker, _Legs
from qkt.daemon.records import PaperAccount, PaperPosition

LEDGER = ":session"
"""The ledger's account name: a profile name never starts with a colon."""
ZERO = Decimal(0)
Key = tuple[str, str]  # (lowercased label, symbol)


def _papers(session: Any) -> dict[str, PaperBroker]:
    return {b.name: b for b in session.brokers.values() if isinstance(b, PaperBroker)}


def is_paper(session: Any, label: str) -> bool:
    """Whether ``label``'s orders fill on a paper broker in ``session``."""
    return isinstance(session.composite.broker_for(label), PaperBroker)


def snapshot(session: Any) -> list[PaperAccount]:
    """The session's paper accounts and its ledger, as :meth:`Journal.save_paper` takes them."""
    accounts = []
    for broker in _papers(session).values():
        legs: dict[Key, _Legs] = broker._legs
        positions = []
        for p in broker.positions.all():
            if p.qty == 0 and p.realized == 0:
                continue
            held = legs.get((p.label.lower(), p.symbol))
            positions.append(
                PaperPosition(
                    p.label,
                    p.symbol,
                    p.qty,
                    p.avg_price,
                    p.realized,
                    held.stop_loss if held else None,
                    held.take_profit if held else None,
                    held.client_id if held else None,
                )
            )
        accounts.append(
            PaperAccount(
                broker.name, broker.starting_balance, broker.commission_paid, tuple(positions)
            )
        )
    ledger = session.ledger
    mine = tuple(
        PaperPosition(p.label, p.symbol, p.qty, p.avg_price, p.realized)
        for p in session.positions.all()
        if p.qty != 0 or p.realized != 0
    )
    accounts.append(PaperAccount(LEDGER, ledger.starting_balance, ledger.commission, mine))
    return accounts


def restore(session: Any, accounts: Iterable[PaperAccount]) -> dict[Key, Decimal]:
    """Put saved accounts back into ``session`` (not started yet). Returns the quantities the
    ledger recorded for venue positions (what the venue is expected to hold)."""
    papers = _papers(session)
    expected: dict[Key, Decimal] = {}
    for account in accounts:
        if account.name == LEDGER:
            expected = _ledger(session, account)
            continue
        broker = papers.get(account.name)
        if broker is None:  # the plan no longer routes to it: nothing to put it in
            continue
        broker.starting_balance = account.starting_balance
        broker.commission_paid = account.commission_paid
        for saved in account.positions:
            key = (saved.label.lower(), saved.symbol)
            size = broker.contract_sizes.get(saved.symbol, Decimal(1))
            _put(broker.positions.get(saved.label, saved.symbol), saved, size)
            broker._qty[key] = saved.qty
            if saved.qty and (saved.stop_loss is not None or saved.take_profit is not None):
                broker._legs[key] = _Legs(
                    saved.stop_loss, saved.take_profit, saved.legs_client_id or ""
                )
            if is_paper(session, saved.label) and _routed(session, saved.label):
                own = session.positions.get(saved.label, saved.symbol)
                _put(own, saved, size)
                if saved.qty:
                    session._open.add(key)
    return expected


def _ledger(session: Any, account: PaperAccount) -> dict[Key, Decimal]:
    ledger = session.ledger
    ledger.starting_balance = account.starting_balance
    ledger.commission = account.commission_paid
    ledger.realized = sum((p.realized for p in account.positions), ZERO)
    ledger.peak = max(ledger.peak, account.starting_balance)
    expected: dict[Key, Decimal] = {}
    for saved in account.positions:
        if not _routed(session, saved.label):
            continue
        if not is_paper(session, saved.label):
            # A venue position: its quantity comes back from the venue; its realized PnL is ours.
            session.positions.get(saved.label, saved.symbol).realized = saved.realized
            expected[(saved.label.lower(), saved.symbol)] = saved.qty
    return expected


def _routed(session: Any, label: str) -> bool:
    return label.lower() in session.composite.route_of_label


def _put(position: Any, saved: PaperPosition, size: Decimal) -> None:
    position.qty = saved.qty
    position.avg_price = saved.avg_price
    position.realized = saved.realized
    position.contract_size = size
