"""Cold-process ``qkt validate`` of one strategy: median wall time over N runs (SPEC §9: ≤150 ms).

Usage: python benchmarks/validate_cold.py [--runs 20] [FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(cmd: list[str], runs: int, env: dict[str, str]) -> list[float]:
    # The first run warms the OS file cache and writes bytecode, as any installed copy has.
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False, env=env)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False, env=env)
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
    # The console script next to this interpreter: a version manager's shim on PATH (pyenv adds
    # ~35 ms of bash per start) is not part of qkt's start-up.
    beside = Path(sys.executable).parent / "qkt"
    qkt = str(beside) if beside.exists() else shutil.which("qkt")
    if qkt is None:
        sys.exit("qkt is not installed: pip install -e .")
    # An installed qkt has compiled bytecode; PYTHONDONTWRITEBYTECODE (set in some sandboxes)
    # would make every run recompile every module, which no user's machine does.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    baseline = measure([sys.executable, "-c", "pass"], args.runs, env)
    times = measure([qkt, "validate", args.file], args.runs, env)
    uncached = measure([qkt, "validate", args.file], args.runs, {**env, "QKT_NO_CACHE": "1"})
    print(f"cold `qkt validate {args.file}` over {args.runs} runs (config from {ROOT.name}/):")
    print(f"  median {statistics.median(times):7.1f} ms   (target <= 150 ms)")
    print(f"  min    {min(times):7.1f} ms   max {max(times):.1f} ms")
    print(
        f"  with QKT_NO_CACHE=1 (config validated by pydantic every run): "
        f"median {statistics.median(uncached):.1f} ms"
    )
    print(f"  bare interpreter start: median {statistics.median(baseline):.1f} ms")


if __name__ == "__main__":
    main()
