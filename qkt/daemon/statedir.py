"""The daemon's state dir (SPEC §6.1): where it is, who may enter it, and which daemon owns it.

Where, first found wins: ``--state-dir`` → ``$QKT_STATE_DIR`` → ``state_dir`` of the config (relative
to the config file) → ``$XDG_STATE_HOME/qkt`` → ``~/.local/state/qkt``. What it holds::

    <state-dir>/                 mode 0700
      qkt.sock                   the control socket (bound by the server, mode 0600)
      qkt.lock                   flock held for the daemon's whole life; holds its PID
      qkt.db                     the journal (qkt.daemon.journal), with qkt.db-wal and qkt.db-shm
      logs/daemon.log
      logs/<name>.log            one per deployment; fx-book/eur-momentum → logs/fx-book/eur-momentum.log

Permissions: the dir is created 0700. An existing dir of this user with wider permissions is
tightened to 0700, and :attr:`StateDir.warnings` says so (the daemon logs it); a dir owned by another
user is refused, since its owner could read the journal and answer on the socket.

Ownership: :meth:`StateDir.claim` takes an exclusive ``flock`` on ``qkt.lock`` and writes this
process's PID into it; a second daemon is refused with an error naming that PID. The kernel drops the
lock with the process, even after ``kill -9``, so a lock never goes stale — but a socket file does: a
socket that exists while nothing answers a connect, with the lock free, is removed by the claim. A
socket on which a daemon answers is never removed.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import stat
import struct
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from qkt.diagnostics import Diagnostic, error, warning
from qkt.errors import QktError

if TYPE_CHECKING:
    from qkt.config import ResolvedConfig

SOCKET_NAME = "qkt.sock"
LOCK_NAME = "qkt.lock"
DATABASE_NAME = "qkt.db"
LOGS_NAME = "logs"
DAEMON_LOG_NAME = "daemon.log"
# A Unix socket's sun_path holds 108 bytes on Linux (104 on macOS and the BSDs), its NUL included.
MAX_SOCKET_PATH = 103 if sys.platform == "darwin" or "bsd" in sys.platform else 107
DEPLOYMENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)?")
_CLAIM_WAIT = 0.5  # seconds a refused claim retries while the lock's holder is not known yet
_PROBE_TIMEOUT = 0.5


class StateDirError(QktError):
    """The state dir cannot be used: permissions, its owner, a socket path, a file in the way."""


class DaemonRunningError(StateDirError):
    """Another daemon owns the state dir; :attr:`pid` is its process id when it is known."""

    def __init__(self, diagnostic: Diagnostic, pid: int | None) -> None:
        super().__init__(diagnostic)
        self.pid = pid


def resolve_state_dir(
    flag: Path | None,
    env: Mapping[str, str],
    config: ResolvedConfig | None,
    cwd: Path | None = None,
) -> Path:
    """The absolute path of the state dir (the order of the module docstring). A relative
    ``--state-dir`` or ``$QKT_STATE_DIR`` is relative to ``cwd`` (default: the working directory);
    a relative ``$XDG_STATE_HOME`` is ignored, as the XDG spec says."""
    from qkt.config import resolve_state_dir as resolve

    xdg = env.get("XDG_STATE_HOME")
    if xdg and not Path(xdg).is_absolute():
        env = {key: value for key, value in env.items() if key != "XDG_STATE_HOME"}
    path = resolve(flag, env, config)
    return ((cwd or Path.cwd()) / path).absolute()


def check_socket_path(path: Path) -> None:
    """Raise StateDirError (``socket-path-too-long``) when ``path`` cannot be a Unix socket."""
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH:
        raise StateDirError(
            error(
                "socket-path-too-long",
                f"control socket path {path} is {size} bytes, more than the {MAX_SOCKET_PATH} "
                "a Unix socket allows",
                hint="use a shorter state dir: --state-dir or $QKT_STATE_DIR",
            )
        )


@dataclass(frozen=True, slots=True)
class StateDir:
    """The paths of one state dir. Constructing one touches nothing on disk (clients use it to find
    the socket); :meth:`open` creates and checks the folders, :meth:`claim` makes this process the
    daemon. A state dir whose socket path is too long for a Unix socket cannot be constructed."""

    path: Path
    warnings: tuple[Diagnostic, ...] = field(default=(), compare=False)
    """What :meth:`open` changed on the way (permissions it tightened)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).absolute())
        check_socket_path(self.socket)

    @property
    def socket(self) -> Path:
        return self.path / SOCKET_NAME

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_NAME

    @property
    def database(self) -> Path:
        return self.path / DATABASE_NAME

    @property
    def logs(self) -> Path:
        return self.path / LOGS_NAME

    @property
    def daemon_log(self) -> Path:
        return self.logs / DAEMON_LOG_NAME

    def deployment_log(self, name: str) -> Path:
        """``logs/<name>.log``; the ``/`` of a portfolio child is a subfolder. Raises StateDirError
        for anything that is not a deployment name (so no name can point outside ``logs/``)."""
        if DEPLOYMENT_NAME.fullmatch(name) is None:
            raise StateDirError(
                error(
                    "bad-deployment-name",
                    f"{name!r} is not a deployment name: [a-z0-9][a-z0-9_-]*, "
                    "or <portfolio>/<name>",
                )
            )
        return self.logs / f"{name}.log"

    @classmethod
    def open(cls, path: Path) -> StateDir:
        """The state dir at ``path`` with its ``logs/``, created with mode 0700 when missing (parents
        too). Raises StateDirError when it is not a directory, belongs to another user, or cannot be
        created; tightens wider permissions of the user's own dir, saying so in ``warnings``."""
        state = cls(path)  # the socket path is checked before anything is created
        notes = _private_dir(state.path, "state dir") + _private_dir(state.logs, "log dir")
        return cls(state.path, tuple(notes))

    def claim(self) -> DaemonLock:
        """Make this process the daemon of this state dir: lock ``qkt.lock`` (writing this PID)
        and remove a stale socket. Call it in the process that serves (a forked child shares the
        lock). Raises DaemonRunningError, naming the PID, when another daemon holds the lock or
        answers on the socket, and StateDirError when the socket path is some other kind of file."""
        lock = DaemonLock.take(self.lock_file)
        try:
            self._clear_socket()
        except BaseException:
            lock.release()
            raise
        return lock

    def socket_answers(self, timeout: float = _PROBE_TIMEOUT) -> bool:
        """Whether a process accepts connections on the control socket."""
        return _probe(self.socket, timeout)[0]

    def _clear_socket(self) -> None:
        path = self.socket
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise StateDirError(
                error(
                    "socket-path-taken",
                    f"{path} exists and is not a socket",
                    hint="move it away; qkt does not delete it",
                )
            )
        answers, pid = _probe(path, _PROBE_TIMEOUT)
        if answers:
            who = f"PID {pid}" if pid else "PID unknown"
            raise DaemonRunningError(
                error(
                    "daemon-running",
                    f"a daemon ({who}) answers on {path} although {self.lock_file.name} was free",
                    hint="stop it with: qkt daemon stop",
                ),
                pid,
            )
        path.unlink(missing_ok=True)


