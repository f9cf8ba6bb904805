"""``qkt list``, ``qkt status``, ``qkt stop`` and ``qkt logs`` as a user sees them, talking over a
real Unix socket to the control API over a host with deployments (SPEC §5.5)."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qkt.daemon.client import DaemonClient
from qkt.daemon.statedir import StateDir
from tests.cli.conftest import Runner
from tests.daemon.served import FakeHost, Served, context_for, deployment, served


@pytest.fixture
def state_path() -> Iterator[Path]:
    """A short path: a Unix socket's path holds at most 107 bytes."""
    base = Path(tempfile.mkdtemp(prefix="qkt-"))
    yield base / "state"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def daemon(state_path: Path) -> Iterator[tuple[Served, FakeHost]]:
    context = context_for(state_path)
    host = FakeHost(state_path / "logs")
    with served(host, context) as running:
        yield running, host


def test_list_prints_one_row_per_deployment(
    qkt: Runner, state_path: Path, daemon: tuple[Served, FakeHost]
) -> None:
    result = qkt("--state-dir", str(state_path), "list")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "STRATEGY",
        "STATE",
        "SINCE",
        "ROUTES",
        "POSITIONS",
        "REALIZED",
        "PNL",
    ]
    eur = next(line for line in lines if "fx-book/eur-momentum" in line)
    assert "running" in eur and "2025-01-06 09:30:00Z" in eur
    assert "eur → exness, gbp → paper (fallback)" in eur
    assert "EXNESS:EURUSD +0.1" in eur and eur.rstrip().endswith("3.50")
    gbp = next(line for line in lines if "fx-book/gbp-swing" in line)
    assert " flat " in gbp
    assert "stopped" in next(line for line in lines if line.lstrip().startswith("momentum"))


def test_list_json_is_qkt_deployments_1_exactly(
    qkt: Runner, state_path: Path, daemon: tuple[Served, FakeHost]
) -> None:
    result = qkt("--state-dir", str(state_path), "list", "--json")
    assert result.code == 0
    body = result.json()
    assert list(body) == ["schema", "deployments"]
    assert body["schema"] == "qkt.deployments/1"
    assert list(body["deployments"][0]) == [
        "name",
        "portfolio",
        "strategy",
        "file",
        "state",
        "reason",
        "since",
        "strict",
        "params",
        "routes",
    ]
    assert list(body["deployments"][0]["routes"][0]) == [
        "alias",
        "label",
        "symbol",
        "timeframe",
        "profile",
        "type",
        "target",
        "broker_symbol",
        "magic",
        "fallback",
        "status",
    ]


def test_status_prints_routes_positions_fills_money_and_brokers(
    qkt: Runner, state_path: Path, daemon: tuple[Served, FakeHost]
) -> None:
    result = qkt("--state-dir", str(state_path), "status", "fx-book/eur-momentum")
    assert result.code == 0, result.err
    out = result.out
    assert out.startswith("fx-book/eur-momentum: running since 2025-01-06 09:30:00Z\n")
    assert "strategy momentum (momentum.qkt, portfolio fx-book), not strict, params fast=9" in out
    route = next(line for line in out.splitlines() if line.lstrip().startswith("eur "))
    assert route.split() == [
        "eur",
        "EXNESS:EURUSD",
        "1m",
        "exness",
        "mt5",
        "http://localhost:5001",
        "EURUSDm",
        "10001",
        "ok",
    ]
    assert "EXNESS:EURUSD  +0.1" in out and "1.08512" in out
    assert "eur-momentum-k3-000001" in out  # the last fill's client id
    assert "balance 10000, equity 10001.25" in out
    assert (
        "broker exness (mt5, http://localhost:5001): down since 2025-01-06 10:00:00Z: "
        "connection refused"
    ) in out


def test_status_of_a_portfolio_shows_every_child_and_json_is_qkt_status_1(
    qkt: Runner, state_path: Path, daemon: tuple[Served, FakeHost]
) -> None:
    text = qkt("--state-dir", str(state_path), "status", "fx-book")
    assert "fx-book/eur-momentum: running" in text.out
    assert "fx-book/gbp-swing: running" in text.out
    body = qkt("--state-dir", str(state_path), "status", "fx-book", "--json").json()
    assert body["schema"] == "qkt.status/1"
    child = body["deployments"][0]
    for key in ("positions", "orders", "fills", "balance", "equity", "brokers"):
        assert key in child
    assert list(child["positions"][0]) == [
        "label",
        "symbol",
        "qty",
        "avg_price",
        "unrealized_pnl",
        "realized_pnl",
    ]


