"""Paths from the command line, and the files commands write: every failure is one line.

A path that cannot be what its option needs (a directory where a file is written, a missing
directory, a name the system refuses as too long) is a command-line error (exit 2, naming the
option); a write that fails once started (a full disk, no permission) is an input error (exit 1,
``write-failed``). Long paths are shortened in messages.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import typer

from qkt.diagnostics import error
from qkt.errors import QktError


def short(text: str, keep: int = 80) -> str:
    """``text`` as a message shows it: at most about ``keep`` characters."""
    if len(text) <= keep:
        return text
    return f"{text[: keep - 24]}…{text[-12:]} ({len(text):,} characters)"


def reason(exc: OSError) -> str:
    """What the system said, in lower case to follow a colon: ``file name too long``."""
    said = exc.strerror or str(exc)
    return said[:1].lower() + said[1:]


def existing_file(path: Path, option: str, what: str = "file") -> None:
    """``path`` must be a file that exists (else BadParameter naming ``option``)."""
    hint = f"'{option}'"
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise typer.BadParameter(
            f"{what} {short(str(path))} does not exist", param_hint=hint
        ) from None
    except OSError as exc:
        raise typer.BadParameter(
            f"{what} {short(str(path))}: {reason(exc)}", param_hint=hint
        ) from None
    if stat.S_ISDIR(mode):
        raise typer.BadParameter(f"{what} {short(str(path))} is a directory", param_hint=hint)


def write_text(path: Path, text: str, option: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, the value of ``option``."""
    hint = f"'{option}'"
    shown = short(str(path))
    try:
        if path.is_dir():
            raise typer.BadParameter(f"{shown} is a directory", param_hint=hint)
        parent = path.parent
        if not parent.is_dir():
            what = "is not a directory" if parent.exists() else "does not exist"
            message = f"the directory {short(str(parent))} {what}"
            raise typer.BadParameter(message, param_hint=hint)
    except OSError as exc:  # the name itself is refused (too long, a loop of links)
        raise typer.BadParameter(f"{shown}: {reason(exc)}", param_hint=hint) from None
    try:
        with path.open("w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        said = exc.strerror or os.strerror(exc.errno or errno.EIO)
        raise QktError(error("write-failed", f"cannot write {shown}: {said}")) from None
