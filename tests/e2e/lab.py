"""Real processes for the deployment tests: the bundled gateway simulator in its own process as
the venue, ``qkt daemon`` in the foreground on a short temporary state dir (a socket path holds
107 bytes), and every other command as a subprocess. Every output is kept, for the check that
the gateway's api_key appears nowhere."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, clean_env
from tests.e2e.test_cli_subprocess import qkt_command

SECRET = "gw-token-3c9e1f7a2b5d"
ONCE = """STRATEGY once VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1s
RULES
WHEN POSITION.eur = 0 THEN BUY eur SIZING 0.1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """``check()`` until it is truthy (its value), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Sim:
    """``qkt sim gateway`` in its own process, behind the api_key."""

    def __init__(self, base: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (base / "sim.log").open("w")
        self.proc = subprocess.Popen(
            [
                *qkt_command(),
                *("sim", "gateway", "--port", str(self.port), "--api-key", SECRET),
                *("--symbols", "EURUSDm,XAUUSDm", "--tick-ms", "100", "--seed", "3"),
                *flags,
            ],
            cwd=ROOT,
            env=clean_env(base),
            stdout=self.log,
            stderr=self.log,
        )
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {SECRET}"}, timeout=10
        )
        wait(self._ready, 30, "the simulator")

    def _ready(self) -> bool:
        try:
            return self.http.get("/health/ready", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> Any:
        return self.http.get(path).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.http.post(path, json=body).json()

    def orders(self) -> list[dict[str, Any]]:
        """Every order request the simulator received (``GET /_sim/orders``)."""
        found: list[dict[str, Any]] = self.get("/_sim/orders")["data"]
        return found

    def client_ids(self) -> list[str]:
        return [str(o["body"].get("client_order_id")) for o in self.orders()]

    def positions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get("/get_positions")["data"]
        return found

    def volume(self, symbol: str = "EURUSDm") -> Decimal:
        """The signed volume the account holds of ``symbol``."""
        total = Decimal(0)
        for p in self.positions():
            if p["symbol"] == symbol:
                qty = Decimal(str(p["volume"]))
                total += qty if p["type"] == 0 else -qty
        return total

    def faults(self, **switches: Any) -> None:
        self.post("/_sim/faults", switches)

    def close_all(self) -> None:
        """Close every position by hand, as a trader at the terminal would."""
        for p in self.positions():
            self.post("/close_position", {"position": {"ticket": p["ticket"]}})

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


class Lab:
    """A home, a config whose ``exness`` profile is the simulator (its api_key from the
    environment), a state dir, and the daemon and commands run on them."""

    def __init__(self, sim: Sim, brokers: str = "", http_timeout_ms: int = 1000) -> None:
        self.sim = sim
        self.base = Path(tempfile.mkdtemp(prefix="qkt-"))
        self.home = self.base / "home"
        self.home.mkdir()
        self.state = self.base / "st"
        self.config = self.base / "qkt.config.yaml"
        self.config.write_text(
            "market_data:\n  source: venue\n"
            "brokers:\n"
            "  exness:\n"
            f"    gateway_url: {sim.url}\n"
            "    api_key: ${GATEWAY_KEY}\n"
            "    tick_poll_interval_ms: 50\n"
            "    poll_interval_ms: 100\n"
            f"    http_timeout_ms: {http_timeout_ms}\n"
            "    retry_attempts: 2\n"
            "    ready_timeout_ms: 3000\n" + brokers
        )
        self.outputs: list[str] = []
        self.daemon: subprocess.Popen[bytes] | None = None
        self.daemon_logs: list[Path] = []

    def write(self, name: str, text: str) -> Path:
        path = self.base / name
        path.write_text(text)
        return path

    def env(self) -> dict[str, str]:
        return clean_env(self.home, GATEWAY_KEY=SECRET)

    def args(self, *args: str) -> list[str]:
        return [*qkt_command(), "--config", str(self.config), "--state-dir", str(self.state), *args]

    def qkt(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.args(*args),
            cwd=self.base,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.outputs += [result.stdout, result.stderr]
        return result

    def json(self, *args: str) -> Any:
        result = self.qkt(*args, "--json")
        assert result.stdout, result.stderr
        return json.loads(result.stdout)

    def status(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.json("status", name)["deployments"][0]
        return found

    def state_of(self, name: str) -> str | None:
        for d in self.json("list")["deployments"]:
            if d["name"] == name:
                return str(d["state"])
        return None

    # ------------------------------------------------------------ the daemon
    def start(self, *flags: str) -> subprocess.Popen[bytes]:
        """``qkt daemon`` in the foreground; returns once its socket answers."""
        out = self.base / f"daemon-{len(self.daemon_logs)}.out"
        self.daemon_logs.append(out)
        with out.open("wb") as sink:
            self.daemon = subprocess.Popen(
                self.args("daemon", *flags),
                cwd=self.base,
                env=self.env(),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        wait(self._answers, 30, "the daemon's socket")
        return self.daemon

    def _answers(self) -> bool:
        if self.daemon is not None and self.daemon.poll() is not None:
            pytest.fail(f"the daemon exited: {self.daemon_logs[-1].read_text()[-3000:]}")
        return self.qkt("daemon", "status").returncode == 0

    def kill9(self) -> None:
        assert self.daemon is not None
        self.daemon.kill()
        self.daemon.wait(timeout=10)

    def sigterm(self, timeout: float = 60) -> int:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGTERM)
        return self.daemon.wait(timeout=timeout)

    def daemon_output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.daemon_logs if p.exists())

    def log(self, name: str) -> str:
        return self.qkt("logs", name, "-n", "1000").stdout

    # ------------------------------------------------------------ secrets
    def secret_found(self) -> list[str]:
        """Every file under the state dir, every daemon output and every command output that
        holds the api_key."""
        found = []
        for path in self.state.rglob("*"):
            if path.is_file() and not path.is_socket() and SECRET.encode() in path.read_bytes():
                found.append(str(path))
        found += [str(p) for p in self.daemon_logs if SECRET in p.read_text(errors="replace")]
        found += [f"output {i}" for i, text in enumerate(self.outputs) if SECRET in text]
        return found

    def close(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait(timeout=10)
        if os.environ.get("QKT_KEEP_LAB"):
            print(f"lab kept at {self.base}")
            return
        shutil.rmtree(self.base, ignore_errors=True)
