"""``qkt run --replay`` judges the whole file before the session starts: nothing is sent from a
file with a mistake anywhere in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.conftest import Runner
from tests.conftest import ROOT, Writer

MOMENTUM = str(ROOT / "examples" / "momentum.qkt")
EURUSD = ROOT / "examples" / "data" / "eurusd-1m.csv"


def first_rows(n: int) -> str:
    with EURUSD.open(encoding="utf-8") as fh:
        return "".join(next(fh) for _ in range(n + 1))


def test_a_mistake_late_in_the_file_stops_the_run_before_the_first_order(
    qkt: Runner, write: Writer
) -> None:
    bad = write("late.csv", first_rows(400) + "2026-03-02T06:40:00Z,1.08,1.09,1.07,nan,5\n")
    result = qkt("run", MOMENTUM, "--replay", str(bad), "--paper")
    assert result.code == 1
    assert result.out == ""  # no route, no order, no fill
    assert result.err == f"{bad}:402:37: error[replay-number]: close nan is not finite\n"


def test_every_mistake_of_the_file_is_listed_with_its_line(qkt: Runner, write: Writer) -> None:
    bad = write(
        "bad.csv",
        "time,open,high,low,close,volume\n"
        "2026-03-02T00:00:00Z,1,2,0.5,1.5,1\n"
        "1772409660,1,2,0.5,1.5,1\n"
        "2026-03-02T00:02:00Z,1,0.9,0.5,1.5,1\n"
        "2026-03-02T00:02:00Z,1,2,0.5,1.5,1\n",
    )
    result = qkt("run", MOMENTUM, "--replay", str(bad), "--paper")
    assert result.code == 1
    assert result.err.splitlines() == [
        f"{bad}:3:1: error[replay-epoch-seconds]: time 1772409660 as epoch milliseconds is "
        "1970-01-21T12:20:09Z (looks like epoch seconds; use milliseconds or ISO-8601)",
        f"{bad}:4:24: error[replay-bar-range]: high 0.9 is below max(open, close) 1.5",
        f"{bad}:5:1: error[replay-duplicate]: time 2026-03-02T00:02:00Z repeats line 4's "
        "(times must increase)",
    ]


def test_a_bom_header_replays(qkt: Runner, write: Writer) -> None:
    data = write("bom.csv", "\ufeff" + first_rows(300))
    result = qkt("run", MOMENTUM, "--replay", str(data), "--paper")
    assert result.code == 0, result.err
    assert " order " in result.out


def test_a_symbol_no_stream_trades_is_a_warning_and_the_run_goes_on(
    qkt: Runner, write: Writer
) -> None:
    markets = ROOT / "examples" / "data" / "markets-1m.csv"
    result = qkt("run", MOMENTUM, "--replay", str(markets), "--paper")
    assert result.code == 0, result.err
    assert (
        f"{markets}: warning[replay-symbol]: no stream trades BTCUSDT (line 2), ETHUSDT (line 3), "
        "XAUUSD (line 5): their rows are ignored (the strategy's symbols: EURUSD)"
    ) in result.err
    assert result.out.splitlines()[-1].startswith("summary: ")


def test_the_configured_replay_is_judged_too(qkt: Runner, write: Writer) -> None:
    write("data/bad.csv", "time,bid,ask\n2026-03-02T00:00:00Z,1.2,1.1\n")
    write("qkt.config.yaml", "market_data:\n  source: replay\n  replay: {path: data/bad.csv}\n")
    result = qkt("run", MOMENTUM, "--paper")
    assert result.code == 1
    assert result.out == ""
    assert "bad.csv:2:22: error[replay-quote]: bid 1.2 is above ask 1.1" in result.err


def test_a_line_beyond_the_limit_is_one_line_of_error(qkt: Runner, write: Writer) -> None:
    bad = write("long.csv", first_rows(3) + "2026-03-02T00:03:00Z," + "1" * 300_000 + "\n")
    result = qkt("run", MOMENTUM, "--replay", str(bad), "--paper")
    assert result.code == 1
    assert result.err == (
        f"{bad}:5: error[replay-line-too-long]: the line is longer than 131,072 characters\n"
    )


@pytest.mark.parametrize("speed", ["nan", "inf", "-inf", "-1", "0", "abc", ""])
def test_a_speed_that_is_not_a_positive_finite_number_is_refused_before_anything_runs(
    qkt: Runner, write: Writer, speed: str
) -> None:
    data = write("data.csv", first_rows(300))
    result = qkt("run", MOMENTUM, "--replay", str(data), "--paper", "--speed", speed)
    assert result.code == 2
    assert result.out == ""
    (line,) = result.err.splitlines()
    assert f"'--speed': {speed!r} is not max, realtime or a positive finite multiplier" in line


def test_a_bad_speed_is_refused_before_a_live_run_connects(qkt: Runner) -> None:
    result = qkt("run", MOMENTUM, "--speed", "nan")
    assert result.code == 2
    assert result.out == ""
    assert "'--speed': 'nan' is not max, realtime" in result.err
    assert "gateway" not in result.err


def test_a_speed_multiplier_still_replays(qkt: Runner, write: Writer) -> None:
    data = write("data.csv", first_rows(60))
    result = qkt("run", MOMENTUM, "--replay", str(data), "--paper", "--speed", "1e9")
    assert result.code == 0, result.err


def test_sim_prices_are_judged_before_the_simulator_serves(qkt: Runner, write: Writer) -> None:
    bad = write("prices.csv", "time,open,high,low,close\n2026-03-02T00:00:00Z,1,2,0.5,nan\n")
    result = qkt("sim", "gateway", "--port", "5999", "--prices", str(bad))
    assert result.code == 1
    assert result.err == f"{bad}:2:30: error[replay-number]: close nan is not finite\n"


def test_a_replay_path_too_long_for_the_system_is_one_line(qkt: Runner) -> None:
    result = qkt("run", MOMENTUM, "--replay", "d" * 5000 + ".csv", "--paper")
    assert result.code == 2
    assert result.out == ""
    (line,) = result.err.splitlines()
    assert "'--replay'" in line and "does not exist" in line


def test_replay_rows_feed_only_their_symbol(qkt: Runner, write: Writer, tmp_path: Path) -> None:
    rows = first_rows(300).splitlines()
    text = rows[0] + ",symbol\n" + "".join(f"{r},EURUSD\n" for r in rows[1:])
    data = write("sym.csv", text)
    plain = write("plain.csv", first_rows(300))
    with_symbol = qkt("run", MOMENTUM, "--replay", str(data), "--paper")
    without = qkt("run", MOMENTUM, "--replay", str(plain), "--paper")
    assert with_symbol.code == without.code == 0
    assert with_symbol.out == without.out
    assert with_symbol.err == without.err == ""


@pytest.mark.timeout(30)
def test_a_replay_that_is_a_pipe_is_refused_without_waiting(qkt: Runner, tmp_path: Path) -> None:
    fifo = tmp_path / "quotes.csv"
    os.mkfifo(fifo)
    result = qkt("run", MOMENTUM, "--replay", str(fifo), "--paper")
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith(f"{fifo}: error[replay-not-a-file]: not a regular file")
