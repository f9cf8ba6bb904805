"""The replay check as a library call: every rule of SPEC §7, positioned, in one streaming pass."""

from __future__ import annotations

import os
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qkt.diagnostics import Diagnostic
from qkt.feeds.replay import ReplayError, ReplaySource
from qkt.feeds.replaycheck import MAX_LINE, check_replay, check_replay_text
from tests.conftest import Writer

BARS = "time,open,high,low,close,volume\n"
T0 = "2026-03-02T00:00:00Z"
T1 = "2026-03-02T00:01:00Z"
T2 = "2026-03-02T00:02:00Z"


def lines_of(diags: list[Diagnostic] | tuple[Diagnostic, ...]) -> list[str]:
    return [d.format() for d in diags]


def only(write: Writer, text: str, symbols: list[str] | None = None) -> Diagnostic:
    """The one diagnostic a file with one mistake gets."""
    path = write("data.csv", text)
    report = check_replay(path, symbols)
    assert len(report.diagnostics) == 1, lines_of(report.diagnostics)
    return report.diagnostics[0]


def test_a_good_file_has_no_diagnostics_and_says_what_it_holds(write: Writer) -> None:
    path = write("good.csv", f"{BARS}{T0},1,2,0.5,1.5,10\n{T1},1.5,1.6,1.4,1.5,\n")
    report = check_replay(path, ["EURUSD"])
    assert report.ok and report.diagnostics == ()
    assert (report.kind, report.rows) == ("bars", 2)


def test_the_sample_data_passes(root: Path) -> None:
    for path in sorted((root / "examples" / "data").glob("*.csv")):
        report = check_replay(path)
        assert report.ok, lines_of(report.diagnostics)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "1: error[replay-empty]: the file is empty"),
        (BARS, "1: warning[replay-empty]: the header is not followed by any row"),
        (
            "time,open,high,close\n",
            "1: error[replay-header]: bars need the column low",
        ),
        (
            "time,open,high,low,close,close\n",
            "1:26: error[replay-duplicate-column]: column `close` appears twice (fields 5 and 6)",
        ),
        (
            "time,open,high,low,close,symbl\n",
            "1:26: error[replay-header]: unknown column `symbl` (did you mean `symbol`?)",
        ),
        ("stamp,price\n", "1: error[replay-header]: the header must be"),
        (
            "time,open,high,low,close,bid\n",
            "1:26: error[replay-header]: unknown column `bid`",
        ),
    ],
)
def test_header_mistakes(write: Writer, text: str, expected: str) -> None:
    diag = only(write, text)
    assert diag.format().startswith(f"{diag.path}:{expected}"), diag.format()


def test_a_utf8_bom_is_accepted(write: Writer) -> None:
    path = write("bom.csv", f"\ufeff{BARS}{T0},1,2,0.5,1.5,10\n")
    assert check_replay(path).ok
    assert [row.bar.close for row in ReplaySource(path) if row.bar] == [1.5]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("not-a-time,1,1,1,1,1", "3:1: error[replay-time]: time 'not-a-time' is neither"),
        ("99999999999999999999,1,1,1,1,1", "3:1: error[replay-time]: time 99999999999999999999"),
        ("2026-03-02T00:01:00Z,1,1,1", "3: error[replay-fields]: 4 fields, the header has 6"),
        ("2026-03-02T00:01:00Z,1,1,1,1,1,7", "3: error[replay-fields]: 7 fields"),
        ("2026-03-02T00:01:00Z,1,1,1,abc,1", "3:28: error[replay-number]: close 'abc' is not"),
        ("2026-03-02T00:01:00Z,1,1,1,nan,1", "3:28: error[replay-number]: close nan is not finite"),
        ("2026-03-02T00:01:00Z,inf,1,1,1,1", "3:22: error[replay-number]: open inf is not finite"),
        ("2026-03-02T00:01:00Z,1,1,0,1,1", "3:26: error[replay-number]: low 0 is not positive"),
        ("2026-03-02T00:01:00Z,1,1,-1,1,1", "3:26: error[replay-number]: low -1 is not positive"),
        ("2026-03-02T00:01:00Z,1,1,1,1,-5", "3:30: error[replay-number]: volume -5 is negative"),
        (
            "2026-03-02T00:01:00Z,1,1.5,0.9,1.6,1",
            "3:24: error[replay-bar-range]: high 1.5 is below max(open, close) 1.6",
        ),
        (
            "2026-03-02T00:01:00Z,1,1.5,1.1,1.2,1",
            "3:28: error[replay-bar-range]: low 1.1 is above min(open, close) 1",
        ),
        (
            "2026-03-01T23:59:00Z,1,1,1,1,1",
            "3:1: error[replay-order]: time 2026-03-01T23:59:00Z is before line 2's "
            "2026-03-02T00:00:00Z",
        ),
        (
            "2026-03-02T00:00:00Z,1,1,1,1,1",
            "3:1: error[replay-duplicate]: time 2026-03-02T00:00:00Z repeats line 2's",
        ),
    ],
)
def test_row_mistakes_name_line_and_field(write: Writer, row: str, expected: str) -> None:
    diag = only(write, f"{BARS}{T0},1,2,0.5,1.5,10\n{row}\n")
    assert diag.format().startswith(f"{diag.path}:{expected}"), diag.format()


