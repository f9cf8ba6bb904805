"""``qkt daemon --detach`` and ``qkt daemon stop``: starting the daemon in the background and waiting
for one to end, from the command's own process.

Detached, the daemon is the same ``qkt daemon`` command in a new session (no controlling
terminal, so a closed shell does not stop it), its standard output and error appended to
``logs/daemon.log`` (it then writes no second copy of its log to stderr). The starting command
returns once the socket answers with the new process's PID, or fails with the log's lines written
since the start: the daemon's own refusal (another daemon holds the state dir, a journal it cannot
open) or its crash.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qkt.diagnostics import Diagnostic, error
from qkt.errors import QktError

if TYPE_CHECKING:
    from qkt.daemon.models import DaemonOut
    from qkt.daemon.statedir import StateDir

START_TIMEOUT_S = 60.0
"""How long ``--detach`` waits for the socket (the restore of the deployments comes first)."""
EXIT_TIMEOUT_S = 120.0
"""How long ``qkt daemon stop`` waits for the process to end (orders in flight are answered)."""
LOG_LINES = 12


class DetachError(QktError):
    """The background daemon did not come up."""


def start(argv: Sequence[str], state: StateDir, timeout: float = START_TIMEOUT_S) -> DaemonOut:
    """Run ``argv`` (a foreground ``qkt daemon``) in the background; its status once it answers."""
    running = _running(state)
    if running is not None:
        raise DetachError(
            error(
                "daemon-running",
                f"a daemon already runs on {state.path} (PID {running.pid})",
                hint="stop it with: qkt daemon stop",
            )
        )
    log = state.daemon_log
    offset = log.stat().st_size if log.exists() else 0
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(fd)
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise _failed(f"the daemon exited with code {code} before it answered", log, offset)
        info = _running(state)
        if info is not None and info.pid == process.pid:
            return info
        if time.monotonic() > deadline:
            raise _failed(
                f"the daemon (PID {process.pid}) did not answer on {state.socket} within "
                f"{timeout:g} s; it is still running (stop it with: kill {process.pid})",
                log,
                offset,
            )
        time.sleep(0.05)


def _running(state: StateDir) -> DaemonOut | None:
    from qkt.daemon.client import DaemonClient, DaemonUnreachable

    if not state.socket_answers():
        return None
    try:
        with DaemonClient(state, timeout=2.0) as client:
            return client.daemon()
    except DaemonUnreachable:
        return None


def wait_exited(pid: int, timeout: float = EXIT_TIMEOUT_S) -> bool:
    """Wait until process ``pid`` has ended (a zombie has ended); False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not exited(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, as another user
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


def _failed(message: str, log: Path, offset: int) -> DetachError:
    lines = _since(log, offset)[-LOG_LINES:]
    found: list[Diagnostic] = [error("daemon-not-started", message, hint=f"see {log}")]
    found += [Diagnostic("info", "daemon-log", line) for line in lines]
    return DetachError(found)


def _since(log: Path, offset: int) -> list[str]:
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()]
