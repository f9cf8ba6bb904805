"""End to end: ``qkt run`` and ``qkt validate --probe`` as real processes against ``qkt sim bybit``
(and ``qkt sim gateway``) running as processes of their own, over the real wire protocols."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from qkt.brokers.bybit.client import BybitClient
from qkt.brokers.bybit.ids import MAX_LINK
from qkt.brokers.bybit.models import Position
from tests.conftest import ROOT, clean_env
from tests.e2e.lab import free_port, wait
from tests.e2e.test_cli_subprocess import qkt_command

pytestmark = pytest.mark.slow

KEY, SECRET = "bb-e2e-key-5f1c", "bb-e2e-secret-9a2d"
GATEWAY_KEY = "gw-e2e-token-77d1"


class Process:
    """A simulator started as ``qkt sim ...``; its output kept in ``log``."""

    def __init__(self, base: Path, name: str, args: list[str], ready: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = base / f"{name}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [*qkt_command(), "sim", *args, "--port", str(self.port)],
                cwd=ROOT, env=clean_env(base), stdout=out, stderr=out,
            )  # fmt: skip
        wait(lambda: self._answers(ready), 30, f"qkt sim {args[0]}")

    def _answers(self, path: str) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"the simulator exited: {self.log.read_text()}")
        try:
            return httpx.get(f"{self.url}{path}", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Bybit(Process):
    def __init__(self, base: Path) -> None:
        super().__init__(
            base, "bybit",
            ["bybit", "--api-key", KEY, "--api-secret", SECRET, "--tick-ms", "0", "--seed", "2"],
            "/v5/market/time",
        )  # fmt: skip

    def quote(self, symbol: str, bid: str, ask: str) -> None:
        body = {"symbol": symbol, "bid": bid, "ask": ask}
        httpx.post(f"{self.url}/_sim/quote", json=body).raise_for_status()

    def creates(self) -> list[dict[str, Any]]:
        """Every order/create that arrived, its body parsed."""
        found = httpx.get(f"{self.url}/_sim/orders").json()["data"]
        return [{**r, "body": json.loads(r["body"])} for r in found]

    def positions(self, key: str = KEY) -> list[Position]:
        """The account's open linear positions, read as qkt reads them (signed)."""

        async def read() -> list[Position]:
            client = BybitClient(self.url, key, SECRET)
            try:
                return await client.positions("linear")
            finally:
                await client.aclose()

        return asyncio.run(read())


@pytest.fixture
def bybit(tmp_path: Path) -> Iterator[Bybit]:
    sim = Bybit(tmp_path)
    yield sim
    sim.stop()


def config(base: Path, bybit_url: str, extra: str = "", *, key: str = KEY) -> Path:
    path = base / "qkt.config.yaml"
    path.write_text(
        "brokers:\n"
        "  bybit:\n"
        "    type: bybit\n"
        f"    base_url: {bybit_url}\n"
        "    api_key: ${BB_KEY}\n"
        "    api_secret: ${BB_SECRET}\n"
        "    poll_interval_ms: 100\n"
        "    tick_poll_interval_ms: 100\n" + extra
    )
    return path


def env(base: Path, key: str = KEY) -> dict[str, str]:
    return clean_env(base / "home", BB_KEY=key, BB_SECRET=SECRET)


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def bars(base: Path, source: str, rows: int) -> Path:
    """The first ``rows`` data rows of an example file."""
    lines = (ROOT / "examples" / "data" / source).read_text().splitlines()
    path = base / source
    path.write_text("\n".join(lines[: rows + 1]) + "\n")
    return path


BRACKETED = """STRATEGY bracketed VERSION 1
SYMBOLS
btc = BYBIT:BTCUSDT EVERY 1m
RULES
WHEN POSITION.btc = 0 THEN BUY btc SIZING 0.01 BRACKET STOP_LOSS BY 1 PCT TAKE_PROFIT BY 1 PCT
"""


