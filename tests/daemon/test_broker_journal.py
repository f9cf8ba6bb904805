"""What the daemon asks of MT5Broker, against the bundled simulator's HTTP surface in process: the
journal hook before every send (a refusal there sends nothing), and orders of an earlier run
(``expect``) resolved at the venue before the symbol sends anything — settled without a second
fill when the recovery shows them, filled when the gateway placed them after the start's read,
not placed once the window has passed with the venue showing nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from qkt.brokers.mt5.broker import MT5Broker
from qkt.brokers.mt5.client import GatewayClient
from qkt.brokers.tags import order_tag
from qkt.config import load_config
from qkt.engine.bus import EventBus
from qkt.engine.clock import WallClock
from qkt.engine.events import OrderAccepted, OrderFilled, OrderRejected, OrderRequest
from qkt.engine.prices import PriceTracker
from qkt.sim.app import create_app
from qkt.sim.state import OrderSpec, SimState

pytestmark = pytest.mark.anyio
SESSION = "book/eur"


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.state = SimState(symbols=("EURUSDm",))
        self.transport = httpx.ASGITransport(app=create_app(self.state))
        config = tmp_path / "qkt.config.yaml"
        config.write_text("brokers:\n  exness:\n    gateway_url: http://sim\n")
        self.profile = load_config(config, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path).profiles[
            "exness"
        ]
        self.events: list[Any] = []
        self.settled: list[tuple[str, Decimal, Decimal]] = []
        self.sent: list[tuple[str, str, str]] = []
        self.broker = self.make()

    def make(self) -> MT5Broker:
        bus = EventBus()
        for kind in (OrderAccepted, OrderFilled, OrderRejected, OrderRequest):
            bus.subscribe(kind, self.events.append)
        client = GatewayClient("http://sim", transport=self.transport, backoff_s=0.001)
        broker = MT5Broker(self.profile, bus, WallClock(), PriceTracker(), client)
        broker.absence_backoff_s = 0.001
        broker.before_send = lambda r, tag, symbol: self.sent.append((r.client_id, tag, symbol))
        broker.on_settled = lambda r, price, qty: self.settled.append((r.client_id, price, qty))
        return broker

    def place(self, client_id: str, side: int = 0) -> None:
        """An order of the earlier run that reached the venue (placed by the terminal)."""
        comment = order_tag(SESSION, client_id)
        spec = OrderSpec("EURUSDm", side, Decimal("0.1"), magic=10001, comment=comment)
        retcode, _ = self.state.send(spec)
        assert retcode == 10009

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def request(cid: str, side: str = "buy", reduce_only: bool = False) -> OrderRequest:
    now = datetime.now(UTC)
    qty = Decimal("0.1")
    return OrderRequest(cid, SESSION, "eur", "EXNESS", "EURUSD", side, qty, now,  # type: ignore[arg-type]
                        reduce_only=reduce_only)  # fmt: skip


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


async def test_every_order_passes_the_hook_before_it_is_sent(rig: Rig) -> None:
    await rig.broker.start(SESSION)
    rig.broker.submit(request("book/eur-a-000001"))
    await rig.broker.settle()
    (sent,) = rig.sent
    assert sent == ("book/eur-a-000001", order_tag(SESSION, "book/eur-a-000001"), "EURUSDm")
    assert [o["body"]["client_order_id"] for o in rig.state.received] == ["book/eur-a-000001"]
    assert rig.of(OrderFilled)
    await rig.broker.aclose()


async def test_an_order_the_hook_refuses_is_not_sent(rig: Rig) -> None:
    def refuse(r: OrderRequest, tag: str, symbol: str) -> None:
        raise OSError("disk full")

    rig.broker.before_send = refuse
    await rig.broker.start(SESSION)
    rig.broker.submit(request("book/eur-a-000001"))
    await rig.broker.settle()
    (rejected,) = rig.of(OrderRejected)
    assert rejected.reason == "not journaled: not sent (disk full)"
    assert rig.state.received == [] and not rig.of(OrderFilled)
    await rig.broker.aclose()


async def test_an_order_the_recovery_shows_is_settled_without_a_second_fill(rig: Rig) -> None:
    rig.place("book/eur-a-000001")
    broker = rig.broker
    broker.expect(request("book/eur-a-000001"), order_tag(SESSION, "book/eur-a-000001"),
                  datetime.now(UTC))  # fmt: skip
    assert broker.expected == 1
    await broker.start(SESSION)
    assert broker.expected == 0
    assert [(cid, qty) for cid, _, qty in rig.settled] == [("book/eur-a-000001", Decimal("0.1"))]
    assert [r.qty for r in broker.recovered] == [Decimal("0.1")]
    assert not rig.of(OrderFilled) and not rig.of(OrderRequest)  # no second fill, no re-announce
    # Nothing blocks the symbol: the next order goes out, with its own id.
    broker.submit(request("book/eur-b-000002", side="sell"))
    await broker.settle()
    assert [o["body"]["client_order_id"] for o in rig.state.received] == ["book/eur-b-000002"]
    await broker.aclose()


async def test_an_order_placed_after_the_restart_read_is_filled_as_usual(rig: Rig) -> None:
    broker = rig.broker
    tag = order_tag(SESSION, "book/eur-a-000001")
    broker.expect(request("book/eur-a-000001"), tag, datetime.now(UTC))
    await broker.start(SESSION)
    assert broker.recovered == [] and broker.expected == 1
    assert await broker.resolve_expected() == 1  # absent, but inside the window: unknown still
    rig.place("book/eur-a-000001")  # the gateway places it late
    assert await broker.resolve_expected() == 0
    (fill,) = rig.of(OrderFilled)
    assert fill.client_id == "book/eur-a-000001" and fill.qty == Decimal("0.1")
    assert rig.settled == [] and not rig.of(OrderRejected)
    await broker.aclose()


async def test_an_order_the_venue_never_saw_is_not_placed_once_the_window_passed(
    rig: Rig,
) -> None:
    broker = rig.broker
    sent_at = datetime.now(UTC) - timedelta(minutes=5)
    broker.expect(request("book/eur-a-000001"), order_tag(SESSION, "book/eur-a-000001"), sent_at)
    await broker.start(SESSION)
    assert await broker.resolve_expected() == 0
    (rejected,) = rig.of(OrderRejected)
    assert "it was not placed" in rejected.reason
    assert rig.state.received == []  # never resent
    await broker.aclose()


async def test_a_new_order_waits_for_every_expected_order_of_its_symbol(rig: Rig) -> None:
    broker = rig.broker
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    rig.place("book/eur-a-000001")
    for cid in ("book/eur-a-000001", "book/eur-a-000002"):
        broker.expect(request(cid), order_tag(SESSION, cid), long_ago)
    # The recovery shows the first; the second, absent, is resolved before the new order goes.
    await broker.start(SESSION)
    assert [cid for cid, _, _ in rig.settled] == ["book/eur-a-000001"]
    assert broker.expected == 1
    broker.submit(request("book/eur-b-000003", side="sell"))
    await broker.settle()
    assert broker.expected == 0
    reasons = [e.reason for e in rig.of(OrderRejected)]
    assert len(reasons) == 1 and "it was not placed" in reasons[0]
    assert [o["body"]["client_order_id"] for o in rig.state.received] == ["book/eur-b-000003"]
    await broker.aclose()


async def test_a_close_of_the_earlier_run_is_settled_when_the_position_is_gone(rig: Rig) -> None:
    rig.place("book/eur-a-000001")
    rig.place("book/eur-a-000002", side=1)  # the close went through: flat again
    broker = rig.broker
    close = request("book/eur-a-000002", side="sell", reduce_only=True)
    broker.expect(close, order_tag(SESSION, "book/eur-a-000002"), datetime.now(UTC))
    await broker.start(SESSION)
    assert broker.recovered == [] and broker.expected == 0
    assert [cid for cid, _, _ in rig.settled] == ["book/eur-a-000002"]
    assert not rig.of(OrderFilled)
    await broker.aclose()
