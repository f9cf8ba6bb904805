"""A restarted Bybit session: its open linear positions taken back, its journaled orders resolved.

At start a linear session takes back its open positions: the journal's quantity where a daemon
gives it (:attr:`~qkt.brokers.bybit.seat.Seat.journal_holds`, with what its journaled orders of
unknown outcome would add), else what its own executions of the last week add up to, less what
Bybit's TP/SL or trades by hand closed of it (:func:`holdings`) — never more than the venue
holds. Spot holdings are balances, not positions: not recovered. Orders an earlier run journaled
without an outcome (:meth:`Restart.expect`) are found by their ``orderLinkId`` before anything
else is sent for their symbol; one the venue shows inside what was taken back is settled in the
journal only, never reported as a second fill. None is ever resent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

from qkt.brokers.bybit.ids import session_of_link
from qkt.brokers.bybit.models import Execution
from qkt.brokers.bybit.orders import Pending, look_up, settle_after
from qkt.brokers.bybit.seat import ZERO, Held, Recovered, Seat
from qkt.brokers.bybit.venue import LOOKBACK_MS
from qkt.brokers.tags import session_tag
from qkt.engine.events import OrderRequest


def holdings(rows: list[Execution]) -> dict[str, Decimal]:
    """What each session (by tag) holds of a symbol after its executions ``rows``, oldest first:
    its own fills, less what orders without a qkt link (Bybit's TP/SL, trades by hand) closed —
    taken from the sessions holding the other side, in the order they first traded, as the
    executions poller hands such exits out."""
    held: dict[str, Decimal] = {}
    for row in rows:
        if row.exec_type != "Trade":
            continue
        signed = row.exec_qty if row.side == "Buy" else -row.exec_qty
        tag = session_of_link(row.order_link_id)
        if tag is not None:
            held[tag] = held.get(tag, ZERO) + signed
            continue
        left = row.closed_size or ZERO
        for owner, qty in held.items():
            if left <= 0:
                break
            if qty and (qty > 0) != (signed > 0):
                take = min(abs(qty), left)
                held[owner] = qty - take if qty > 0 else qty + take
                left -= take
    return held


class Restart(Seat):
    async def _recover(self) -> list[Recovered]:
        positions = [p for p in await self.client.positions(self.category) if p.size > 0]
        holds = dict(self.journal_holds)
        for pending in self._seeded():
            if pending.symbol in holds:
                qty = pending.request.qty
                holds[pending.symbol] += qty if pending.request.side == "buy" else -qty
        recovered: list[Recovered] = []
        since = int(time.time() * 1000) - LOOKBACK_MS
        for position in positions:
            sign = Decimal(1) if position.side == "Buy" else Decimal(-1)
            if position.symbol in holds:
                mine = holds[position.symbol] * sign
            else:  # what this session's own executions add up to, less what Bybit closed
                rows = await self.client.executions(self.category, position.symbol, start_ms=since)
                mine = sign * holdings(rows).get(session_tag(self.session), ZERO)
            qty = min(mine, position.size)
            if qty <= 0:
                continue
            self.held[position.symbol] = Held(sign * qty, f"{self.name}-{position.symbol}")
            side = "buy" if sign > 0 else "sell"
            price = position.avg_price or ZERO
            recovered.append(Recovered(self.label, position.symbol, side, qty, price))
        return recovered

    # ------------------------------------------------------------ orders of an earlier run
    def expect(self, request: OrderRequest, tag: str, sent_at: datetime) -> None:
        """An order an earlier run journaled (``tag``: its orderLinkId) without an outcome: found
        at the venue before anything else is sent for its symbol, never resent."""
        age = (datetime.now(UTC) - sent_at).total_seconds()
        symbol = self.venue.broker_symbol(request.symbol)
        after = settle_after(self.client.recv_window_ms, self.lag_s, age)
        pending = Pending(request, tag, symbol, False, after, seeded=True)
        self._announced.add(request.client_id)
        self._journaled.add(request.client_id)
        if symbol in self._unresolved:
            self._expected.setdefault(symbol, []).append(pending)
        else:
            self._unresolved[symbol] = pending

    def _seeded(self) -> list[Pending]:
        queued = [p for q in self._expected.values() for p in q]
        return [p for p in [*self._unresolved.values(), *queued] if p.seeded]

    async def _settle_seen(self) -> None:
        """Orders of :meth:`expect` whose fill is in what :meth:`start` took back."""
        recovered = {r.symbol for r in self.recovered}
        for symbol in list(self._unresolved):
            pending = self._unresolved[symbol]
            if not pending.seeded:
                continue
            found = await look_up(self.client, self.category, pending)
            if found is None or not found.final or not found.qty:
                continue
            if not (pending.request.reduce_only or symbol in recovered):
                continue
            self._resolved(symbol)
            if self.on_settled is not None:
                self.on_settled(pending.request, found.price, found.qty)

    async def resolve_expected(self) -> int:
        for symbol in list(self._unresolved):
            async with self.venue.lock(symbol):
                if symbol in self._unresolved and self._unresolved[symbol].seeded:
                    await self._resolve(symbol)
        return self.expected

    @property
    def expected(self) -> int:
        waiting = sum(p.seeded for p in self._unresolved.values())
        return waiting + sum(len(q) for q in self._expected.values())

    def _resolved(self, symbol: str) -> None:
        del self._unresolved[symbol]
        queued = self._expected.get(symbol)
        if queued:
            self._unresolved[symbol] = queued.pop(0)
            if not queued:
                del self._expected[symbol]
