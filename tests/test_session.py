"""LiveSession: the plan `qkt validate` prints is the brokers the session builds; replays trade."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qkt.brokers.paper import PaperBroker
from qkt.brokers.registry import BrokerRegistry, RegistryEntry
from qkt.config import load_config
from qkt.dsl import parse_strategy, parse_strategy_file
from qkt.engine.events import OrderAccepted, OrderRequest
from qkt.feeds.replay import ReplaySource
from qkt.session import LiveSession, SessionRefused
from qkt.validation import Validator
from tests.conftest import ROOT, Writer

MIXED = """STRATEGY mixed VERSION 1
SYMBOLS
fx = EXNESS:EURUSD EVERY 1m
crypto = BACKTEST:BTCUSDT EVERY 1m
odd = OANDA:XAUUSD EVERY 1m
RULES
WHEN ema(fx, 3) crosses ABOVE ema(fx, 8) THEN BUY fx SIZING 0.1; BUY crypto SIZING 0.01; BUY odd SIZING 1
WHEN ema(fx, 3) crosses BELOW ema(fx, 8) THEN CLOSE_ALL
"""


class RecordingBroker:
    """A venue that accepts every order and records it (the MT5 adapter's place in this test)."""

    capabilities = frozenset({"market"})

    def __init__(self, name: str, bus: Any) -> None:
        self.name = name
        self.bus = bus
        self.requests: list[OrderRequest] = []

    def submit(self, request: OrderRequest) -> OrderAccepted:
        self.requests.append(request)
        accepted = OrderAccepted(request.client_id, self.name, request.time)
        self.bus.publish(accepted)
        return accepted

    def cancel(self, client_id: str) -> bool:
        return False

    def close_position(self, label: str, symbol: str) -> None:
        return None


def registry_with_recording_exness(root: Path) -> tuple[BrokerRegistry, list[RecordingBroker]]:
    config = load_config(root / "qkt.config.yaml", env={"QKT_NO_CACHE": "1"}, cwd=root)
    base = BrokerRegistry.from_config(config)
    built: list[RecordingBroker] = []

    def factory(bus: Any, clock: Any, prices: Any) -> RecordingBroker:
        broker = RecordingBroker("exness", bus)
        built.append(broker)
        return broker

    entries = {name: base[name] for name in base}
    entries["exness"] = RegistryEntry(base["exness"].profile, factory)
    return BrokerRegistry(entries), built


def test_session_builds_exactly_the_brokers_validate_previews(write: Writer) -> None:
    path = write("mixed.qkt", MIXED)
    registry, built = registry_with_recording_exness(ROOT)
    config = load_config(ROOT / "qkt.config.yaml", env={"QKT_NO_CACHE": "1"}, cwd=ROOT)
    report = Validator(config, env={}, registry=registry).validate([path]).to_json()
    previewed = report["files"][0]["routes"]
    parsed = parse_strategy_file(path)
    assert parsed.strategy is not None
    session = LiveSession(parsed.strategy, registry, path=str(path))
    assert [r.to_json() for r in session.plan.routes] == json.loads(json.dumps(previewed))
    by_alias = {r["alias"]: r for r in previewed}
    for alias, route in by_alias.items():
        broker = session.composite.broker_for(session.runtime.streams[alias].label)
        if route["type"] == "paper":
            assert isinstance(broker, PaperBroker)
        else:
            assert broker is built[0]
    assert len(built) == 1
    assert [d.code for d in session.warnings] == ["unknown-label"]


def test_strict_mode_refuses_the_unknown_label(write: Writer) -> None:
    registry, built = registry_with_recording_exness(ROOT)
    parsed = parse_strategy(MIXED, "mixed.qkt")
    assert parsed.strategy is not None
    with pytest.raises(SessionRefused) as info:
        LiveSession(parsed.strategy, registry, strict=True)
    assert [d.code for d in info.value.diagnostics] == ["unknown-label"]
    assert built == []  # nothing was built


def test_mixed_strategy_sends_the_exness_leg_to_its_broker_and_the_rest_to_paper() -> None:
    registry, built = registry_with_recording_exness(ROOT)
    parsed = parse_strategy(MIXED, "mixed.qkt")
    assert parsed.strategy is not None
    fills: list[Any] = []
    session = LiveSession(parsed.strategy, registry, on_event=fills.append)
    session.run(ReplaySource(ROOT / "examples" / "data" / "markets-1m.csv"))
    (exness,) = built
    assert exness.requests and {r.label for r in exness.requests} == {"EXNESS"}
    paper_fills = {(f.label, f.symbol) for f in fills if type(f).__name__ == "OrderFilled"}
    assert paper_fills == {("BACKTEST", "BTCUSDT"), ("OANDA", "XAUUSD")}


def test_empty_registry_is_all_paper_and_the_seed_trades() -> None:
    parsed = parse_strategy_file(ROOT / "examples" / "momentum.qkt")
    assert parsed.strategy is not None
    session = LiveSession(parsed.strategy, BrokerRegistry())
    summary = session.run(ReplaySource(ROOT / "examples" / "data" / "eurusd-1m.csv"))
    assert summary.fills > 0
    assert session.positions.get("EXNESS", "EURUSD").qty == Decimal("0.1") * summary.fills


@pytest.mark.anyio
async def test_unreachable_gateway_refuses_with_a_hint() -> None:
    env = {"QKT_NO_CACHE": "1", "QKT_BROKER_EXNESS_READY_TIMEOUT_MS": "200"}
    config = load_config(ROOT / "qkt.config.yaml", env=env, cwd=ROOT)
    parsed = parse_strategy_file(ROOT / "examples" / "momentum.qkt")
    assert parsed.strategy is not None
    session = LiveSession(parsed.strategy, BrokerRegistry.from_config(config))
    assert session.needs_loop  # EXNESS routes to an MT5 gateway: an asyncio edge
    with pytest.raises(SessionRefused) as info:
        await session.start()
    (d,) = info.value.diagnostics
    assert d.code == "gateway-unavailable" and "--paper" in (d.hint or "")
    paper = LiveSession(parsed.strategy, BrokerRegistry.from_config(config), paper_only=True)
    assert isinstance(paper.composite.broker_for("EXNESS"), PaperBroker)


def test_param_overrides_change_the_run() -> None:
    text = (ROOT / "examples" / "eurusd_rsi.qkt").read_text()
    parsed = parse_strategy(text, "r.qkt")
    assert parsed.strategy is not None
    source = ROOT / "examples" / "data" / "eurusd-1m.csv"
    base = LiveSession(parsed.strategy, BrokerRegistry()).run(ReplaySource(source))
    wide = LiveSession(parsed.strategy, BrokerRegistry(), params={"lots": Decimal("0.4")})
    other = wide.run(ReplaySource(source))
    assert other.fills == base.fills
    assert other.realized_pnl == base.realized_pnl * 2


def test_paper_profiles_build_paper_brokers_through_the_registry() -> None:
    config = load_config(ROOT / "qkt.config.yaml", env={"QKT_NO_CACHE": "1"}, cwd=ROOT)
    registry = BrokerRegistry.from_config(config)
    from qkt.engine.bus import EventBus
    from qkt.engine.clock import SimulatedClock
    from qkt.engine.prices import PriceTracker

    broker = registry["BACKTEST"].factory(EventBus(), SimulatedClock(), PriceTracker())
    assert isinstance(broker, PaperBroker)
    assert broker.name == "backtest"
    assert broker.capabilities == frozenset({"market", "bracket"})


def test_tick_replay_fills_at_bid_and_ask(write: Writer) -> None:
    lines = ["time,bid,ask,symbol"]
    for second in range(0, 600, 10):
        mid = 1.1 + (0.001 if second >= 300 else 0.0) + second * 1e-6
        stamp = f"2026-03-02T00:{second // 60:02d}:{second % 60:02d}Z"
        lines.append(f"{stamp},{mid - 0.0001:.5f},{mid + 0.0001:.5f},EURUSD")
    csv = write("ticks.csv", "\n".join(lines) + "\n")
    text = (
        "STRATEGY ticks VERSION 1\nSYMBOLS\ne = PAPER:EURUSD EVERY 1m\nRULES\n"
        "WHEN e.close > 1.1005 THEN BUY e SIZING 1\n"
    )
    parsed = parse_strategy(text, "t.qkt")
    assert parsed.strategy is not None
    events: list[Any] = []
    session = LiveSession(parsed.strategy, BrokerRegistry(), on_event=events.append)
    session.run(ReplaySource(csv))
    (fill,) = [e for e in events if type(e).__name__ == "OrderFilled"]
    # The 00:05 candle closes when the first tick of 00:06 arrives; the buy fills at that ask.
    assert fill.price == Decimal("1.10146") and fill.time.minute == 6
