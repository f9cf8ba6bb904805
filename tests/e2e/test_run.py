"""``qkt run`` as a real process: deterministic output, JSON lines, clear errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import ROOT, Writer, clean_env
from tests.e2e.test_cli_subprocess import qkt_command


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*qkt_command(), *args],
        cwd=ROOT,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_same_input_gives_byte_identical_output(tmp_path: Path) -> None:
    args = (
        "run",
        "examples/gold_breakout.qkt",
        "--replay",
        "examples/data/xauusd-1m.csv",
        "--paper",
    )
    first, second = run(*args, home=tmp_path), run(*args, home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    lines = first.stdout.splitlines()
    assert lines[0].startswith("route  gold: EXNESS:XAUUSD 15m -> paper (--paper)")
    assert any(
        (" fill " in line and "(take_profit)" in line) or "(stop_loss)" in line for line in lines
    )
    assert lines[-1].startswith("summary: ")


def test_json_lines(tmp_path: Path) -> None:
    result = run(
        "run",
        "examples/eurusd_rsi.qkt",
        "--replay",
        "examples/data/eurusd-1m.csv",
        "--paper",
        "--json",
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"order", "fill", "summary"} <= kinds
    order = next(e for e in events if e["event"] == "order")
    assert {
        "time",
        "strategy",
        "alias",
        "label",
        "symbol",
        "side",
        "qty",
        "route",
        "client_id",
        "venue_id",
        "sl",
        "tp",
    } <= set(order)
    assert order["venue_id"] is None  # paper: no venue knows it
    assert order["time"].endswith("Z") and isinstance(order["qty"], str)
    fill = next(e for e in events if e["event"] == "fill")
    assert isinstance(fill["price"], str) and fill["client_id"].startswith("eurusd_rsi-")
    summary = events[-1]
    assert summary["event"] == "summary"
    assert {"trades", "fills", "realized_pnl", "max_drawdown", "final_equity"} <= set(summary)


def test_routing_follows_the_config_and_says_what_is_missing(tmp_path: Path) -> None:
    result = run(
        "run", "examples/momentum.qkt", "--replay", "examples/data/eurusd-1m.csv", home=tmp_path
    )
    assert result.returncode == 1
    assert "error[gateway-unavailable]" in result.stderr
    assert "http://localhost:5001 is unreachable (ConnectError)" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_replay_file_names_the_line(tmp_path: Path, write: Writer) -> None:
    bad = write(
        "bad.csv",
        "time,open,high,low,close\n2026-01-01T00:00:00Z,1,2,0.5,1.5\nnot-a-time,1,1,1,1\n",
    )
    result = run("run", "examples/momentum.qkt", "--replay", str(bad), "--paper", home=tmp_path)
    assert result.returncode == 1
    assert f"{bad}:3:1: error[replay-time]" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_stops_with_the_summary(tmp_path: Path) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [
            *qkt_command(),
            "run",
            "examples/momentum.qkt",
            "--replay",
            "examples/data/eurusd-1m.csv",
            "--paper",
            "--speed",
            "600",
            "--json",
        ],
        cwd=ROOT,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["event"] == "summary" and summary["interrupted"] is True
    assert "Traceback" not in err
