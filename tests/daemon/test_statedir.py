"""The state dir on real folders, files, sockets and processes: where it is, its permissions, the
daemon lock (refusing a second daemon by its PID), stale and live sockets, and socket path limits."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from qkt.config import load_config
from qkt.daemon.statedir import (
    MAX_SOCKET_PATH,
    DaemonLock,
    DaemonRunningError,
    StateDir,
    StateDirError,
    resolve_state_dir,
)
from tests.conftest import ROOT, Writer


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """The most permissive umask: whatever qkt creates must still be private."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def child(code: str) -> subprocess.Popen[str]:
    """A Python process running ``code`` that prints ``ready`` once it holds what it holds."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"child did not get ready: {line!r} {err}")


# ---------------------------------------------------------------- resolution
def test_resolution_order_flag_env_config_xdg_home(tmp_path: Path, write: Writer) -> None:
    config_file = write("conf/qkt.config.yaml", "state_dir: ../shared-state\n")
    config = load_config(config_file, env={"HOME": str(tmp_path)}, cwd=tmp_path)
    env = {
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "xdg"),
        "QKT_STATE_DIR": str(tmp_path / "from-env"),
    }

    def resolved(flag: Path | None, env: dict[str, str], with_config: bool = True) -> Path:
        return resolve_state_dir(flag, env, config if with_config else None, cwd=tmp_path / "cwd")

    assert resolved(Path("rel"), env) == tmp_path / "cwd" / "rel"
    assert resolved(None, env) == tmp_path / "from-env"
    del env["QKT_STATE_DIR"]
    # state_dir of the config is relative to the config file, not to the working directory
    assert resolved(None, env).resolve() == (tmp_path / "shared-state").resolve()
    assert resolved(None, env, with_config=False) == tmp_path / "xdg" / "qkt"
    del env["XDG_STATE_HOME"]
    assert resolved(None, env, with_config=False) == tmp_path / "home" / ".local/state/qkt"
    # a relative XDG_STATE_HOME is invalid (XDG spec): ignored, not taken from the cwd
    env["XDG_STATE_HOME"] = "relative/xdg"
    assert resolved(None, env, with_config=False) == tmp_path / "home" / ".local/state/qkt"


# ---------------------------------------------------------------- layout and permissions
def test_open_creates_a_private_dir_and_its_layout_even_under_umask_0(
    tmp_path: Path, umask_zero: None
) -> None:
    state = StateDir.open(tmp_path / "a" / "b" / "state")
    assert state.path.is_dir() and mode(state.path) == 0o700
    assert state.logs.is_dir() and mode(state.logs) == 0o700
    assert state.warnings == ()
    assert state.socket == state.path / "qkt.sock"
    assert state.database == state.path / "qkt.db"
    assert state.daemon_log == state.path / "logs" / "daemon.log"
    with state.claim():
        assert mode(state.lock_file) == 0o600


def test_an_existing_dir_open_to_others_is_tightened_and_said(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.mkdir()
    path.chmod(0o755)
    state = StateDir.open(path)
    assert mode(path) == 0o700
    assert [w.code for w in state.warnings] == ["state-dir-tightened"]
    assert "0755" in state.warnings[0].message and str(path) in state.warnings[0].message
    assert StateDir.open(path).warnings == ()  # nothing to say the second time


def test_a_file_where_the_dir_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a dir")
    with pytest.raises(StateDirError, match="is not a directory") as caught:
        StateDir.open(tmp_path / "state")
    assert caught.value.diagnostics[0].code == "state-dir-unusable"
    assert (tmp_path / "state").read_text() == "not a dir"


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a dir to another user")
def test_a_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    os.chown(path, 65534, 65534)
    with pytest.raises(StateDirError, match="belongs to uid 65534") as caught:
        StateDir.open(path)
    assert caught.value.diagnostics[0].code == "state-dir-not-owned"


def test_deployment_logs_put_a_portfolio_child_in_a_subfolder(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    assert (
        state.deployment_log("fx-book/eur-momentum") == tmp_path / "logs/fx-book/eur-momentum.log"
    )
    assert state.deployment_log("momentum") == tmp_path / "logs/momentum.log"
    for bad in ("../escape", "fx-book/../../x", "/abs", "a/b/c", "Upper", ""):
        with pytest.raises(StateDirError, match="not a deployment name"):
            state.deployment_log(bad)


# ---------------------------------------------------------------- the lock
def test_a_second_daemon_is_refused_naming_the_pid_that_holds_the_lock(tmp_path: Path) -> None:
    state = StateDir.open(tmp_path / "state")
    holder = child(
        f"""
        import time
        from qkt.daemon.statedir import StateDir
        lock = StateDir({str(state.path)!r}).claim()
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    try:
        wait_ready(holder)
        assert state.lock_file.read_text().strip() == str(holder.pid)
        with pytest.raises(DaemonRunningError) as caught:
            state.claim()
        assert caught.value.pid == holder.pid
        message = str(caught.value)
        assert f"PID {holder.pid}" in message and str(state.path) in message
        assert "\n" not in message
        # kill -9 leaves no stale lock: the kernel drops it with the process
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with state.claim() as lock:
            assert lock.held
            assert state.lock_file.read_text().strip() == str(os.getpid())
    finally:
        holder.kill()
        holder.communicate(timeout=10)


