"""Gateway load (SPEC §9): HTTP requests per second reaching one gateway with 1, 10 and 100 live
sessions on one mt5 profile — target: within 1.2x of the 1-session figure.

What runs is what a user runs: the bundled simulator in its own process (quotes moving every
``--tick-ms``), a daemon (``qkt daemon``) on a temporary state dir whose config points the
``exness`` profile at it with ``market_data.source: venue`` (quotes polled from the gateway at the
profile's default intervals), and a portfolio of N copies of a strategy on EXNESS:EURUSD with an
indicator (so each session warms up from the gateway's bars) and a rule that never fires (it is
about polling, not orders), deployed with ``qkt deploy``. For each N: deploy, wait until every
child is ``running`` with its broker up and its warm-up done (``GET /v1/deployments/<portfolio>``
on the daemon's socket), wait ``--settle`` s, then count the requests the simulator answered over
``--window`` s (``GET /_sim/requests`` before and after, rates on the simulator's own clock);
then ``qkt stop``. The requests from ``qkt deploy`` to every child live are counted too.

Usage: python benchmarks/gateway_load.py [--sessions 1,10,100] [--window 10] [--settle 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PORTFOLIO = "load"
STRATEGY = """STRATEGY s{i} VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN ema(eur, 21) > 1000 THEN BUY eur SIZING 0.1
"""
"""Warms up from the gateway's M1 bars (21), polls quotes and positions, never sends an order."""
TARGET = 1.2


