"""Reading the files users hand to qkt (strategies, portfolios, configs): bounded, never blocking.

A file is checked before a byte is read: it must be a regular file (a FIFO, a device such as
``/dev/zero``, a socket or a directory is refused, and opening never waits on a FIFO's writer)
no larger than :data:`MAX_FILE_BYTES`. Every failure is one diagnostic naming the file; text that
is not UTF-8 is positioned at the first bad byte.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from qkt.diagnostics import Diagnostic, error

MAX_FILE_BYTES = 1024 * 1024
"""The largest strategy, portfolio or configuration file qkt reads (1 MiB)."""

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


def kind_of(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def os_reason(exc: OSError) -> str:
    """The reason of an OS error as a user reads it (``File name too long``)."""
    if exc.errno == errno.ENAMETOOLONG:
        return "the file name is too long"
    return exc.strerror or str(exc)


def _judge(info: os.stat_result, shown: str, limit: int | None) -> Diagnostic | None:
    """Why a file with this status is not read; None when it is a regular file within bounds."""
    what = kind_of(info.st_mode)
    if what is not None:
        return error(
            "not-a-file",
            f"cannot read: it is {what}, not a regular file",
            path=shown,
            hint="give the path of a file",
        )
    if limit is not None and info.st_size > limit:
        return _too_large(shown, info.st_size, limit)
    return None


def unreadable(exc: OSError, shown: str) -> Diagnostic:
    return error("file-unreadable", f"cannot read: {os_reason(exc)}", path=shown)


def check(path: str | os.PathLike[str], shown: str) -> Diagnostic | None:
    """Why ``path`` would not be read, found without opening it; None when it would be."""
    try:
        info = Path(path).stat()
    except OSError as exc:
        return unreadable(exc, shown)
    return _judge(info, shown, MAX_FILE_BYTES)


def read_bytes(
    path: str | os.PathLike[str], shown: str, *, limit: int = MAX_FILE_BYTES, head: bool = False
) -> bytes | Diagnostic:
    """The bytes of a regular file of at most ``limit`` bytes, or why it cannot be read.

    With ``head``, a larger file is not refused: its first ``limit`` bytes are returned.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return unreadable(exc, shown)
    try:
        refused = _judge(os.fstat(fd), shown, None if head else limit)
        if refused is not None:
            return refused
        chunks: list[bytes] = []
        size = 0
        want = limit if head else limit + 1
        while size < want:
            chunk = os.read(fd, want - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            return _too_large(shown, size, limit)
        return b"".join(chunks)
    except OSError as exc:
        return unreadable(exc, shown)
    finally:
        os.close(fd)


def _too_large(shown: str, size: int, limit: int) -> Diagnostic:
    return error(
        "file-too-large",
        f"the file is {size:,} bytes; qkt reads files of at most {limit:,} bytes (1 MiB)",
        path=shown,
    )


def decode(data: bytes, shown: str, code: str = "encoding") -> str | Diagnostic:
    """UTF-8 text (a leading byte-order mark is dropped), or an error at the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return error(
            code,
            f"the file is not UTF-8 text (byte {exc.start})",
            path=shown,
            line=line,
            column=column,
            hint="save it as UTF-8",
        )


def read_text(
    path: str | os.PathLike[str], shown: str | None = None, *, code: str = "encoding"
) -> str | Diagnostic:
    """:func:`read_bytes` then :func:`decode`; ``code`` names an encoding error."""
    shown = str(path) if shown is None else shown
    data = read_bytes(path, shown)
    return data if isinstance(data, Diagnostic) else decode(data, shown, code)
