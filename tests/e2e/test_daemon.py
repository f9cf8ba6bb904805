"""``qkt daemon`` as real processes on a real state dir and socket: status, one daemon per state
dir, stale sockets after kill -9, permissions under umask 0, SIGTERM/SIGINT, ``daemon stop``,
``--detach``, the thin clients with no daemon, and no secret anywhere (SPEC §5.3, §5.5, §6.1)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env
from tests.e2e.test_cli_subprocess import qkt_command

pytestmark = pytest.mark.slow

SECRET = "sk-live-7f3a9c1e5b"
NO_DAEMON_HINT = "(start one with: qkt daemon --detach)"


class Env:
    """A home, a config naming an api_key, and a short state dir (a socket path holds 107 bytes);
    every output of every command run here is kept, for the secret check."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.home = base / "home"
        self.home.mkdir()
        self.state = base / "state"
        self.config = base / "qkt.config.yaml"
        self.config.write_text(
            "brokers:\n"
            "  exness:\n"
            "    gateway_url: http://127.0.0.1:9\n"
            "    api_key: ${GATEWAY_KEY}\n"
            "  lab:\n"
            "    type: mt5\n"
            "    gateway_url: http://127.0.0.1:9\n"
            "    magic: 4242\n"
            f"    api_key: {SECRET}-inline\n"
        )
        self.outputs: list[str] = []
        self.daemons: list[subprocess.Popen[str]] = []

    def env(self) -> dict[str, str]:
        return clean_env(self.home, GATEWAY_KEY=SECRET)

    def args(self, *args: str) -> list[str]:
        return [*qkt_command(), "--config", str(self.config), "--state-dir", str(self.state), *args]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
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

    def start(self, *args: str, umask: int = -1) -> subprocess.Popen[str]:
        """``qkt daemon`` in the foreground, as a child; returns once its socket answers."""
        proc = subprocess.Popen(
            self.args("daemon", *args),
            cwd=self.base,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            umask=umask,
        )
        self.daemons.append(proc)
        deadline = time.monotonic() + 30
        while self.run("daemon", "status").returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                _, err = proc.communicate()
                pytest.fail(f"the daemon did not start: {err}")
            time.sleep(0.05)
        return proc

    def finish(self, proc: subprocess.Popen[str]) -> int:
        """Wait for a daemon that was asked to stop; its code (its output is kept)."""
        out, err = proc.communicate(timeout=30)
        self.outputs += [out, err]
        return proc.returncode

    def status(self) -> dict[str, Any]:
        result = self.run("daemon", "status", "--json")
        body: dict[str, Any] = json.loads(result.stdout)
        return body


@pytest.fixture
def env() -> Iterator[Env]:
    made = Env(Path(tempfile.mkdtemp(prefix="qkt-")))
    yield made
    for proc in made.daemons:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pid = _pid_in(made.state)
    if pid is not None and _alive(pid):  # a detached daemon
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(made.base, ignore_errors=True)


def _pid_in(state: Path) -> int | None:
    try:
        text = (state / "qkt.lock").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_daemon_status_json_is_qkt_daemon_1(env: Env) -> None:
    proc = env.start()
    body = env.status()
    assert list(body) == [
        "schema",
        "running",
        "pid",
        "version",
        "started_at",
        "uptime_s",
        "config",
        "state_dir",
        "socket",
        "deployments",
        "brokers",
    ]
    assert body["schema"] == "qkt.daemon/1"
    assert (body["running"], body["pid"]) == (True, proc.pid)
    assert body["config"] == str(env.config)
    assert (body["state_dir"], body["socket"]) == (str(env.state), str(env.state / "qkt.sock"))
    assert body["deployments"] == dict.fromkeys(
        ("starting", "running", "stopped", "failed", "finished"), 0
    )
    assert datetime.fromisoformat(body["started_at"].replace("Z", "+00:00")).tzinfo is not None
    assert body["uptime_s"] >= 0
    text = env.run("daemon", "status")
    assert text.returncode == 0
    assert text.stdout.splitlines()[0].startswith(f"daemon: running, PID {proc.pid}, qkt ")


def test_a_second_daemon_is_refused_naming_the_pid(env: Env) -> None:
    first = env.start()
    second = env.run("daemon", timeout=30)
    assert second.returncode == 1
    line = one_line(second.stderr)
    assert line.startswith("error[daemon-running]: ")
    assert f"PID {first.pid}" in line
    assert env.status()["pid"] == first.pid  # the first one still serves


def test_a_killed_daemons_socket_is_stale_and_the_next_daemon_replaces_it(env: Env) -> None:
    first = env.start()
    first.send_signal(signal.SIGKILL)
    first.wait()
    socket = env.state / "qkt.sock"
    assert stat.S_ISSOCK(socket.lstat().st_mode)  # left behind by kill -9
    listed = env.run("list")
    assert listed.returncode == 1
    assert one_line(listed.stderr).endswith(NO_DAEMON_HINT)
    second = env.start()
    assert env.status()["pid"] == second.pid
    assert env.run("list", "--json").returncode == 0


