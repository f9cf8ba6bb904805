"""Where the demo's inputs are: ``examples/portfolio.yaml`` and the sample data it replays,
found next to the ``qkt`` package (an install from a checkout, ``pip install -e .``).

A wheel does not carry ``examples/``: then :func:`find_examples` raises a one-line
:class:`DemoError` saying where it looked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qkt.diagnostics import error
from qkt.errors import QktError

PORTFOLIO = Path("examples") / "portfolio.yaml"
REPLAY = Path("examples") / "data" / "markets-1m.csv"
"""Bars of every symbol the portfolio trades (EURUSD, XAUUSD, BTCUSDT, ETHUSDT), with a
``symbol`` column that routes each row to the streams of its symbol."""


class DemoError(QktError):
    """One step of the demo failed: ``error[demo]: <step>: <why>``."""

    def __init__(self, step: str, why: str) -> None:
        super().__init__(error("demo", f"{step}: {why}"))
        self.step = step


@dataclass(frozen=True, slots=True)
class Examples:
    root: Path
    portfolio: Path
    replay: Path


def project_root() -> Path:
    """The folder that holds the ``qkt`` package: a checkout's root under ``pip install -e .``."""
    return Path(__file__).resolve().parent.parent.parent


def find_examples(root: Path | None = None) -> Examples:
    root = root or project_root()
    missing = [p for p in (PORTFOLIO, REPLAY) if not (root / p).is_file()]
    if missing:
        names = " and ".join(str(root / p) for p in missing)
        raise DemoError(
            "finding the examples",
            f"{names} not found (the demo needs a checkout of qkt: pip install -e .)",
        )
    return Examples(root, shown(root / PORTFOLIO), shown(root / REPLAY))


def shown(path: Path) -> Path:
    """``path`` relative to the working directory when it is under it (shorter to read), else
    absolute."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return Path(relative) if not relative.startswith("..") else path
