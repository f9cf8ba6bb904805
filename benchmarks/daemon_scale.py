"""A daemon with many deployments on one profile (SPEC §9): N live deployments (default 200) of one
mt5 profile on the bundled simulator, quotes from the venue (``market_data.source: venue``, the
profile's default 1 s polls; the simulator moves its quotes every ``--tick-ms``).

Set-up as in ``gateway_load.py`` (a simulator, a temporary state dir and config, ``qkt daemon``):
one portfolio of N children, each a strategy on EXNESS:EURUSD with an EMA that warms up from the
gateway's bars and a rule that never fires, deployed with ``qkt deploy``. Figures:

(a) RSS of the daemon process (``VmRSS`` of ``/proc/<pid>/status``) in steady state: every child
    live, ``--settle`` s later, and again after the CPU window; beside the idle daemon's;
(b) restart: the daemon stopped with SIGTERM (as systemd does; the deployments stay ``running``),
    started again, and timed from its start until every child is ``running`` in
    ``GET /v1/deployments`` and then until every child is live in its status (broker ``up``,
    warm-up done — a restored deployment warms up only after it has recovered its venue
    positions and resolved its journal, SPEC §6.1); the deployments' logs give when the last
    ``restored: trading resumes`` was written;
(c) CPU: the daemon's user + system CPU time (``/proc/<pid>/stat``) over ``--window`` s of steady
    state, as a share of one core, per session-second, per quote a session processes (each
    session reads one new quote per 1 s poll) and per session-minute (one 1m bar: its 60
    quotes, the bar close, the rule evaluation and the position polls).

Usage: python benchmarks/daemon_scale.py [--deployments 200] [--window 30] [--quick]
(--quick: 20 deployments, a 10 s window.)
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.gateway_load import Live, cpu_s, diff, rss_mb

PORTFOLIO = "scale"
RSS_TARGET_MB = 300
RESTART_TARGET_S = 10.0
POLL_S = 1.0  # tick_poll_interval_ms of the profile (its default)
RESTORED = "restored: trading resumes"


def wait_running(run: Live, n: int, started: float, timeout: float) -> float:
    """Until ``GET /v1/deployments`` lists the ``n`` children ``running``; seconds since
    ``started``."""
    deadline = time.monotonic() + timeout
    while True:
        run.check_daemon()
        found = [d for d in run.deployments() if d["portfolio"] == PORTFOLIO]
        if len(found) == n and all(d["state"] == "running" for d in found):
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise SystemExit(f"not all running after {timeout:g} s")
        time.sleep(0.05)


def restore_times(run: Live, since: float) -> tuple[float | None, float | None, int]:
    """From the deployments' logs: seconds from ``since`` (a ``time.time()``) to the first
    ``restoring after a restart`` and to the last ``restored: trading resumes``, and how many
    said the latter."""
    answer = run.http.get(f"/v1/deployments/{PORTFOLIO}/logs", params={"n": "100000"})
    answer.raise_for_status()
    first: float | None = None
    last: float | None = None
    restored = 0
    for line in answer.text.splitlines():
        stamp, _, rest = line.partition(" ")
        try:
            at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - since
        except ValueError:
            continue
        if at < 0:
            continue
        if "restoring after a restart" in rest and first is None:
            first = at
        if RESTORED in rest:
            restored += 1
            last = at if last is None else max(last, at)
    return first, last, restored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--window", type=float, default=30.0, help="seconds of the CPU window")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after all are live")
    parser.add_argument("--tick-ms", type=int, default=250, help="the simulator's quote interval")
    parser.add_argument("--quick", action="store_true", help="20 deployments, a 10 s window")
    args = parser.parse_args()
    if args.quick:
        args.deployments, args.window = 20, 10.0
    n = args.deployments
    out: dict[str, Any] = {}
    with Live(args.tick_ms) as run:
        run.start_daemon()
        run.wait_socket()
        time.sleep(1)
        assert run.daemon is not None
        out["idle_rss"] = rss_mb(run.daemon.pid)[0]
        path = run.portfolio(n, PORTFOLIO)

        step("deploying", n)
        started = time.monotonic()
        run.deploy(path, n)
        out["deploy_s"] = time.monotonic() - started
        out["deploy_live_s"] = run.wait_live(n, 300 + n, PORTFOLIO) - started

        step("steady state", n)
        time.sleep(args.settle)
        pid = run.daemon.pid
        out["rss"] = rss_mb(pid)[0]
        before, cpu, wall = run.sim_requests(), cpu_s(pid), time.monotonic()
        time.sleep(args.window)
        cpu, wall = cpu_s(pid) - cpu, time.monotonic() - wall
        after = run.sim_requests()
        out["rss_after"], out["hwm"] = rss_mb(pid)
        out["cpu"], out["wall"] = cpu, wall
        out["req_s"] = sum(diff(after, before).values()) / (
            after["elapsed_s"] - before["elapsed_s"]
        )

        step("restarting", n)
        out["stop_s"] = run.stop_daemon()
        since_wall = time.time()
        at_start = run.sim_requests()
        started = run.start_daemon()
        out["socket_s"] = run.wait_socket() - started
        out["running_s"] = wait_running(run, n, started, 300 + n)
        out["live_s"] = run.wait_live(n, 300 + n, PORTFOLIO, every=0.1) - started
        out["restart_requests"] = diff(run.sim_requests(), at_start)
        out["first_restoring_s"], out["last_restored_s"], out["restored"] = restore_times(
            run, since_wall
        )
        time.sleep(args.settle)
        out["rss_restarted"] = rss_mb(run.daemon.pid)[0]
        run.stop_daemon()
    report(n, args, out)


def step(what: str, n: int) -> None:
    print(f"  {what} ({n} deployments)...", file=sys.stderr, flush=True)


def report(n: int, args: argparse.Namespace, out: dict[str, Any]) -> None:
    def row(figure: str, value: str, target: str = "—") -> None:
        print(f"  {figure:<62} {value:>16}   {target}")

    cpu, wall = out["cpu"], out["wall"]
    quotes = n * wall / POLL_S
    print(
        f"daemon with {n} live deployments on one mt5 profile (the simulator, venue quotes polled "
        f"every {POLL_S:g} s, quotes moving every {args.tick_ms} ms):"
    )
    print(f"  {'figure':<62} {'measured':>16}   target")
    row("(a) daemon RSS, steady state (all live + settle)", f"{out['rss']:.0f} MB", "<= 300 MB")
    after = f"{out['rss_after']:.0f} MB ({out['hwm']:.0f})"
    row(f"    the same after the {wall:.0f} s CPU window (peak VmHWM)", after)
    row("    idle daemon, no deployment", f"{out['idle_rss']:.0f} MB")
    per = (out["rss_after"] - out["idle_rss"]) / n * 1024
    row("    per deployment, above the idle daemon", f"{per:.0f} kB")
    row("    after the restart (all live + settle)", f"{out['rss_restarted']:.0f} MB")
    row(
        "(b) restart: daemon start -> all restored and live",
        f"{out['live_s']:.1f} s",
        f"<= {RESTART_TARGET_S:g} s",
    )
    row("    control socket answers", f"{out['socket_s']:.2f} s")
    row("    all listed `running` (GET /v1/deployments)", f"{out['running_s']:.2f} s")
    first, last = out["first_restoring_s"], out["last_restored_s"]
    row("    first `restoring after a restart` in the logs", _s(first))
    row(f"    last `{RESTORED}` ({out['restored']} said it)", _s(last))
    row("    SIGTERM -> the old daemon exited", f"{out['stop_s']:.2f} s")
    restart = out["restart_requests"]
    row("    gateway requests, start -> all live", str(sum(restart.values())))
    print(f"{'':<8}" + ", ".join(f"{k} {v}" for k, v in sorted(restart.items())))
    row("(c) daemon CPU in steady state, share of one core", f"{cpu / wall * 100:.1f} %")
    row("    per session-second", f"{cpu / wall / n * 1000:.2f} ms")
    row("    per quote a session processes (one per 1 s poll)", f"{cpu / quotes * 1e6:.0f} us")
    row(
        "    per session-minute (one 1m bar, its 60 quotes and polls)",
        f"{cpu / wall / n * 6e4:.0f} ms",
    )
    row("    gateway requests/s meanwhile", f"{out['req_s']:.0f}")
    row("`qkt deploy` of the portfolio (cold CLI included)", f"{out['deploy_s']:.1f} s")
    row("    deploy start -> all live (warmed up)", f"{out['deploy_live_s']:.1f} s")


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
