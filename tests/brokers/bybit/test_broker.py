"""The Bybit session broker against the bundled Bybit simulator over HTTP: what is sent
(``/_sim/orders``), what is refused before sending, fills read back from executions, unknown
outcomes resolved by ``orderLinkId``, the start-up guard, restarts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from qkt.brokers.bybit.broker import BybitBroker
from qkt.brokers.bybit.client import BybitError
from qkt.brokers.bybit.ids import MAX_LINK, order_link_id
from qkt.brokers.registry import BrokerRegistry
from qkt.brokers.tags import client_prefix, run_stamp
from qkt.config import load_config
from qkt.diagnostics import error
from qkt.engine.bus import EventBus
from qkt.engine.clock import WallClock
from qkt.engine.events import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderRequest,
    OrderUnknown,
    VenueNotice,
)
from qkt.engine.prices import PriceTracker
from qkt.errors import QktError
from qkt.sim.bybit import DEFAULT_API_KEY, DEFAULT_API_SECRET, BybitSimServer, BybitState
from tests.conftest import send

pytestmark = pytest.mark.anyio

BID, ASK = Decimal("86500.0"), Decimal("86500.5")
LINK = re.compile(r"[A-Za-z0-9_-]{1,36}")


# ---------------------------------------------------------------- the simulated venue
def new_state(**kwargs: Any) -> BybitState:
    kwargs.setdefault("history_days", 1)
    kwargs.setdefault("symbols", ("BTCUSDT", "ETHUSDT", "XRPUSDT"))
    state = BybitState(**kwargs)
    state.set_quote("BTCUSDT", BID, ASK)
    state.set_quote("ETHUSDT", Decimal("3200.00"), Decimal("3200.10"))
    state.set_quote("XRPUSDT", Decimal("2.5000"), Decimal("2.5001"))
    return state


@pytest.fixture
def sim() -> Iterator[BybitSimServer]:
    with BybitSimServer(new_state()) as server:
        yield server


def faults(sim: BybitSimServer, **switches: Any) -> None:
    httpx.post(f"{sim.url}/_sim/faults", json=switches).raise_for_status()


def bodies(sim: BybitSimServer) -> list[dict[str, Any]]:
    """Every order/create that reached the simulator, as sent."""
    return [json.loads(r["body"]) for r in sim.state.received]


def counts(sim: BybitSimServer) -> dict[str, int]:
    body: dict[str, Any] = httpx.get(f"{sim.url}/_sim/requests").json()
    return dict(body["counts"])


def reset_counts(sim: BybitSimServer) -> None:
    httpx.post(f"{sim.url}/_sim/requests/reset").raise_for_status()


def executions(sim: BybitSimServer, link: str = "") -> list[dict[str, Any]]:
    return [row for _, row in sim.state.ledger.executions if row["orderLinkId"] == link]


def position(sim: BybitSimServer, symbol: str = "BTCUSDT") -> Any:
    return sim.state.linear.positions.get(symbol)


# ---------------------------------------------------------------- qkt's side
def registry(
    url: str,
    tmp_path: Path,
    extra: str = "",
    *,
    category: str = "linear",
    key: str = DEFAULT_API_KEY,
) -> BrokerRegistry:
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(
        "brokers:\n  bybit:\n    type: bybit\n"
        f"    base_url: {url}\n    api_key: {key}\n    api_secret: {DEFAULT_API_SECRET}\n"
        f"    category: {category}\n    http_timeout_ms: 2000\n{extra}"
    )
    return BrokerRegistry.from_config(load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path))


class Seat:
    """One session's broker from the registry's factory, and what its bus heard."""

    def __init__(self, reg: BrokerRegistry, session: str) -> None:
        self.session = session
        self.events: list[Any] = []
        bus = EventBus()
        kinds = (OrderRequest, OrderAccepted, OrderFilled, OrderRejected, OrderUnknown)
        for kind in (*kinds, VenueNotice):
            bus.subscribe(kind, self.events.append)
        broker = reg["bybit"].factory(bus, WallClock(), PriceTracker())
        assert isinstance(broker, BybitBroker)
        broker.absence_backoff_s = 0.02
        broker.fill_backoff_s = 0.02
        broker.lag_s = 0.1
        self.broker = broker
        self.prefix = client_prefix(session, run_stamp())

    async def start(self) -> Seat:
        await self.broker.start(self.session)
        return self

    def order(
        self, n: int, side: str = "buy", qty: str = "0.010", symbol: str = "BTCUSDT", **extra: Any
    ) -> OrderRequest:
        return OrderRequest(
            f"{self.prefix}-{n:06d}", self.session, "btc", "BYBIT", symbol, side,  # type: ignore[arg-type]
            Decimal(qty), datetime.now(UTC), **extra,
        )  # fmt: skip

    def link(self, n: int) -> str:
        return order_link_id(self.session, f"{self.prefix}-{n:06d}")

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events if not isinstance(e, VenueNotice)]

    def fills(self) -> list[OrderFilled]:
        return [e for e in self.events if isinstance(e, OrderFilled)]

    def rejections(self) -> list[str]:
        return [e.reason for e in self.events if isinstance(e, OrderRejected)]


async def seat(url: str, tmp_path: Path, session: str = "s", extra: str = "", **kw: Any) -> Seat:
    return await Seat(registry(url, tmp_path, extra, **kw), session).start()


# ---------------------------------------------------------------- linear orders
async def test_a_linear_market_buy_sends_its_bracket_natively_and_fills_from_its_executions(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    s = await seat(sim.url, tmp_path)
    await send(s.broker, s.order(1, stop_loss=Decimal("85000"), take_profit=Decimal("88000")))
    (body,) = bodies(sim)
    assert body.pop("takeProfit") in ("88000", "88000.0", "88000.00")
    assert body.pop("stopLoss") in ("85000", "85000.0", "85000.00")
    assert body == {
        "category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
        "qty": "0.010", "orderLinkId": s.link(1), "positionIdx": 0, "tpslMode": "Full",
    }  # fmt: skip
    (row,) = executions(sim, s.link(1))
    (fill,) = s.fills()
    assert (fill.client_id, fill.side, fill.reason) == (f"{s.prefix}-000001", "buy", "market")
    assert fill.price == Decimal(row["execPrice"]) == ASK
    assert fill.qty == Decimal(row["execQty"]) == Decimal("0.010")
    assert fill.commission == Decimal(row["execFee"]) > 0
    assert s.kinds() == ["OrderRequest", "OrderAccepted", "OrderFilled"]
    pos = position(sim)  # the bracket sits on the position at the venue
    assert (pos.side, pos.size) == ("Buy", Decimal("0.010"))
    assert (pos.level("TakeProfit"), pos.level("StopLoss")) == (88000, 85000)
    await s.broker.aclose()


async def test_a_bracket_by_distance_is_placed_from_bybits_quote_on_the_tick_grid(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    """The session priced the order elsewhere (a replay at 1.0): the legs go at the strategy's
    distance from Bybit's ask at send time, rounded to the 0.10 tick."""
    s = await seat(sim.url, tmp_path)
    await send(
        s.broker,
        s.order(
            1, stop_loss=Decimal("0.99"), take_profit=Decimal("1.02"),
            stop_rule=("by_pct", Decimal(1)), take_rule=("by_pct", Decimal(2)),
        ),
    )  # fmt: skip
    (body,) = bodies(sim)
    assert Decimal(body["stopLoss"]) == Decimal("85635.5")  # 86500.5 * 0.99 = 85635.495
    assert Decimal(body["takeProfit"]) == Decimal("88230.5")  # 86500.5 * 1.02 = 88230.51
    (request,) = [e for e in s.events if isinstance(e, OrderRequest)]
    assert (request.stop_loss, request.take_profit) == (Decimal("85635.5"), Decimal("88230.5"))
    await s.broker.aclose()


