"""``qkt validate --probe`` of a Bybit profile against the bundled simulator: the key, the account,
every routed symbol and the strategy's order sizes against the live lot sizes — and nothing sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from qkt.sim.bybit import DEFAULT_API_KEY, DEFAULT_API_SECRET, BybitSimServer
from tests.brokers.bybit.test_broker import bodies, counts, new_state, reset_counts
from tests.cli.conftest import Result, Runner, qkt  # noqa: F401  (the ``qkt`` fixture)
from tests.conftest import Writer

STRATEGY = """STRATEGY probe VERSION 1
SYMBOLS
btc = BYBIT:BTCUSDT EVERY 1m
eth = BYBIT:ETHUSDT EVERY 1m
RULES
WHEN POSITION.btc = 0 THEN BUY btc SIZING {size}
"""


@pytest.fixture
def sim() -> Iterator[BybitSimServer]:
    with BybitSimServer(new_state()) as server:
        yield server


def probe(
    qkt: Runner,  # noqa: F811
    write: Writer,
    url: str,
    *,
    key: str = DEFAULT_API_KEY,
    size: str = "0.001",
    symbols: str = "",
) -> tuple[Result, dict[str, Any]]:
    write(
        "qkt.config.yaml",
        f"brokers:\n  bybit:\n    type: bybit\n    base_url: {url}\n    api_key: {key}\n"
        f"    api_secret: {DEFAULT_API_SECRET}\n",
    )
    text = STRATEGY.format(size=size)
    if symbols:
        text = text.replace("RULES\n", f"{symbols}RULES\n")
    write("probe.qkt", text)
    result = qkt("validate", "probe.qkt", "--probe", "--format", "json")
    (answer,) = result.json()["probes"]
    return result, answer


def test_the_probe_finds_the_account_ready_and_every_routed_symbol_with_its_lot_sizes(
    qkt: Runner,  # noqa: F811
    write: Writer,
    sim: BybitSimServer,
) -> None:
    reset_counts(sim)
    result, answer = probe(qkt, write, sim.url)
    assert result.code == 0, result.out
    assert (answer["profile"], answer["type"], answer["ready"]) == ("bybit", "bybit", True)
    assert answer["account"]["margin_mode"] == "one-way" and answer["problem"] is None
    symbols = {s["symbol"]: s for s in answer["symbols"]}
    assert symbols["BTCUSDT"] == {
        "symbol": "BTCUSDT", "broker_symbol": "BTCUSDT", "tradable": True,
        "min_volume": "0.001", "volume_step": "0.001", "max_volume": "500.000", "digits": 1,
    }  # fmt: skip
    assert symbols["ETHUSDT"]["tradable"] and symbols["ETHUSDT"]["volume_step"] == "0.01"
    assert bodies(sim) == []
    assert not any(k.startswith("POST") for k in counts(sim))  # read-only questions


def test_the_probe_checks_order_sizes_against_the_live_lot_sizes(
    qkt: Runner,  # noqa: F811
    write: Writer,
    sim: BybitSimServer,
) -> None:
    result, _ = probe(qkt, write, sim.url, size="0.0005")
    assert result.code == 1
    codes = {d["code"] for d in result.json()["files"][0]["diagnostics"]}
    assert {"venue-volume-below-min", "venue-volume-off-step"} <= codes, result.out


def test_the_probe_says_a_symbol_bybit_does_not_list(
    qkt: Runner,  # noqa: F811
    write: Writer,
    sim: BybitSimServer,
) -> None:
    result, answer = probe(qkt, write, sim.url, symbols="doge = BYBIT:DOGEUSDT EVERY 1m\n")
    assert result.code == 1
    doge = next(s for s in answer["symbols"] if s["symbol"] == "DOGEUSDT")
    assert doge["tradable"] is False
    assert answer["problem"] == "Bybit linear has no DOGEUSDT (for DOGEUSDT): not listed"


def test_the_probe_refuses_a_key_bybit_does_not_know(
    qkt: Runner,  # noqa: F811
    write: Writer,
    sim: BybitSimServer,
) -> None:
    result, answer = probe(qkt, write, sim.url, key="not-the-key")
    assert result.code == 1
    assert answer["ready"] is False and answer["account"] is None
    assert "10003" in answer["problem"] and "API key is invalid" in answer["problem"]
    (said,) = [d for d in result.json()["diagnostics"] if d["severity"] == "error"]
    assert said["code"] == "gateway-auth-refused"
    assert DEFAULT_API_SECRET not in result.out and "not-the-key" not in result.out


def test_the_probe_refuses_a_read_only_key(
    qkt: Runner,  # noqa: F811
    write: Writer,
) -> None:
    with BybitSimServer(new_state(read_only=True)) as sim:
        result, answer = probe(qkt, write, sim.url)
    assert result.code == 1
    assert answer["ready"] is True  # it answers; it may not trade
    assert "the API key is read-only" in answer["problem"]
