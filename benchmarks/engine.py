"""Engine throughput: an EMA-cross replay of 1-minute bars with paper fills, qkt beside backtrader.

Usage: python benchmarks/engine.py [--bars 500000]
Both run the same strategy on the same in-memory bars in this process and must make the same trades.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.emacross import make_bars, rows, run_backtrader, run_qkt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=500_000)
    args = parser.parse_args()
    bars = make_bars(args.bars)
    replay = rows(bars)
    start = time.perf_counter()
    ours = run_qkt(replay)
    qkt_rate = args.bars / (time.perf_counter() - start)
    start = time.perf_counter()
    theirs = run_backtrader(bars)
    bt_rate = args.bars / (time.perf_counter() - start)
    print(f"EMA(9)/EMA(21) cross, {args.bars:,} one-minute bars, paper fills:")
    print(f"  qkt        {qkt_rate:10,.0f} bars/s  ({len(ours)} fills)")
    print(f"  backtrader {bt_rate:10,.0f} bars/s  ({len(theirs)} fills)")
    print(f"  ratio      {qkt_rate / bt_rate:10.1f}x   (target >= 10x)")
    print(f"  same trades: {'yes' if ours == theirs else 'NO'}")


if __name__ == "__main__":
    main()
