"""The demo's child processes (the simulator, the daemon): started as ``python -m cli ...`` in a
session of their own (a Ctrl-C at the terminal reaches only the demo, which stops them in
order), told to end with the demo if it dies (Linux: the parent-death signal), their output in
a file; stopped with SIGTERM, then SIGKILL when they do not end in time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    """One ``qkt`` subcommand running beside the demo."""

    def __init__(self, what: str, args: list[str], output: Path, cwd: Path, env: dict[str, str]):
        self.what = what
        self.output = output
        self._sink: IO[bytes] = output.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """``check()`` every 50 ms until it holds; raises RuntimeError when the process ends first
        (with its output's last line) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not check():
            if not self.running():
                raise RuntimeError(f"the {self.what} exited ({self.ended()})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not happen within {timeout:g} s")
            time.sleep(0.05)

    def ended(self) -> str:
        code = self.proc.returncode
        last = self.last_line()
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"{how}: {last}" if last else how

    def last_line(self) -> str:
        try:
            lines = self.output.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return next((line.strip() for line in reversed(lines) if line.strip()), "")

    def stop(self, timeout: float) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; whether it ended on SIGTERM."""
        graceful = True
        if self.running():
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                graceful = False
                self._signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
        self._sink.close()
        return graceful

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signum)


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """In the child, before ``exec``: SIGTERM when the demo dies, even by SIGKILL (Linux)."""
    if not sys.platform.startswith("linux"):
        return None

    def arm() -> None:
        import ctypes

        libc: Any = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the demo died before the signal was armed
            os._exit(1)

    return arm