def qkt() -> list[str]:
    script = Path(sys.executable).parent / "qkt"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM (its peak) of a process, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Live:
    """A simulator, a temporary state dir and config, and the daemon on them; everything is
    stopped and removed on exit (errors and Ctrl-C included)."""

    def __init__(self, tick_ms: int) -> None:
        self.tick_ms = tick_ms
        self.base = Path(tempfile.mkdtemp(prefix="qkt-bench-"))
        self.state = self.base / "state"
        self.config = self.base / "qkt.config.yaml"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("QKT_")}
        self.env["NO_COLOR"] = "1"
        self.sim: subprocess.Popen[bytes] | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None
        self.sim_url = ""
        self.files = 0

    # ------------------------------------------------------------ lifetime
    def __enter__(self) -> Live:
        previous = signal.getsignal(signal.SIGTERM)
        self._previous_sigterm = previous

        def on_term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)  # a `kill` of the benchmark cleans up too
        try:
            self._start_sim()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            if self._http is not None:
                self._http.close()
        _stop(self.daemon)
        _stop(self.sim, 10)
        shutil.rmtree(self.base, ignore_errors=True)
        signal.signal(signal.SIGTERM, self._previous_sigterm)

    def _start_sim(self) -> None:
        port = _free_port()
        self.sim_url = f"http://127.0.0.1:{port}"
        command = [*qkt(), "sim", "gateway", "--port", str(port), "--symbols", "EURUSDm"]
        self.sim = subprocess.Popen(
            [*command, "--tick-ms", str(self.tick_ms)],
            cwd=self.base,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.base / "sim.log").open("wb"),
            start_new_session=True,  # Ctrl-C reaches the benchmark, which stops it
        )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.sim_url}/health/live", timeout=1).status_code == 200:
                    break
            if self.sim.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the simulator did not start:\n{self._tail('sim.log')}")
            time.sleep(0.1)
        self.config.write_text(
            f"market_data:\n  source: venue\nbrokers:\n  exness:\n    gateway_url: {self.sim_url}\n"
        )

    def start_daemon(self) -> float:
        """Start the daemon; the ``time.monotonic()`` it was started at."""
        started = time.monotonic()
        self.daemon = subprocess.Popen(
            [*self.common, "daemon"],
            cwd=self.base,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.base / "daemon.err").open("ab"),
            start_new_session=True,
        )
        return started

    def wait_socket(self, timeout: float = 60) -> float:
        """Until the daemon's control socket answers; when it did (``time.monotonic()``)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError, OSError):
                if self.http.get("/v1/daemon", timeout=2).status_code == 200:
                    return time.monotonic()
            self.check_daemon()
            if time.monotonic() > deadline:
                raise SystemExit("the daemon's socket did not answer")
            time.sleep(0.05)

    def stop_daemon(self) -> float:
        """SIGTERM, as systemd stops it; the seconds it took to exit."""
        assert self.daemon is not None
        started = time.monotonic()
        self.daemon.send_signal(signal.SIGTERM)
        code = self.daemon.wait(timeout=120)
        if code != 0:
            raise SystemExit(f"the daemon exited {code}:\n{self._tail('daemon.err')}")
        if self._http is not None:
            self._http.close()
            self._http = None
        return time.monotonic() - started

    def check_daemon(self) -> None:
        if self.daemon is not None and self.daemon.poll() is not None:
            raise SystemExit(
                f"the daemon exited {self.daemon.returncode}:\n{self._tail('daemon.err')}"
            )

    def _tail(self, name: str) -> str:
        path = self.base / name
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(lines[-20:])

    @property
    def common(self) -> list[str]:
        return [*qkt(), "--config", str(self.config), "--state-dir", str(self.state)]

    @property
    def http(self) -> httpx.Client:
        """The daemon's control API (HTTP over its Unix socket), as the CLI's thin clients use."""
        if self._http is None:
            self._http = httpx.Client(
                transport=httpx.HTTPTransport(uds=str(self.state / "qkt.sock")),
                base_url="http://qkt",
                timeout=60,
            )
        return self._http

    # ------------------------------------------------------------ deployments
    def portfolio(self, n: int, name: str = PORTFOLIO) -> Path:
        """A portfolio YAML of ``n`` children ``<name>/s0``..."""
        for i in range(self.files, n):
            (self.base / f"s{i}.qkt").write_text(STRATEGY.format(i=i))
        self.files = max(self.files, n)
        entries = "".join(f"  - file: s{i}.qkt\n" for i in range(n))
        path = self.base / f"{name}.yaml"
        path.write_text(f"name: {name}\nallow_shared_symbols: true\nstrategies:\n{entries}")
        return path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.common, *args], cwd=self.base, env=self.env, capture_output=True, text=True
        )

    def deploy(self, path: Path, n: int) -> None:
        done = self.cli("deploy", str(path), "--json")
        try:
            answer = json.loads(done.stdout)
        except ValueError:
            raise SystemExit(f"qkt deploy failed:\n{done.stdout}{done.stderr}") from None
        states = {d["state"] for d in answer["deployments"]}
        if not answer["ok"] or states != {"running"} or len(answer["deployments"]) != n:
            raise SystemExit(f"qkt deploy failed:\n{done.stdout[:4000]}{done.stderr}")

    def stop(self, name: str = PORTFOLIO) -> None:
        done = self.cli("stop", name)
        if done.returncode != 0:
            raise SystemExit(f"qkt stop failed:\n{done.stderr}")

    def deployments(self) -> list[dict[str, Any]]:
        answer = self.http.get("/v1/deployments")
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()["deployments"]
        return found

    def status(self, name: str = PORTFOLIO) -> list[dict[str, Any]]:
        answer = self.http.get(f"/v1/deployments/{name}")
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()["deployments"]
        return found

    def wait_live(self, n: int, timeout: float, name: str = PORTFOLIO, every: float = 0.2) -> float:
        """Until the ``n`` children of ``name`` are ``running``, every broker of theirs ``up`` and
        their warm-up done (a restored one has then recovered its positions and resolved its
        journal: its rows flow); when that was seen (``time.monotonic()``)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_daemon()
            children = self.status(name)
            ended = [d for d in children if d["state"] not in ("starting", "running")]
            if ended:
                d = ended[0]
                raise SystemExit(f"{d['name']} is {d['state']}: {d['reason']}")
            if len(children) == n and all(live(d) for d in children):
                return time.monotonic()
            if time.monotonic() > deadline:
                waiting = [d["name"] for d in children if not live(d)]
                raise SystemExit(f"not live after {timeout:g} s: {', '.join(waiting[:10])}")
            time.sleep(every)

    # ------------------------------------------------------------ the simulator
    def sim_requests(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.sim_url}/_sim/requests", timeout=10)
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body


def live(d: dict[str, Any]) -> bool:
    brokers = d.get("brokers") or []
    return (
        d["state"] == "running"
        and bool(brokers)
        and all(b["state"] == "up" for b in brokers)
        and d.get("warmup") not in (None, "warming up")
    )


