"""Cold-process ``qkt list`` and ``qkt status NAME`` against a running daemon: median wall time over
N runs of each (SPEC §9: ≤ 150 ms, like ``qkt validate``).

Usage: python benchmarks/daemon_cli.py [--runs 20] [--state-dir DIR] [--name NAME]

Without --state-dir it starts a daemon of its own (``qkt daemon --detach``) on a temporary
``$XDG_STATE_HOME/qkt`` and stops it at the end; the clients then find it as a user's do, through
the configuration (``./qkt.config.yaml`` of the repository, read from its cache). NAME defaults
to the first deployment the daemon lists; with none, ``qkt status`` is timed on a name it does
not know (the answer is then the one-line "no deployment" error, exit 1: the same request, the
same imports).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(cmd: list[str], runs: int, env: dict[str, str], codes: tuple[int, ...]) -> list[float]:
    # The first run warms the OS file cache and writes bytecode, as any installed copy has.
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False, env=env)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False, env=env)
        times.append((time.perf_counter() - start) * 1000)
        if proc.returncode not in codes:
            sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr.decode()}")
    return times


def report(label: str, times: list[float]) -> None:
    print(
        f"  {label:<34} median {statistics.median(times):6.1f} ms   "
        f"min {min(times):6.1f}   max {max(times):6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    # The console script next to this interpreter, not a version manager's shim (see
    # validate_cold.py); bytecode written as on any user's machine.
    beside = Path(sys.executable).parent / "qkt"
    qkt = str(beside) if beside.exists() else shutil.which("qkt")
    if qkt is None:
        sys.exit("qkt is not installed: pip install -e .")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    own = args.state_dir is None
    if own:
        home = Path(tempfile.mkdtemp(prefix="qkt-bench-"))
        env = {**env, "XDG_STATE_HOME": str(home)}
        env.pop("QKT_STATE_DIR", None)
        base = [qkt]
    else:
        base = [qkt, "--state-dir", str(args.state_dir)]
    if own:
        started = subprocess.run(
            [*base, "daemon", "--detach"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if started.returncode != 0:
            sys.exit(f"qkt daemon --detach failed:\n{started.stderr}")
    try:
        listed = subprocess.run(
            [*base, "list", "--json"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if listed.returncode != 0:
            sys.exit(f"no daemon answers:\n{listed.stderr}")
        deployments = json.loads(listed.stdout)["deployments"]
        name = args.name or (deployments[0]["name"] if deployments else "not-deployed")
        known = any(d["name"] == name or d.get("portfolio") == name for d in deployments)
        baseline = measure([sys.executable, "-c", "pass"], args.runs, env, (0,))
        version = measure([qkt, "--version"], args.runs, env, (0,))
        text = measure([*base, "list"], args.runs, env, (0,))
        as_json = measure([*base, "list", "--json"], args.runs, env, (0,))
        status = measure([*base, "status", name], args.runs, env, (0,) if known else (1,))
        print(
            f"cold thin clients over {args.runs} runs each, {len(deployments)} deployment(s) "
            f"on the daemon (target <= 150 ms):"
        )
        report("qkt list", text)
        report("qkt list --json", as_json)
        report(f"qkt status {name}" + ("" if known else " (unknown)"), status)
        report("qkt --version (CLI start only)", version)
        report("bare interpreter start", baseline)
    finally:
        if own:
            subprocess.run([*base, "daemon", "stop"], cwd=ROOT, env=env, capture_output=True)
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