async def test_a_native_stop_on_the_wrong_side_of_bybits_last_price_is_refused_unsent(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    """Bybit checks a linear bracket against its last trade, not the ask: a stop between the two
    would be refused after sending — qkt refuses it before."""
    s = await seat(sim.url, tmp_path)
    sim.state.set_quote("BTCUSDT", Decimal("86499.9"), Decimal("86500.1"), Decimal("86100"))
    stop = Decimal("86200")  # below the ask, above the last trade
    await send(s.broker, s.order(1, stop_loss=stop, stop_rule=("at", stop)))
    assert bodies(sim) == []
    (why,) = s.rejections()
    assert "stop-loss 86200" in why and "not below Bybit's last price 86100" in why
    await s.broker.aclose()


async def test_a_close_is_reduce_only_and_sized_to_what_the_session_holds(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    s = await seat(sim.url, tmp_path)
    await send(s.broker, s.order(1, qty="0.020"))
    s.broker.close_position("BYBIT", "BTCUSDT")
    await s.broker.settle()
    _, closed = bodies(sim)
    assert (closed["side"], closed["qty"], closed["reduceOnly"]) == ("Sell", "0.020", True)
    assert "takeProfit" not in closed and "tpslMode" not in closed
    assert [(f.side, f.qty, f.price) for f in s.fills()] == [
        ("buy", Decimal("0.020"), ASK),
        ("sell", Decimal("0.020"), BID),
    ]
    assert position(sim).size == 0
    assert s.broker.held == {}
    await s.broker.aclose()


async def test_quantities_are_checked_against_the_lot_size_filter_before_anything_is_sent(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    eth = sim.state.specs["ETHUSDT"]  # a listing whose minimum is five steps
    sim.state.specs["ETHUSDT"] = dataclasses.replace(eth, min_qty=Decimal("0.05"))
    s = await seat(sim.url, tmp_path)
    await send(
        s.broker,
        s.order(1, qty="0.0105"),  # off the 0.001 step
        s.order(2, qty="0.03", symbol="ETHUSDT"),  # on the 0.01 step, below minOrderQty 0.05
        s.order(3, qty="501"),  # above maxMktOrderQty 500
        s.order(4, qty="1", symbol="XRPUSDT"),  # 1 XRP at 2.5001: below minNotionalValue 5
    )
    said = {e.client_id[-1]: e.reason for e in s.events if isinstance(e, OrderRejected)}
    assert sorted(said) == ["1", "2", "3", "4"]
    assert "not a multiple of the step 0.001" in said["1"]
    assert "below the minimum 0.05" in said["2"]
    assert "above the maximum 500.000" in said["3"]
    assert "below the minimum 5" in said["4"]
    assert all(r.endswith("not sent") for r in said.values())
    assert bodies(sim) == []  # nothing reached Bybit
    await send(s.broker, s.order(5, qty="0.001"))  # nothing is blocked by a refusal
    assert [b["qty"] for b in bodies(sim)] == ["0.001"]
    assert s.fills()[-1].qty == Decimal("0.001")
    await s.broker.aclose()


async def test_an_order_sized_in_money_is_rounded_down_to_the_step_at_bybits_quote(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    s = await seat(sim.url, tmp_path)
    await send(s.broker, s.order(1, qty="0", notional=Decimal("200")))  # 0.00231 BTC at the ask
    assert [b["qty"] for b in bodies(sim)] == ["0.002"]
    await send(s.broker, s.order(2, qty="0", notional=Decimal("50")))  # 0.00057: below 0.001
    assert "below the minimum quantity 0.001" in s.rejections()[-1]
    assert len(bodies(sim)) == 1
    await s.broker.aclose()


# ---------------------------------------------------------------- orderLinkId
def test_order_link_ids_fit_bybit_and_are_deterministic_and_distinct() -> None:
    session = "a-portfolio/with-a-rather-long-name_of_its_strategy" * 2
    ids = [f"{client_prefix(session, run_stamp())}-{n:06d}" for n in range(2000)]
    links = [order_link_id(session, c) for c in ids]
    assert all(LINK.fullmatch(link) and len(link) <= MAX_LINK for link in links)
    assert len(set(links)) == len(ids)  # one link per client id
    assert [order_link_id(session, c) for c in ids] == links  # found again after a restart
    other = [order_link_id("other", c) for c in ids]
    assert not set(other) & set(links)


async def test_a_restarted_session_never_sends_a_link_an_earlier_run_used(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    first = await seat(sim.url, tmp_path)
    await send(first.broker, first.order(1, qty="0.001"))
    await first.broker.aclose()
    again = await seat(sim.url, tmp_path)  # the same session, its next run
    await send(again.broker, again.order(1, qty="0.001"))
    links = [b["orderLinkId"] for b in bodies(sim)]
    assert len(links) == 2 and links[0] != links[1]
    assert [r["placed"] for r in sim.state.received] == [True, True]  # no 110072
    assert [f.qty for f in again.fills()] == [Decimal("0.001")]
    await again.broker.aclose()


# ---------------------------------------------------------------- unknown outcomes
PLACED_WITHOUT_AN_ANSWER = {
    "502-after-placing": {"create_5xx_after": 1},
    "answer-dropped": {"drop_after_create": 1},
    "retcode-10000": {"create_retcode": 10000, "create_retcode_placed": True},
}


@pytest.mark.parametrize("fault", PLACED_WITHOUT_AN_ANSWER.values(), ids=PLACED_WITHOUT_AN_ANSWER)
async def test_an_order_placed_without_a_usable_answer_is_found_by_its_link_never_resent(
    sim: BybitSimServer, tmp_path: Path, fault: dict[str, Any]
) -> None:
    s = await seat(sim.url, tmp_path)
    faults(sim, **fault)
    await send(s.broker, s.order(1, take_profit=Decimal("90000")))
    assert [r["fault"] for r in sim.state.received] == [next(iter(fault))]
    (row,) = executions(sim, s.link(1))
    (fill,) = s.fills()
    assert (fill.qty, fill.price, fill.commission) == (
        Decimal(row["execQty"]), Decimal(row["execPrice"]), Decimal(row["execFee"]),
    )  # fmt: skip
    assert "OrderRejected" not in s.kinds()
    await send(s.broker, s.order(2, qty="0.001"))  # the symbol is free again
    assert [b["orderLinkId"] for b in bodies(sim)] == [s.link(1), s.link(2)]
    assert position(sim).size == Decimal("0.011")
    await s.broker.aclose()


@pytest.mark.parametrize("fault", PLACED_WITHOUT_AN_ANSWER.values(), ids=PLACED_WITHOUT_AN_ANSWER)
async def test_while_bybit_cannot_show_the_order_it_is_unknown_and_its_symbol_sends_nothing(
    sim: BybitSimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: dict[str, Any]
) -> None:
    s = await seat(sim.url, tmp_path, extra="    retry_attempts: 1\n")
    create = sim.state.create

    def placed_then_unreadable(body: dict[str, Any]) -> Any:
        placed = create(body)
        sim.venue.faults.status_5xx = 2  # the next two reads answer 503
        return placed

    monkeypatch.setattr(sim.state, "create", placed_then_unreadable)
    faults(sim, **fault)
    await send(s.broker, s.order(1))
    assert s.kinds() == ["OrderRequest", "OrderUnknown"]
    monkeypatch.setattr(sim.state, "create", create)
    await send(s.broker, s.order(2, qty="0.001"))  # Bybit still cannot tell: not sent
    assert "unknown outcome; not sending more" in s.rejections()[-1]
    await send(s.broker, s.order(3, qty="0.02", symbol="ETHUSDT"))  # other symbols trade
    assert s.fills()[-1].symbol == "ETHUSDT", s.events
    await s.broker.poll()  # the poller looks again: found, with its fill
    assert [(f.client_id[-1], f.qty) for f in s.fills()] == [
        ("3", Decimal("0.02")), ("1", Decimal("0.010")),
    ]  # fmt: skip
    await send(s.broker, s.order(4, qty="0.001"))
    assert [b["orderLinkId"] for b in bodies(sim)] == [s.link(1), s.link(3), s.link(4)]
    assert position(sim).size == Decimal("0.011")
    await s.broker.aclose()


NOT_PLACED = {
    "502-before-placing": {"create_5xx_before": 1},
    "retcode-10000": {"create_retcode": 10000},
}


@pytest.mark.parametrize("fault", NOT_PLACED.values(), ids=NOT_PLACED)
async def test_an_order_bybit_never_placed_is_said_not_placed_once_a_copy_would_be_refused(
    sim: BybitSimServer, tmp_path: Path, fault: dict[str, Any]
) -> None:
    s = await seat(sim.url, tmp_path, extra="    recv_window_ms: 400\n")
    faults(sim, **fault)
    await send(s.broker, s.order(1))
    assert s.kinds() == ["OrderRequest", "OrderUnknown"]  # absent so soon proves nothing
    await send(s.broker, s.order(2))
    assert "unknown outcome; not sending more" in s.rejections()[-1]
    await asyncio.sleep(0.5)  # the recv window (0.4 s) and the lag (0.1 s) have passed
    await s.broker.poll()
    assert "not placed" in s.rejections()[-1] and s.link(1) in s.rejections()[-1]
    await send(s.broker, s.order(3))
    assert [b["orderLinkId"] for b in bodies(sim)] == [s.link(1), s.link(3)]
    assert [f.client_id[-1] for f in s.fills()] == ["3"]
    assert position(sim).size == Decimal("0.010")
    await s.broker.aclose()


async def test_a_duplicate_link_answer_proves_the_original_exists_and_adopts_its_fill(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    s = await seat(sim.url, tmp_path)
    original = sim.state.create(  # an earlier attempt of this very order reached Bybit
        {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
         "qty": "0.010", "orderLinkId": s.link(1)}
    )  # fmt: skip
    await send(s.broker, s.order(1))
    assert [r["retCode"] for r in sim.state.received] == [110072]  # refused as a copy
    assert s.kinds() == ["OrderRequest", "OrderAccepted", "OrderFilled"]
    (fill,) = s.fills()
    assert (fill.qty, fill.price) == (original.cum_qty, ASK)
    assert position(sim).size == Decimal("0.010")  # one order, not two
    await s.broker.aclose()


async def test_a_refusal_by_bybit_is_a_rejection_with_its_code_and_blocks_nothing(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    s = await seat(sim.url, tmp_path)
    await send(s.broker, s.order(1, qty="200"))  # 17 million USDT of margin it does not have
    assert s.kinds() == ["OrderRequest", "OrderRejected"]
    assert "110007" in s.rejections()[0]
    await send(s.broker, s.order(2, qty="0.001"))
    assert s.kinds()[-1] == "OrderFilled"
    assert len(bodies(sim)) == 2
    await s.broker.aclose()


# ---------------------------------------------------------------- the start-up guard
async def test_a_read_only_key_is_refused_at_start_on_one_line(tmp_path: Path) -> None:
    with BybitSimServer(new_state(read_only=True)) as sim:
        s = Seat(registry(sim.url, tmp_path), "s")
        with pytest.raises(QktError) as refused:
            await s.broker.start("s")
        messages = [d.message for d in refused.value.diagnostics]
        assert any("the API key is read-only" in m for m in messages), messages
        assert all("\n" not in m and "profile `bybit`" in m for m in messages)
        assert sim.state.received == []
        await s.broker.aclose()


async def test_a_wrong_key_is_refused_at_start_with_the_reason(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    s = Seat(registry(sim.url, tmp_path, key="not-the-key"), "s")
    with pytest.raises(QktError) as refused:
        await s.broker.start("s")
    (diagnostic,) = refused.value.diagnostics
    assert diagnostic.code == "venue-refused"
    assert "10003" in diagnostic.message and "API key is invalid" in diagnostic.message
    assert "\n" not in diagnostic.message and DEFAULT_API_SECRET not in diagnostic.message
    await s.broker.aclose()


def _hedged(sim: BybitSimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The account's linear positions as Bybit shows them in hedge mode (positionIdx 1)."""
    book = sim.state.linear.positions
    row = book.row
    monkeypatch.setattr(book, "row", lambda pos: {**row(pos), "positionIdx": 1})


async def test_hedge_mode_is_refused_at_start_when_a_position_shows_it(
    sim: BybitSimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.state.create(
        {"category": "linear", "symbol": "ETHUSDT", "side": "Buy", "orderType": "Market",
         "qty": "0.10"}
    )  # fmt: skip
    _hedged(sim, monkeypatch)
    s = Seat(registry(sim.url, tmp_path), "s")
    with pytest.raises(QktError) as refused:
        await s.broker.start("s")
    (diagnostic,) = refused.value.diagnostics
    assert "ETHUSDT in hedge mode; qkt trades one-way mode only" in diagnostic.message
    await s.broker.aclose()


async def test_a_flat_symbol_in_hedge_mode_refuses_its_orders_before_sending(
    sim: BybitSimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await seat(sim.url, tmp_path)  # nothing open: the guard cannot see the mode
    _hedged(sim, monkeypatch)
    await send(s.broker, s.order(1))
    assert "BTCUSDT is in hedge mode; qkt trades one-way mode only" in s.rejections()[0]
    assert bodies(sim) == []
    await s.broker.aclose()


# ---------------------------------------------------------------- restarts
async def test_a_restarted_session_takes_back_its_own_share_of_an_open_linear_position(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    reg = registry(sim.url, tmp_path)
    s, t = Seat(reg, "s"), Seat(reg, "t")
    await asyncio.gather(s.start(), t.start())
    await send(s.broker, s.order(1, qty="0.020", take_profit=Decimal("90000")))
    await send(t.broker, t.order(1, qty="0.005"))  # one net position of 0.025
    await asyncio.gather(s.broker.aclose(), t.broker.aclose())
    again = registry(sim.url, tmp_path)  # the next run: a new connection, no journal
    s2, t2, u2 = Seat(again, "s"), Seat(again, "t"), Seat(again, "u")
    await asyncio.gather(s2.start(), t2.start(), u2.start())
    avg = position(sim).avg
    assert [(r.symbol, r.side, r.qty, r.price) for r in s2.broker.recovered] == [
        ("BTCUSDT", "buy", Decimal("0.020"), avg)
    ]
    assert [(r.symbol, r.qty) for r in t2.broker.recovered] == [("BTCUSDT", Decimal("0.005"))]
    assert u2.broker.recovered == []  # no execution of its own
    sim.state.set_quote("BTCUSDT", Decimal("90000.0"), Decimal("90000.2"))  # the venue's TP
    await asyncio.gather(s2.broker.poll(), t2.broker.poll(), u2.broker.poll())
    assert [(f.side, f.qty, f.reason) for f in s2.fills()] == [
        ("sell", Decimal("0.020"), "take_profit")
    ]
    assert [(f.side, f.qty, f.reason) for f in t2.fills()] == [
        ("sell", Decimal("0.005"), "take_profit")
    ]
    assert u2.fills() == []
    for x in (s2, t2, u2):
        await x.broker.aclose()


async def test_with_a_journal_a_restarted_session_takes_back_the_quantity_it_records(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    s = await seat(sim.url, tmp_path)
    await send(s.broker, s.order(1, qty="0.020"))
    await s.broker.aclose()
    again = Seat(registry(sim.url, tmp_path), "s")
    again.broker.journal_holds = {"BTCUSDT": Decimal("0.015")}  # 0.005 went by hand meanwhile
    await again.start()
    assert [(r.symbol, r.qty) for r in again.broker.recovered] == [("BTCUSDT", Decimal("0.015"))]
    too_much = Seat(registry(sim.url, tmp_path), "s")
    too_much.broker.journal_holds = {"BTCUSDT": Decimal("0.500")}
    await too_much.start()  # never more than Bybit holds
    assert [(r.symbol, r.qty) for r in too_much.broker.recovered] == [("BTCUSDT", Decimal("0.020"))]
    await again.broker.aclose()
    await too_much.broker.aclose()


async def test_a_journaled_order_bybit_filled_is_settled_in_the_journal_not_filled_twice(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    s = await seat(sim.url, tmp_path)
    request = s.order(1)
    await send(s.broker, request)  # the run died before it journaled this order's outcome
    await s.broker.aclose()
    again = Seat(registry(sim.url, tmp_path), "s")
    settled: list[tuple[str, Decimal, Decimal]] = []
    again.broker.on_settled = lambda r, price, qty: settled.append((r.client_id, price, qty))
    again.broker.expect(request, s.link(1), datetime.now(UTC) - timedelta(minutes=1))
    await again.start()
    assert [(r.symbol, r.qty) for r in again.broker.recovered] == [("BTCUSDT", Decimal("0.010"))]
    assert settled == [(request.client_id, ASK, Decimal("0.010"))]
    assert await again.broker.resolve_expected() == 0
    assert again.fills() == []  # in the recovered position already
    assert len(bodies(sim)) == 1
    await again.broker.aclose()


async def test_a_journaled_order_of_unknown_outcome_counts_in_what_the_journal_takes_back(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    s = await seat(sim.url, tmp_path)
    await send(s.broker, s.order(1), s.order(2))  # 0.020 at Bybit; the journal saw only 0.010
    await s.broker.aclose()
    again = Seat(registry(sim.url, tmp_path), "s")
    again.broker.journal_holds = {"BTCUSDT": Decimal("0.010")}
    settled: list[tuple[str, Decimal]] = []
    again.broker.on_settled = lambda r, price, qty: settled.append((r.client_id, qty))
    again.broker.expect(s.order(2), s.link(2), datetime.now(UTC))
    await again.start()
    assert [(r.symbol, r.qty) for r in again.broker.recovered] == [("BTCUSDT", Decimal("0.020"))]
    assert settled == [(f"{s.prefix}-000002", Decimal("0.010"))]  # no second fill
    assert again.broker.expected == 0 and again.fills() == []
    await again.broker.aclose()


async def test_a_journaled_order_bybit_never_saw_is_not_placed_and_frees_its_symbol(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    s = Seat(registry(sim.url, tmp_path), "s")
    lost = s.order(1)  # journaled, then the run died before sending it
    s.broker.expect(lost, s.link(1), datetime.now(UTC) - timedelta(minutes=1))
    await s.start()
    assert s.broker.expected == 1
    assert await s.broker.resolve_expected() == 0
    assert s.kinds() == ["OrderRejected"] and "not placed" in s.rejections()[0]
    await send(s.broker, s.order(2))
    assert [b["orderLinkId"] for b in bodies(sim)] == [s.link(2)]  # never the lost one
    await s.broker.aclose()


async def test_a_journaled_order_just_sent_blocks_its_symbol_until_bybit_can_tell(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    s = Seat(registry(sim.url, tmp_path, "    recv_window_ms: 400\n"), "s")
    s.broker.expect(s.order(1), s.link(1), datetime.now(UTC))  # may still arrive at Bybit
    await s.start()
    await send(s.broker, s.order(2))
    assert "unknown outcome; not sending more" in s.rejections()[-1]
    await asyncio.sleep(0.5)
    assert await s.broker.resolve_expected() == 0
    await send(s.broker, s.order(3))
    assert [b["orderLinkId"] for b in bodies(sim)] == [s.link(3)]
    await s.broker.aclose()


# ---------------------------------------------------------------- spot
@pytest.fixture
def spot(sim: BybitSimServer, tmp_path: Path) -> BrokerRegistry:
    return registry(sim.url, tmp_path, category="spot")


async def test_spot_orders_are_in_the_base_coin_checked_against_base_precision_and_min_amount(
    sim: BybitSimServer, spot: BrokerRegistry
) -> None:
    s = await Seat(spot, "s").start()
    await send(
        s.broker,
        s.order(1, qty="0.0000015"),  # off basePrecision 0.000001
        s.order(2, qty="0.00005"),  # 4.33 USDT: below minOrderAmt 5
    )
    first, second = s.rejections()
    assert "not a multiple of the step 0.000001" in first
    assert "below the minimum 5" in second
    assert bodies(sim) == []
    await send(s.broker, s.order(3, qty="0.0001"))
    (body,) = bodies(sim)
    assert body == {
        "category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
        "qty": "0.0001", "orderLinkId": s.link(3), "marketUnit": "baseCoin",
    }  # fmt: skip
    (row,) = executions(sim, s.link(3))
    assert row["feeCurrency"] == "BTC"  # a spot buy pays its fee in the coin it buys
    arrived = Decimal(row["execQty"]) - Decimal(row["execFee"])
    assert arrived == sim.state.ledger.coins["BTC"] == Decimal("0.0000999")
    (fill,) = s.fills()  # what can be sold again: down to the basePrecision grid
    assert (fill.qty, fill.price) == (Decimal("0.000099"), ASK)
    paid = Decimal(row["execQty"]) * ASK
    assert fill.qty * fill.price + fill.commission == paid  # the fee and the dust, in USDT
    await s.broker.aclose()


@pytest.mark.parametrize(("bid", "reason"), [("88500.0", "take_profit"), ("84500.0", "stop_loss")])
async def test_a_spot_bracket_is_held_by_qkt_and_sold_when_a_later_poll_sees_a_leg_crossed(
    sim: BybitSimServer, spot: BrokerRegistry, bid: str, reason: str
) -> None:
    s = await Seat(spot, "s").start()
    legs = s.order(1, qty="0.001", stop_loss=Decimal("85000"), take_profit=Decimal("88000"))
    await send(s.broker, legs)
    (bought,) = bodies(sim)
    assert "takeProfit" not in bought and "stopLoss" not in bought  # not native on spot
    await s.broker.poll()
    assert len(bodies(sim)) == 1  # the bid (86500) crosses neither leg
    price = Decimal(bid)
    sim.state.set_quote("BTCUSDT", price, price + Decimal("0.5"))
    await s.broker.poll()
    await s.broker.settle()
    _, sold = bodies(sim)
    assert (sold["side"], sold["marketUnit"]) == ("Sell", "baseCoin")
    assert Decimal(sold["qty"]) == s.fills()[0].qty  # what the buy left in the wallet
    last = s.fills()[-1]
    assert (last.side, last.reason, last.price) == ("sell", reason, price)
    assert last.qty == s.fills()[0].qty
    assert sim.state.ledger.coins.get("BTC", Decimal(0)) == 0
    await s.broker.poll()
    assert len(bodies(sim)) == 2  # sent once
    await s.broker.aclose()


async def test_a_journaled_spot_order_bybit_filled_is_reported_as_its_fill_at_restart(
    sim: BybitSimServer, spot: BrokerRegistry, tmp_path: Path
) -> None:
    s = await Seat(spot, "s").start()
    request = s.order(1, qty="0.001")
    await send(s.broker, request)
    await s.broker.aclose()
    again = Seat(registry(sim.url, tmp_path, category="spot"), "s")
    again.broker.expect(request, s.link(1), datetime.now(UTC) - timedelta(minutes=1))
    await again.start()
    assert again.broker.recovered == []  # spot holdings are balances, not positions
    assert await again.broker.resolve_expected() == 0
    (fill,) = again.fills()
    assert (fill.client_id, fill.side, fill.price) == (request.client_id, "buy", ASK)
    assert len(bodies(sim)) == 1
    await again.broker.aclose()


async def test_a_spot_bracket_crossed_while_its_symbol_is_blocked_acts_once_it_is_free(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    """An order of unknown outcome blocks the symbol for the recv window: the stop crossed
    meanwhile must not be lost, but sell once Bybit has shown the order was not placed."""
    s = await Seat(registry(sim.url, tmp_path, "    recv_window_ms: 400\n", category="spot"),
                   "s").start()  # fmt: skip
    await send(s.broker, s.order(1, qty="0.001", stop_loss=Decimal("85000")))
    faults(sim, create_5xx_before=1)
    await send(s.broker, s.order(2, qty="0.001"))
    assert s.kinds()[-1] == "OrderUnknown"
    sim.state.set_quote("BTCUSDT", Decimal("84900.0"), Decimal("84900.5"))  # through the stop
    await s.broker.poll()
    await s.broker.settle()
    assert [b["side"] for b in bodies(sim)] == ["Buy", "Buy"]  # blocked: nothing sold yet
    await asyncio.sleep(0.5)
    await s.broker.poll()  # order 2 was not placed: the symbol is free, the stop acts
    await s.broker.settle()
    assert "not placed" in s.rejections()[-1]
    assert [b["side"] for b in bodies(sim)] == ["Buy", "Buy", "Sell"]
    last = s.fills()[-1]
    assert (last.side, last.reason, last.qty) == ("sell", "stop_loss", s.fills()[0].qty)
    await s.broker.aclose()


async def test_a_spot_stop_whose_sell_could_not_be_sent_is_tried_again_at_the_next_poll(
    sim: BybitSimServer, spot: BrokerRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await Seat(spot, "s").start()
    await send(s.broker, s.order(1, qty="0.001", stop_loss=Decimal("85000")))
    venue = s.broker.venue
    quote = venue.quote
    asked: list[str] = []

    async def tickers_down_once(symbol: str) -> Any:
        asked.append(symbol)
        if len(asked) == 2:  # the sell's own read of the quote: Bybit does not answer
            raise BybitError(error("venue-unavailable", "tickers: no answer after 3 attempts"))
        return await quote(symbol)

    monkeypatch.setattr(venue, "quote", tickers_down_once)
    sim.state.set_quote("BTCUSDT", Decimal("84900.0"), Decimal("84900.5"))
    await s.broker.poll()
    await s.broker.settle()
    assert "no answer" in s.rejections()[-1] and len(bodies(sim)) == 1  # nothing went out
    await s.broker.poll()
    await s.broker.settle()
    assert [b["side"] for b in bodies(sim)] == ["Buy", "Sell"]
    assert s.fills()[-1].reason == "stop_loss"
    await s.broker.aclose()


async def test_what_bybits_own_exits_closed_is_not_taken_back_after_a_restart(
    sim: BybitSimServer, tmp_path: Path
) -> None:
    """s's position was closed by its take-profit, then t opened one: after a restart s takes
    back nothing, t its own — not both t's."""
    reg = registry(sim.url, tmp_path)
    s, t = Seat(reg, "s"), Seat(reg, "t")
    await asyncio.gather(s.start(), t.start())
    await send(s.broker, s.order(1, qty="0.020", take_profit=Decimal("87000")))
    sim.state.set_quote("BTCUSDT", Decimal("87000.0"), Decimal("87000.5"))  # Bybit's TP: flat
    await asyncio.gather(s.broker.poll(), t.broker.poll())
    assert s.fills()[-1].reason == "take_profit"
    await send(t.broker, t.order(1, qty="0.005"))
    await asyncio.gather(s.broker.aclose(), t.broker.aclose())
    again = registry(sim.url, tmp_path)
    s2, t2 = Seat(again, "s"), Seat(again, "t")
    await asyncio.gather(s2.start(), t2.start())
    assert s2.broker.recovered == []
    assert [(r.symbol, r.qty) for r in t2.broker.recovered] == [("BTCUSDT", Decimal("0.005"))]
    for x in (s2, t2):
        await x.broker.aclose()