def diff(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    """Requests per endpoint between two reads of ``/_sim/requests`` (test hooks left out)."""
    keys = set(after["counts"]) | set(before["counts"])
    out = {k: after["counts"].get(k, 0) - before["counts"].get(k, 0) for k in keys}
    return {k: v for k, v in out.items() if v and "/_sim/" not in k}


# ---------------------------------------------------------------- the measurement
def measure(run: Live, n: int, window: float, settle: float) -> dict[str, Any]:
    path = run.portfolio(n)
    assert run.daemon is not None and run.sim is not None
    before_deploy = run.sim_requests()
    started = time.monotonic()
    run.deploy(path, n)
    live_at = run.wait_live(n, timeout=120 + n)
    at_live = run.sim_requests()
    time.sleep(settle)
    first = run.sim_requests()
    daemon_cpu, sim_cpu, wall = cpu_s(run.daemon.pid), cpu_s(run.sim.pid), time.monotonic()
    time.sleep(window)
    last = run.sim_requests()
    daemon_cpu = cpu_s(run.daemon.pid) - daemon_cpu
    sim_cpu = cpu_s(run.sim.pid) - sim_cpu
    wall = time.monotonic() - wall
    elapsed = last["elapsed_s"] - first["elapsed_s"]
    rates = {k: v / elapsed for k, v in diff(last, first).items()}
    run.stop()
    return {
        "rates": rates,
        "startup": diff(at_live, before_deploy),
        "to_live_s": live_at - started,
        "daemon_cpu": daemon_cpu / wall,
        "sim_cpu": sim_cpu / wall,
        "window_s": elapsed,
    }


def report(sizes: list[int], results: dict[int, dict[str, Any]], window: float) -> None:
    def header(title: str) -> str:
        cols = "".join(f"{f'{n} session' + ('s' if n > 1 else ''):>14}" for n in sizes)
        return f"  {title:<34}{cols}"

    def row(label: str, values: list[str]) -> str:
        return f"  {label:<34}" + "".join(f"{v:>14}" for v in values)

    endpoints = sorted({k for r in results.values() for k in r["rates"]})
    print(
        f"requests/s at the simulator, steady state ({window:g} s window once every session "
        "is live), one mt5 profile:"
    )
    print(header("endpoint"))
    for key in endpoints:
        print(row(key, [f"{results[n]['rates'].get(key, 0):.1f}" for n in sizes]))
    totals = {n: sum(results[n]["rates"].values()) for n in sizes}
    print(row("total", [f"{totals[n]:.1f}" for n in sizes]))
    base = totals[sizes[0]] or float("nan")
    print(
        row(f"ratio to {sizes[0]} session(s)", [f"{totals[n] / base:.2f}x" for n in sizes])
        + f"   (target <= {TARGET}x)"
    )
    print(row("per session", [f"{totals[n] / n:.2f}" for n in sizes]))
    print(
        row("daemon CPU, % of one core", [f"{results[n]['daemon_cpu'] * 100:.0f}" for n in sizes])
    )
    print(
        row("simulator CPU, % of one core", [f"{results[n]['sim_cpu'] * 100:.0f}" for n in sizes])
    )
    print()
    print("requests from `qkt deploy` to every session live (started, recovered, warmed up):")
    print(header("endpoint"))
    for key in sorted({k for r in results.values() for k in r["startup"]}):
        print(row(key, [str(results[n]["startup"].get(key, 0)) for n in sizes]))
    print(row("total", [str(sum(results[n]["startup"].values())) for n in sizes]))
    print(row("deploy -> all live, s", [f"{results[n]['to_live_s']:.1f}" for n in sizes]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", default="1,10,100", help="comma-separated session counts")
    parser.add_argument("--window", type=float, default=10.0, help="seconds counted per count")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after all are live")
    parser.add_argument("--tick-ms", type=int, default=250, help="the simulator's quote interval")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sessions.split(",") if s.strip()})
    results: dict[int, dict[str, Any]] = {}
    with Live(args.tick_ms) as run:
        run.start_daemon()
        run.wait_socket()
        for n in sizes:
            print(f"  {n} session(s)...", file=sys.stderr, flush=True)
            results[n] = measure(run, n, args.window, args.settle)
        run.stop_daemon()
    report(sizes, results, args.window)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