def test_epoch_seconds_are_refused_with_a_hint(write: Writer) -> None:
    seconds = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp())
    diag = only(write, f"{BARS}{seconds},1,1,1,1,1\n")
    assert diag.code == "replay-epoch-seconds" and (diag.line, diag.column) == (2, 1)
    assert "looks like epoch seconds; use milliseconds or ISO-8601" in diag.format()


def test_epoch_milliseconds_and_offsets_are_times(write: Writer) -> None:
    ms = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)
    path = write(
        "data.csv",
        f"{BARS}{ms},1,1,1,1,1\n{ms + 60_000},1,1,1,1,1\n2026-03-02T02:02:00+02:00,1,1,1,1,1\n"
        "2026-03-02 00:03:00,1,1,1,1,1\n",
    )
    assert check_replay(path).ok


def test_ticks_bid_above_ask_and_their_numbers(write: Writer) -> None:
    path = write(
        "ticks.csv",
        f"time,bid,ask,volume\n{T0},1.1,1.2,1\n{T1},1.3,1.2,\n{T2},x,1.2,1\n",
    )
    report = check_replay(path)
    assert report.kind == "ticks"
    assert lines_of(report.diagnostics) == [
        f"{path}:3:22: error[replay-quote]: bid 1.3 is above ask 1.2",
        f"{path}:4:22: error[replay-number]: bid 'x' is not a number",
    ]


def test_every_mistake_is_reported_in_one_pass_and_the_list_is_bounded(write: Writer) -> None:
    body = "".join(f"2026-03-02T00:{m:02d}:00Z,1,1,1,x,1\n" for m in range(60))
    report = check_replay(write("data.csv", BARS + body))
    errors = [d for d in report.diagnostics if d.is_error]
    assert [d.line for d in errors[:3]] == [2, 3, 4]
    assert len(errors) == 20
    assert report.diagnostics[-1].format().endswith("stopped after 20 errors")


def test_times_increase_per_symbol_and_the_file_stays_in_time_order(write: Writer) -> None:
    header = "time,open,high,low,close,volume,symbol\n"
    path = write(
        "markets.csv",
        f"{header}{T0},1,1,1,1,1,EURUSD\n{T0},2,2,2,2,1,XAUUSD\n{T1},1,1,1,1,1,EURUSD\n"
        f"{T1},1,1,1,1,1,EURUSD\n{T0},2,2,2,2,1,XAUUSD\n",
    )
    assert lines_of(check_replay(path, ["EURUSD", "XAUUSD"]).diagnostics) == [
        f"{path}:5:1: error[replay-duplicate]: time 2026-03-02T00:01:00Z repeats line 4's "
        "(EURUSD: each symbol's times must increase)",
        f"{path}:6:1: error[replay-order]: time 2026-03-02T00:00:00Z is before line 5's "
        "2026-03-02T00:01:00Z (rows must be in time order)",
    ]


def test_symbols_no_stream_trades_are_a_warning(write: Writer) -> None:
    header = "time,open,high,low,close,volume,symbol\n"
    text = f"{header}{T0},1,1,1,1,1,EURUSD\n{T0},2,2,2,2,1,eurusd\n{T1},3,3,3,3,1,GBPUSD\n"
    path = write("markets.csv", text)
    report = check_replay(path, ["EURUSD"])
    assert report.ok
    assert lines_of(report.diagnostics) == [
        f"{path}: warning[replay-symbol]: no stream trades eurusd (line 3), GBPUSD (line 4): "
        "their rows are ignored (the strategy's symbols: EURUSD)"
    ]
    assert check_replay(path).diagnostics == ()  # without a strategy there is nothing to match


def test_an_empty_symbol_in_a_symbol_column_is_an_error(write: Writer) -> None:
    header = "time,open,high,low,close,volume,symbol\n"
    diag = only(write, f"{header}{T0},1,1,1,1,1,EURUSD\n{T1},1,1,1,1,1,\n", ["EURUSD"])
    assert diag.format().endswith("3:32: error[replay-symbol-empty]: the symbol is empty")