def test_a_replayed_strategy_trades_at_the_bybit_simulator_and_its_take_profit_comes_back(
    bybit: Bybit, tmp_path: Path
) -> None:
    bybit.quote("BTCUSDT", "86500.0", "86500.2")
    cfg = config(tmp_path, bybit.url)
    (tmp_path / "home").mkdir()
    strategy = tmp_path / "bracketed.qkt"
    strategy.write_text(BRACKETED)
    replay = bars(tmp_path, "btcusdt-1m.csv", 40)  # 40 bars at 600x: 4 s
    run = subprocess.Popen(
        [*qkt_command(), "--config", str(cfg), "run", str(strategy), "--replay", str(replay),
         "--speed", "600", "--json"],
        cwd=tmp_path, env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait(lambda: any(c["placed"] for c in bybit.creates()), 30, "the first order at Bybit")
        bybit.quote("BTCUSDT", "88000.0", "88000.2")  # through its take-profit, mid-run
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    said = events(out)
    kinds = [e["event"] for e in said]
    assert kinds == ["order", "fill", "fill", "order", "fill", "summary"], out
    first, bought, took, second, again, summary = said
    assert {e["route"] for e in said[:-1]} == {"bybit"}
    assert (bought["side"], bought["qty"], bought["reason"]) == ("buy", "0.01", "market")
    assert Decimal(bought["price"]) == Decimal("86500.2")  # Bybit's ask, not the replay's price
    assert (took["side"], took["qty"], took["reason"]) == ("sell", "0.01", "take_profit")
    assert Decimal(took["price"]) == Decimal("88000.0")  # Bybit's bid when its TP fired
    assert Decimal(again["price"]) == Decimal("88000.2")

    creates = bybit.creates()
    assert [c["placed"] for c in creates] == [True, True]  # nothing else reached Bybit
    for create, order in zip(creates, (first, second), strict=True):
        body = create["body"]
        assert (body["side"], body["qty"], body["tpslMode"]) == ("Buy", "0.01", "Full")
        assert Decimal(body["stopLoss"]) == Decimal(order["sl"])
        assert Decimal(body["takeProfit"]) == Decimal(order["tp"])
        assert len(body["orderLinkId"]) <= MAX_LINK
        assert body["orderLinkId"] == order["venue_id"]  # printed as Bybit knows it
    assert creates[0]["body"]["orderLinkId"] != creates[1]["body"]["orderLinkId"]
    # the legs 1 % from Bybit's ask at send time, on its 0.1 tick
    assert Decimal(first["tp"]) == Decimal("87365.2")
    assert Decimal(second["sl"]) == Decimal("87120.2")

    assert summary["trades"] == 1 and Decimal(summary["realized_pnl"]) > 0
    assert summary["open_positions"] == [
        {"label": "BYBIT", "symbol": "BTCUSDT", "qty": "0.01", "avg_price": "88000.2"}
    ]
    (held,) = bybit.positions()
    assert (held.symbol, held.side, held.size) == ("BTCUSDT", "Buy", Decimal("0.01"))
    assert SECRET not in out + err and KEY not in out + err


LIVE = """STRATEGY live VERSION 1
SYMBOLS
btc = BYBIT:BTCUSDT EVERY 1s
RULES
WHEN POSITION.btc = 0 THEN BUY btc SIZING 0.001 BRACKET STOP_LOSS BY 2 PCT
"""


def test_a_live_run_is_priced_by_bybits_tickers_and_stops_cleanly_on_sigterm(
    bybit: Bybit, tmp_path: Path
) -> None:
    bybit.quote("BTCUSDT", "86400.0", "86400.3")
    cfg = config(tmp_path, bybit.url, "market_data:\n  source: venue\n")
    (tmp_path / "home").mkdir()
    strategy = tmp_path / "live.qkt"
    strategy.write_text(LIVE)
    run = subprocess.Popen(
        [*qkt_command(), "--config", str(cfg), "run", str(strategy), "--json"],
        cwd=tmp_path, env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert run.stdout is not None
        lines = iter(run.stdout.readline, "")
        said = []
        for line in lines:  # written as they happen: read until the fill
            said.append(json.loads(line))
            if said[-1]["event"] == "fill":
                break
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143, err
    said += events(out)
    fill = next(e for e in said if e["event"] == "fill")
    assert (fill["route"], fill["qty"], Decimal(fill["price"])) == (
        "bybit", "0.001", Decimal("86400.3"),
    )  # fmt: skip
    order = next(e for e in said if e["event"] == "order")
    assert Decimal(order["sl"]) == Decimal("84672.3")  # 2 % under Bybit's ask
    summary = said[-1]
    assert summary["event"] == "summary" and summary["interrupted"] is True
    assert len(bybit.creates()) == 1


def test_a_second_run_takes_back_the_position_and_buys_nothing(
    bybit: Bybit, tmp_path: Path
) -> None:
    cfg = config(tmp_path, bybit.url)
    (tmp_path / "home").mkdir()
    strategy = tmp_path / "bracketed.qkt"
    strategy.write_text(BRACKETED)
    replay = bars(tmp_path, "btcusdt-1m.csv", 5)
    args = [*qkt_command(), "--config", str(cfg), "run", str(strategy), "--replay", str(replay),
            "--json"]  # fmt: skip
    first = subprocess.run(args, cwd=tmp_path, env=env(tmp_path), capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert [e["event"] for e in events(first.stdout)] == ["order", "fill", "summary"]
    again = subprocess.run(args, cwd=tmp_path, env=env(tmp_path), capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert again.returncode == 0, again.stderr
    recovered, summary = events(again.stdout)
    assert (recovered["event"], recovered["route"], recovered["qty"]) == ("recovered", "bybit",
                                                                          "0.01")  # fmt: skip
    assert summary["open_positions"][0]["qty"] == "0.01"
    assert len(bybit.creates()) == 1


def test_a_refused_key_stops_the_run_before_any_bar_with_one_line(
    bybit: Bybit, tmp_path: Path
) -> None:
    cfg = config(tmp_path, bybit.url)
    (tmp_path / "home").mkdir()
    strategy = tmp_path / "bracketed.qkt"
    strategy.write_text(BRACKETED)
    replay = bars(tmp_path, "btcusdt-1m.csv", 5)
    result = subprocess.run(
        [*qkt_command(), "--config", str(cfg), "run", str(strategy), "--replay", str(replay)],
        cwd=tmp_path, env=env(tmp_path, key="wrong-key"), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    refusal = [line for line in result.stderr.splitlines() if "10003" in line]
    assert len(refusal) == 1 and "stream `btc` routes to `bybit`" in refusal[0], result.stderr
    assert "Traceback" not in result.stderr
    assert bybit.creates() == []


MIXED = """STRATEGY mixed VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
btc = BYBIT:BTCUSDT EVERY 1m
gold = BACKTEST:XAUUSD EVERY 1m
RULES
WHEN POSITION.eur = 0 THEN BUY eur SIZING 0.1
WHEN POSITION.btc = 0 THEN BUY btc SIZING 0.01
WHEN POSITION.gold = 0 THEN SELL gold SIZING 0.05
"""


def test_one_strategy_routes_each_leg_to_its_own_venue_in_one_session(
    bybit: Bybit, tmp_path: Path
) -> None:
    gateway = Process(
        tmp_path, "gateway",
        ["gateway", "--symbols", "EURUSDm", "--api-key", GATEWAY_KEY, "--tick-ms", "0"],
        "/health/live",
    )  # fmt: skip
    try:
        extra = f"  exness:\n    gateway_url: {gateway.url}\n    api_key: {GATEWAY_KEY}\n"
        cfg = config(tmp_path, bybit.url, extra)
        (tmp_path / "home").mkdir()
        strategy = tmp_path / "mixed.qkt"
        strategy.write_text(MIXED)
        replay = bars(tmp_path, "markets-1m.csv", 12)  # three minutes of four symbols
        result = subprocess.run(
            [*qkt_command(), "--config", str(cfg), "run", str(strategy), "--replay",
             str(replay), "--json"],
            cwd=tmp_path, env=env(tmp_path), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        said = events(result.stdout)
        orders = {e["symbol"]: e for e in said if e["event"] == "order"}
        fills = {e["symbol"]: e for e in said if e["event"] == "fill"}
        assert {s: o["route"] for s, o in orders.items()} == {
            "EURUSD": "exness", "BTCUSDT": "bybit", "XAUUSD": "paper",
        }  # fmt: skip
        assert {s: f["route"] for s, f in fills.items()} == {
            s: o["route"] for s, o in orders.items()
        }
        assert [e["event"] for e in said].count("order") == 3  # one each, once
        headers = {"Authorization": f"Bearer {GATEWAY_KEY}"}
        mt5 = httpx.get(f"{gateway.url}/_sim/orders", headers=headers).json()["data"]
        (sent,) = mt5
        assert (sent["body"]["symbol"], sent["body"]["type"]) == ("EURUSDm", "BUY")
        assert sent["body"]["client_order_id"] == orders["EURUSD"]["client_id"]
        (create,) = bybit.creates()
        assert (create["body"]["symbol"], create["body"]["side"]) == ("BTCUSDT", "Buy")
        assert create["placed"]
        assert fills["XAUUSD"]["side"] == "sell"  # paper: filled on the replay's price
        summary = said[-1]
        held = {p["symbol"]: p["qty"] for p in summary["open_positions"]}
        assert held == {"EURUSD": "0.1", "BTCUSDT": "0.01", "XAUUSD": "-0.05"}
        assert [(p.symbol, p.size) for p in bybit.positions()] == [("BTCUSDT", Decimal("0.01"))]
    finally:
        gateway.stop()


PROBED = """STRATEGY probed VERSION 1
SYMBOLS
btc = BYBIT:BTCUSDT EVERY 1m
eth = BYBIT:ETHUSDT EVERY 1m
RULES
WHEN POSITION.btc = 0 THEN BUY btc SIZING 0.01
"""


def test_validate_probe_asks_the_bybit_simulator_and_refuses_a_wrong_key(
    bybit: Bybit, tmp_path: Path
) -> None:
    cfg = config(tmp_path, bybit.url)
    (tmp_path / "home").mkdir()
    strategy = tmp_path / "probed.qkt"
    strategy.write_text(PROBED)
    args = [*qkt_command(), "--config", str(cfg), "validate", str(strategy), "--probe"]
    ready = subprocess.run([*args, "--format", "json"], cwd=tmp_path, env=env(tmp_path),
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ready.returncode == 0, ready.stdout + ready.stderr
    (probe,) = json.loads(ready.stdout)["probes"]
    assert (probe["type"], probe["target"], probe["ready"]) == ("bybit", bybit.url, True)
    limits = {s["symbol"]: (s["tradable"], s["min_volume"]) for s in probe["symbols"]}
    assert limits == {"BTCUSDT": (True, "0.001"), "ETHUSDT": (True, "0.01")}
    refused = subprocess.run(args, cwd=tmp_path, env=env(tmp_path, key="wrong-key"),
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 1
    assert "gateway-auth-refused" in refused.stdout + refused.stderr
    assert "API key is invalid" in refused.stdout + refused.stderr
    assert SECRET not in refused.stdout + refused.stderr
    assert bybit.creates() == []  # a probe sends nothing
