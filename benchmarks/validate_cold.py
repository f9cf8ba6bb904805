"""Cold-process ``qkt validate`` of one strategy: median wall time over N runs (SPEC §9: ≤150 ms).

Usage: python benchmarks/validate_cold.py [--runs 20] [FILE]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(cmd: list[str], runs: int) -> list[float]:
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False)  # warm the OS file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False)
        times.append((time.perf_counter() - start) * 1000)
        if proc.returncode != 0:
            sys.exit(
                f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout.decode()}{proc.stderr.decode()}"
            )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("file", nargs="?", default="examples/momentum.qkt")
    args = parser.parse_args()
    qkt = shutil.which("qkt") or sys.exit("qkt is not installed: pip install -e .")
    baseline = measure([sys.executable, "-c", "pass"], args.runs)
    times = measure([qkt, "validate", args.file], args.runs)
    print(f"cold `qkt validate {args.file}` over {args.runs} runs:")
    print(f"  median {statistics.median(times):7.1f} ms   (target <= 150 ms)")
    print(f"  min    {min(times):7.1f} ms   max {max(times):.1f} ms")
    print(f"  bare interpreter start: median {statistics.median(baseline):.1f} ms")


if __name__ == "__main__":
    main()