def test_a_second_claim_in_the_same_process_is_refused_and_release_frees_it(
    tmp_path: Path,
) -> None:
    state = StateDir.open(tmp_path)
    lock = state.claim()
    with pytest.raises(DaemonRunningError, match=f"PID {os.getpid()}"):
        state.claim()
    lock.release()
    assert state.lock_file.read_text() == ""  # no PID is left behind once released
    lock.release()  # a second release does nothing
    state.claim().release()


# ---------------------------------------------------------------- the socket
def test_a_stale_socket_is_removed_when_nothing_answers(tmp_path: Path) -> None:
    state = StateDir.open(tmp_path)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(state.socket))
    dead.close()  # what a killed daemon leaves: the file, with nobody listening
    assert state.socket.exists() and not state.socket_answers()
    with state.claim():
        assert not state.socket.exists()
        # and the path is free for the new daemon to bind
        fresh = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        fresh.bind(str(state.socket))
        fresh.close()


def test_a_socket_whose_daemon_answers_is_never_removed(tmp_path: Path) -> None:
    state = StateDir.open(tmp_path)
    # A daemon listening on the socket while the lock file was deleted from under it.
    server = child(
        f"""
        import socket, time
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind({str(state.socket)!r})
        s.listen()
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    try:
        wait_ready(server)
        assert state.socket_answers()
        with pytest.raises(DaemonRunningError, match="answers on") as caught:
            state.claim()
        if hasattr(socket, "SO_PEERCRED"):
            assert caught.value.pid == server.pid
        assert state.socket.exists()
        DaemonLock.take(state.lock_file).release()  # the refused claim let go of the lock
    finally:
        server.kill()
        server.communicate(timeout=10)


def test_a_file_in_place_of_the_socket_is_refused_and_kept(tmp_path: Path) -> None:
    state = StateDir.open(tmp_path)
    state.socket.write_text("mine")
    with pytest.raises(StateDirError, match="is not a socket"):
        state.claim()
    assert state.socket.read_text() == "mine"


def _dir_with_socket_path_of(tmp_path: Path, size: int) -> Path:
    """A (not yet existing) state dir whose ``qkt.sock`` path is exactly ``size`` bytes."""
    base = str(tmp_path)
    room = size - len(base) - len("/qkt.sock") - 1
    assert room > 0, "tmp_path is too long for this test"
    return Path(base) / ("d" * room)


def test_a_socket_path_too_long_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    path = _dir_with_socket_path_of(tmp_path, MAX_SOCKET_PATH + 1)
    with pytest.raises(StateDirError) as caught:
        StateDir.open(path)
    message = str(caught.value)
    assert str(path / "qkt.sock") in message and "\n" not in message
    assert caught.value.diagnostics[0].code == "socket-path-too-long"
    assert not path.exists()  # refused before anything was created
    # the limit is the operating system's: one byte more cannot be bound either
    with socket.socket(socket.AF_UNIX) as sock, pytest.raises(OSError):
        sock.bind(str(path / "qkt.sock"))


def test_a_socket_path_at_the_limit_works(tmp_path: Path) -> None:
    path = _dir_with_socket_path_of(tmp_path, MAX_SOCKET_PATH)
    state = StateDir.open(path)
    assert len(os.fsencode(state.socket)) == MAX_SOCKET_PATH
    with state.claim(), socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(state.socket))
        sock.listen()
        assert state.socket_answers()