def test_a_line_over_the_limit_is_a_clean_error_and_the_check_goes_on(write: Writer) -> None:
    long = "x" * (MAX_LINE + 10)
    path = write("long.csv", f"{BARS}{T0},1,1,1,{long},1\n{T1},1,1,1,nan,1\n")
    assert lines_of(check_replay(path).diagnostics) == [
        f"{path}:2: error[replay-line-too-long]: the line is longer than {MAX_LINE:,} characters",
        f"{path}:3:28: error[replay-number]: close nan is not finite",
    ]


def test_a_field_over_the_csv_module_limit_in_the_reader_is_a_replay_error(write: Writer) -> None:
    path = write("long.csv", f'{BARS}{T0},1,1,1,"{"9" * 200_000}",1\n')
    with pytest.raises(ReplayError) as caught:
        list(ReplaySource(path))
    assert caught.value.diagnostics[0].line == 2


def test_text_that_is_not_utf8_names_its_line(write: Writer, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    rows = "".join(f"{1772409600000 + i * 60_000},1,1,1,1,1\n" for i in range(3000))
    path.write_bytes((BARS + rows + "caf\xe9,1,1,1,1,1\n").encode("latin-1"))
    (diag,) = check_replay(path).diagnostics
    assert diag.format() == f"{path}:3002: error[replay-encoding]: the line is not UTF-8 text"


def test_an_unreadable_path_is_one_diagnostic(tmp_path: Path) -> None:
    (diag,) = check_replay(tmp_path / "missing.csv").diagnostics
    assert (
        diag.format()
        == f"{tmp_path / 'missing.csv'}: error[replay-unreadable]: cannot read: No such file or directory"
    )
    (diag,) = check_replay(tmp_path).diagnostics
    assert diag.format() == f"{tmp_path}: error[replay-not-a-file]: a directory, not a file"


def test_the_check_streams_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with path.open("w", encoding="utf-8") as fh:
        fh.write(BARS)
        for i in range(60_000):  # ~3 MB
            moment = (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            fh.write(f"{moment},1.08501,1.08532,1.08487,1.08511,118.42\n")
    tracemalloc.start()
    try:
        report = check_replay(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok and report.rows == 60_000
    assert peak < 1_000_000, peak


def test_the_reader_refuses_what_the_check_refuses(write: Writer) -> None:
    path = write("data.csv", f"{BARS}{T0},1,2,0.5,1.5,10\n{T1},1,1,1,nan,1\n")
    with pytest.raises(ReplayError) as caught:
        list(ReplaySource(path))
    assert [d.code for d in caught.value.diagnostics] == ["replay-number"]


@pytest.mark.timeout(20)
def test_a_pipe_or_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "live.csv"
    os.mkfifo(fifo)  # opening it would wait for a writer
    for path in (fifo, Path("/dev/zero")):
        (diag,) = check_replay(path).diagnostics
        assert diag.format() == (
            f"{path}: error[replay-not-a-file]: not a regular file: a replay is read twice "
            "(checked, then replayed), so write it to a file first"
        )
        with pytest.raises(ReplayError):
            ReplaySource(path)


def test_a_stream_no_row_is_for_is_a_warning(write: Writer) -> None:
    header = "time,open,high,low,close,volume,symbol\n"
    path = write("markets.csv", f"{header}{T0},1,1,1,1,1,EURUSD\n")
    report = check_replay(path, ["EURUSD", "XAUUSD"])
    assert report.ok
    assert lines_of(report.diagnostics) == [
        f"{path}: warning[replay-unfed]: no row is for XAUUSD: its streams get no data"
    ]


def test_rows_held_in_memory_are_checked_alike() -> None:
    text = f"\ufeff{BARS}{T0},1,2,0.5,1.5,10\n{T1},1,1,1,nan,1\n"
    report = check_replay_text(text, "deployed.csv")
    assert lines_of(report.diagnostics) == [
        "deployed.csv:3:28: error[replay-number]: close nan is not finite"
    ]
    with pytest.raises(ReplayError):
        report.raise_for_errors()


def test_two_ticks_in_one_millisecond_are_market_data_not_a_mistake(write: Writer) -> None:
    path = write(
        "ticks.csv",
        "time,bid,ask\n1772409600000,1.1,1.2\n1772409600000,1.1,1.3\n1772409600001,1.1,1.2\n",
    )
    assert list(check_replay(path, ["EURUSD"]).diagnostics) == []
