"""Replay check beside replay: a CSV of 1-minute bars judged whole, then read, then traded.

Usage: python benchmarks/replay_check.py [--rows 500000]
Writes the bars of benchmarks/emacross.py to a temporary CSV and prints rows/s of
:func:`qkt.feeds.replaycheck.check_replay` (the pass `qkt run --replay` makes before its session
starts), of the reader alone (`ReplaySource`, already checked), and of the replay itself (the
reader feeding the EMA(9)/EMA(21) cross with paper fills), with the check's peak memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.emacross import START, STRATEGY, make_bars
from qkt.brokers.registry import BrokerRegistry
from qkt.dsl import parse_strategy
from qkt.feeds.replay import ReplaySource
from qkt.feeds.replaycheck import check_replay
from qkt.session import LiveSession


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        fh.write("time,open,high,low,close,volume\n")
        for i, (o, h, lo, c, v) in enumerate(make_bars(rows)):
            moment = (START + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            fh.write(f"{moment},{o},{h},{lo},{c},{v}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.csv"
        write_csv(path, args.rows)
        size = path.stat().st_size

        start = time.perf_counter()
        report = check_replay(path, ["EURUSD"])
        check_s = time.perf_counter() - start
        assert report.ok and report.rows == args.rows, report.diagnostics

        source = ReplaySource(path)
        source.report = report  # checked above: time the reader alone
        start = time.perf_counter()
        count = sum(1 for _ in source)
        read_s = time.perf_counter() - start

        parsed = parse_strategy(STRATEGY, "emacross.qkt")
        assert parsed.strategy is not None
        session = LiveSession(parsed.strategy, BrokerRegistry())
        source = ReplaySource(path)
        source.report = report
        start = time.perf_counter()
        summary = session.run(source)
        replay_s = time.perf_counter() - start

        tracemalloc.start()
        check_replay(path, ["EURUSD"])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

    print(f"replay check, {args.rows:,} one-minute bars ({size / 1e6:.1f} MB CSV):")
    print(f"  check        {args.rows / check_s:10,.0f} rows/s  ({check_s:.2f} s)")
    print(f"  reader       {count / read_s:10,.0f} rows/s  ({read_s:.2f} s)")
    print(
        f"  replay       {count / replay_s:10,.0f} rows/s  ({replay_s:.2f} s, "
        f"EMA cross, {summary.fills} paper fills)"
    )
    print(f"  check/replay {check_s / replay_s:10.2f}     (the check's share of a run)")
    print(f"  check peak memory {peak / 1e3:,.0f} kB (tracemalloc)")


if __name__ == "__main__":
    main()
