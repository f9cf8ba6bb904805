"""The daemon's logs (SPEC §5.5, §6.1): loguru sinks, the line format, and reading logs back.

Files, under ``<state-dir>/logs/`` (mode 0700), each created 0600::

    daemon.log                   everything the daemon logs (also on stderr in the foreground)
    <name>.log                   one deployment: records bound with ``deployment=<name>``
    <portfolio>/<as>.log         a portfolio's child

Each is rotated at :data:`ROTATION` and :data:`RETENTION` rotated files are kept. A line is
``<time UTC> <level> <deployment> <message>`` with no header (``daemon`` in the name column for the
daemon's own records), so lines of several files merge in time order by their first field::

    2025-01-06T09:30:00.125Z INFO    fx-book/eur-momentum order BUY 0.1 EURUSD (client id ...)

No secrets: sinks never render variable values in tracebacks (``diagnose=False``), and nothing
here logs a profile's fields. A deployment's sink: :func:`add_deployment_sink` (remove it with
``logger.remove(id)`` when the deployment stops). Reading back: :func:`tail` and :func:`follow`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qkt.daemon.statedir import StateDir

ROTATION = "10 MB"
RETENTION = 5
MAX_LINES = 100_000
"""The most lines ``qkt logs -n`` gives back at once."""
DAEMON = "daemon"
FILE_ONLY = "file_only"
"""Bind ``file_only=True`` for a record stderr has in another form (the CLI prints the error)."""
LINE = "{time:YYYY-MM-DDTHH:mm:ss.SSS!UTC}Z {level: <7} {extra[deployment]} {message}"
_COLOUR = (
    "<dim>{time:YYYY-MM-DDTHH:mm:ss.SSS!UTC}Z</dim> <level>{level: <7}</level> "
    "<cyan>{extra[deployment]}</cyan> {message}"
)
_TIME_WIDTH = len("2025-01-06T09:30:00.125Z")


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _file_sink(path: Path, record_filter: Callable[[Any], bool] | None = None) -> int:
    from loguru import logger

    return logger.add(
        path,
        format=LINE,
        level="INFO",
        filter=record_filter,
        rotation=ROTATION,
        retention=RETENTION,
        encoding="utf-8",
        backtrace=False,
        diagnose=False,
        opener=_private,
    )


def configure_daemon_logging(state: StateDir, *, stderr: bool) -> None:
    """The daemon's sinks: ``logs/daemon.log`` and, in the foreground, stderr. Every record
    without a ``deployment`` binding is the daemon's own. uvicorn's warnings join them."""
    from loguru import logger

    logger.remove()
    logger.configure(extra={"deployment": DAEMON})
    if stderr:
        colour = _colour(sys.stderr)
        logger.add(
            sys.stderr,
            format=_COLOUR if colour else LINE,
            level="INFO",
            filter=lambda record: not record["extra"].get(FILE_ONLY),
            colorize=colour,
            backtrace=False,
            diagnose=False,
        )
    _file_sink(state.daemon_log)
    handler = _ToLoguru()
    for name in ("uvicorn", "uvicorn.error", "asyncio"):
        std = logging.getLogger(name)
        std.handlers = [handler]
        std.propagate = False
        std.setLevel(logging.WARNING)


def add_deployment_sink(state: StateDir, name: str) -> int:
    """A sink writing the records bound with ``deployment=name`` to its log file; its id."""
    path = state.deployment_log(name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return _file_sink(path, lambda record: record["extra"].get("deployment") == name)


def _colour(stream: IO[str]) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


class _ToLoguru(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        from loguru import logger

        level = record.levelname if record.levelname in _LEVELS else record.levelno
        logger.opt(exception=record.exc_info).log(level, record.getMessage())


_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


# ---------------------------------------------------------------- reading back
def tail(path: Path, n: int) -> list[str]:
    """The last ``n`` lines of ``path`` (none when it does not exist), read from its end."""
    try:
        with path.open("rb") as handle:
            return _Follower(path, handle).tail(n)
    except FileNotFoundError:
        return []


def merge(lines_by_file: Sequence[list[str]], n: int) -> list[str]:
    """The last ``n`` lines of several logs, in time order (one log: as it is)."""
    if len(lines_by_file) == 1:
        return lines_by_file[0][-n:] if n else []
    merged = sorted((line for lines in lines_by_file for line in lines), key=_time_of)
    return merged[-n:] if n else []


async def follow(
    paths: Sequence[Path], n: int, stopping: asyncio.Event, poll_s: float = 0.25
) -> AsyncIterator[str]:
    """The last ``n`` lines of ``paths``, then every line written to them, until ``stopping``
    is set (the consumer ends it earlier by closing the generator). A log rotated or replaced
    is followed into its new file; a log that does not exist yet is waited for."""
    followers = [_Follower.at_end(path) for path in paths]
    try:
        for line in merge([f.initial(n) for f in followers], n):
            yield line
        while not stopping.is_set():
            fresh = [f.read_new() for f in followers]
            for line in merge(fresh, sum(len(lines) for lines in fresh)):
                yield line
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), poll_s)
    finally:
        for f in followers:
            f.close()


def _time_of(line: str) -> str:
    return line[:_TIME_WIDTH]


class _Follower:
    """One log file being read: its handle, where reading stopped, and a partial last line."""

    def __init__(self, path: Path, handle: IO[bytes] | None) -> None:
        self.path = path
        self.handle = handle
        self.inode = os.fstat(handle.fileno()).st_ino if handle is not None else None
        self.partial = b""
        self._initial: list[str] = []

    @classmethod
    def at_end(cls, path: Path) -> _Follower:
        try:
            follower = cls(path, path.open("rb"))
        except FileNotFoundError:
            return cls(path, None)
        return follower

    def initial(self, n: int) -> list[str]:
        return self.tail(n) if self.handle is not None else []

    def tail(self, n: int) -> list[str]:
        """The last ``n`` complete lines; the handle is left at the end of the file."""
        assert self.handle is not None
        handle = self.handle
        end = handle.seek(0, os.SEEK_END)
        if n <= 0:
            return []
        data, position = b"", end
        while position > 0 and data.count(b"\n") <= n:
            step = min(65536, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
        handle.seek(end)
        complete, _, self.partial = data.rpartition(b"\n")
        return complete.decode("utf-8", "replace").splitlines()[-n:]

    def read_new(self) -> list[str]:
        """The lines completed since the last read, across a rotation or a replaced file."""
        lines: list[str] = []
        if self.handle is not None:
            lines += self._drain()
            if not self._same_file():
                self.close()
        if self.handle is None:
            try:
                self.handle = self.path.open("rb")
            except FileNotFoundError:
                return lines
            self.inode = os.fstat(self.handle.fileno()).st_ino
            self.partial = b""
            lines += self._drain()
        return lines

    def _drain(self) -> list[str]:
        assert self.handle is not None
        data = self.partial + self.handle.read()
        complete, newline, self.partial = data.rpartition(b"\n")
        if not newline:
            self.partial = data
            return []
        return complete.decode("utf-8", "replace").splitlines()

    def _same_file(self) -> bool:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return False
        assert self.handle is not None
        return info.st_ino == self.inode and info.st_size >= self.handle.tell()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