def test_an_unknown_name_is_one_line_with_a_suggestion(
    qkt: Runner, state_path: Path, daemon: tuple[Served, FakeHost]
) -> None:
    for command in ("status", "stop", "logs"):
        result = qkt("--state-dir", str(state_path), command, "fx-bok")
        assert result.code == 1
        assert result.out == ""
        assert result.err == (
            "error[unknown-deployment]: no deployment or portfolio `fx-bok` "
            "(did you mean `fx-book`?)\n"
        )


def test_stop_prints_what_it_stopped_and_passes_flatten(
    qkt: Runner, state_path: Path, daemon: tuple[Served, FakeHost]
) -> None:
    _, host = daemon
    result = qkt("--state-dir", str(state_path), "stop", "fx-book", "--flatten")
    assert result.code == 0
    assert result.out.splitlines() == [
        "fx-book/eur-momentum: stopped: stopped by qkt stop",
        "fx-book/gbp-swing: stopped: stopped by qkt stop",
    ]
    assert host.stopped == [("fx-book", True)]
    again = qkt("--state-dir", str(state_path), "stop", "fx-book/gbp-swing", "--json")
    assert again.code == 0  # stopping a stopped deployment is not an error
    assert again.json()["schema"] == "qkt.deployments/1"
    assert host.stopped[-1] == ("fx-book/gbp-swing", False)


def test_logs_prints_the_last_lines(
    qkt: Runner, state_path: Path, daemon: tuple[Served, FakeHost]
) -> None:
    log = state_path / "logs" / "momentum.log"
    log.write_text(
        "".join(f"2025-01-06T09:3{i}:00.000Z INFO    momentum line {i}\n" for i in range(6))
    )
    result = qkt("--state-dir", str(state_path), "logs", "momentum", "-n", "2")
    assert result.code == 0
    assert result.out == (
        "2025-01-06T09:34:00.000Z INFO    momentum line 4\n"
        "2025-01-06T09:35:00.000Z INFO    momentum line 5\n"
    )


def test_a_child_named_logs_is_not_mistaken_for_the_portfolios_log(
    qkt: Runner, state_path: Path, daemon: tuple[Served, FakeHost]
) -> None:
    _, host = daemon
    host.items["fx-book/logs"] = deployment("fx-book/logs", "fx-book")
    (state_path / "logs" / "fx-book").mkdir(parents=True, exist_ok=True)
    (state_path / "logs" / "fx-book" / "eur-momentum.log").write_text(
        "2025-01-06T09:30:00.000Z INFO    fx-book/eur-momentum start\n"
    )
    status = qkt("--state-dir", str(state_path), "status", "fx-book/logs")
    assert status.out.startswith("fx-book/logs: running since ")
    logs = qkt("--state-dir", str(state_path), "logs", "fx-book")
    assert logs.out == "2025-01-06T09:30:00.000Z INFO    fx-book/eur-momentum start\n"


def test_follow_streams_new_lines_until_the_daemon_stops(
    state_path: Path, daemon: tuple[Served, FakeHost]
) -> None:
    running, _ = daemon
    log = state_path / "logs" / "momentum.log"
    log.write_text("2025-01-06T09:30:00.000Z INFO    momentum started\n")
    seen: list[str] = []

    def read() -> None:
        with DaemonClient(running_state(state_path)) as client:
            seen.extend(client.logs("momentum", n=10, follow=True))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_for(lambda: len(seen) == 1)
    with log.open("a") as handle:
        handle.write("2025-01-06T09:31:00.000Z INFO    momentum order BUY 0.1\n")
    wait_for(lambda: len(seen) == 2)
    running.stop()  # the stream ends with the daemon
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert [line.split(maxsplit=3)[3] for line in seen] == ["started", "order BUY 0.1"]


def test_json_output_is_what_the_daemon_sent(
    qkt: Runner, state_path: Path, daemon: tuple[Served, FakeHost]
) -> None:
    with DaemonClient(running_state(state_path)) as client:
        typed = client.status("momentum")
    printed = qkt("--state-dir", str(state_path), "status", "momentum", "--json").json()
    assert printed == json.loads(typed.model_dump_json(by_alias=True))


def running_state(path: Path) -> StateDir:
    return StateDir(path)


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