class DaemonLock:
    """The exclusive flock on ``qkt.lock``, held until :meth:`release`. The kernel also drops it
    when the process ends, however it ends, so a killed daemon never leaves it held."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def take(cls, path: Path) -> DaemonLock:
        """Lock ``path`` (created 0600) and write this PID into it; DaemonRunningError names the
        PID of the process that holds it."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateDirError(
                error("state-dir-unusable", f"cannot open lock file {path}: {exc.strerror}")
            ) from None
        deadline = time.monotonic() + _CLAIM_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pid = _read_pid(fd)
                # Just after another daemon took the lock its PID may not be written yet.
                if (pid is not None and _alive(pid)) or time.monotonic() >= deadline:
                    os.close(fd)
                    raise _held(path, pid if pid is not None and _alive(pid) else None) from None
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Clear the PID and unlock (a second call does nothing)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> DaemonLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _held(path: Path, pid: int | None) -> DaemonRunningError:
    who = f"the daemon with PID {pid}" if pid is not None else "another process (PID unknown)"
    return DaemonRunningError(
        error(
            "daemon-running",
            f"state dir {path.parent} is in use by {who} (it holds {path.name})",
            hint="stop it with: qkt daemon stop",
        ),
        pid,
    )


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True


def _probe(path: Path, timeout: float) -> tuple[bool, int | None]:
    """Whether something accepts a connection on ``path``, and its PID where the OS tells."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False, None
        except (TimeoutError, BlockingIOError):  # a listener too busy to accept is alive
            return True, None
        except OSError as exc:
            raise StateDirError(
                error("state-dir-unusable", f"cannot connect to {path}: {exc.strerror}")
            ) from None
        peercred = getattr(socket, "SO_PEERCRED", None)
        if peercred is None:
            return True, None
        creds = sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
        pid = int(struct.unpack("3i", creds)[0])
        return True, pid or None


def _private_dir(path: Path, what: str) -> list[Diagnostic]:
    """Create ``path`` with mode 0700, or check an existing one and tighten it to 0700."""
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.stat()
    except FileExistsError:
        info = path.stat()
    except OSError as exc:
        raise StateDirError(
            error("state-dir-unusable", f"cannot create {what} {path}: {exc.strerror}")
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise StateDirError(
            error("state-dir-unusable", f"{what} {path} exists and is not a directory")
        )
    if info.st_uid != os.getuid():
        raise StateDirError(
            error(
                "state-dir-not-owned",
                f"{what} {path} belongs to uid {info.st_uid}, not to this user (uid {os.getuid()})",
                hint="use a state dir of your own: --state-dir or $QKT_STATE_DIR",
            )
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode == 0o700:
        return []
    try:
        path.chmod(0o700)  # a fresh dir may lack owner bits under an odd umask: set them too
    except OSError as exc:
        raise StateDirError(
            error("state-dir-unusable", f"cannot set mode 0700 on {what} {path}: {exc.strerror}")
        ) from None
    if existed and mode & 0o077:
        return [warning("state-dir-tightened", f"{what} {path} was mode {mode:04o}; now 0700")]
    return []