def test_under_umask_0_the_socket_is_0600_and_the_state_dir_0700(env: Env) -> None:
    env.start(umask=0)
    assert mode(env.state) == 0o700
    assert mode(env.state / "logs") == 0o700
    assert mode(env.state / "qkt.sock") == 0o600
    for name in ("qkt.db", "qkt.lock", "logs/daemon.log"):
        assert mode(env.state / name) == 0o600, name


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_daemon_cleanly(env: Env, sig: signal.Signals) -> None:
    proc = env.start()
    proc.send_signal(sig)
    assert env.finish(proc) == 0
    assert not (env.state / "qkt.sock").exists()
    assert f"{sig.name}: stopping" in env.outputs[-1]
    assert env.outputs[-1].rstrip().endswith("daemon stopped")
    assert (env.state / "logs" / "daemon.log").read_text().rstrip().endswith("daemon stopped")
    assert env.run("list").returncode == 1


def test_daemon_stop_returns_once_the_process_has_exited(env: Env) -> None:
    proc = env.start()
    stopped = env.run("daemon", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == f"daemon stopped (PID {proc.pid})\n"
    assert proc.poll() == 0  # already gone when the command returned
    assert not (env.state / "qkt.sock").exists()
    again = env.run("daemon", "stop")
    assert again.returncode == 1
    assert "no daemon is running" in one_line(again.stderr)


def test_detach_returns_with_the_pid_and_the_socket(env: Env) -> None:
    started = env.run("daemon", "--detach", timeout=90)
    assert started.returncode == 0, started.stderr
    lines = started.stdout.splitlines()
    pid = int(lines[0].removeprefix("daemon started: PID "))
    assert lines[1] == f"socket: {env.state / 'qkt.sock'}"
    assert env.status()["pid"] == pid
    twice = env.run("daemon", "--detach")
    assert twice.returncode == 1
    assert f"PID {pid}" in one_line(twice.stderr)
    assert env.run("daemon", "stop").returncode == 0
    assert not _alive(pid) or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False


def test_detach_reports_a_daemon_that_cannot_start_with_its_log(env: Env) -> None:
    env.state.mkdir(mode=0o700)
    (env.state / "qkt.db").write_text("this is not a database\n")
    started = env.run("daemon", "--detach", timeout=90)
    assert started.returncode == 1
    lines = started.stderr.splitlines()
    assert lines[0].startswith("error[daemon-not-started]: the daemon exited with code 1")
    assert any("journal-unreadable" in line for line in lines[1:]), started.stderr
    assert "Traceback" not in started.stderr


def test_list_json_with_no_deployments(env: Env) -> None:
    env.start()
    listed = env.run("list", "--json")
    assert listed.returncode == 0
    assert json.loads(listed.stdout) == {"schema": "qkt.deployments/1", "deployments": []}
    assert env.run("list").stdout == "no deployments\n"


def test_an_unknown_name_is_exit_1_and_one_line(env: Env) -> None:
    env.start()
    for command in ("status", "stop", "logs"):
        result = env.run(command, "nope")
        assert result.returncode == 1
        assert result.stdout == ""
        assert one_line(result.stderr) == (
            "error[unknown-deployment]: no deployment or portfolio `nope`"
        )


def test_no_daemon_is_exit_1_and_one_line_with_the_hint(env: Env) -> None:
    for args in (("list",), ("status", "x"), ("stop", "x"), ("logs", "x"), ("daemon", "status")):
        result = env.run(*args)
        assert result.returncode == 1, args
        line = one_line(result.stderr)
        assert line == f"error[no-daemon]: no daemon answers on {env.state / 'qkt.sock'} " + (
            NO_DAEMON_HINT
        )
    status = env.run("daemon", "status", "--json")
    assert status.returncode == 1
    assert json.loads(status.stdout)["running"] is False


def test_no_secret_in_the_state_dir_or_any_output(env: Env) -> None:
    proc = env.start()
    assert env.status()["config"] == str(env.config)  # the daemon read the file with the keys
    for args in (("list",), ("list", "--json"), ("status", "exness"), ("daemon", "status")):
        env.run(*args)
    env.run("logs", "nope", "-n", "100")
    proc.send_signal(signal.SIGTERM)
    assert env.finish(proc) == 0
    assert any("starting (PID" in text for text in env.outputs)
    for text in env.outputs:
        assert SECRET not in text
    files = [path for path in env.state.rglob("*") if path.is_file()]
    assert any(path.name == "daemon.log" for path in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
