"""Shared fixtures: the repository root, clean environments and a writer for real files."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A suite started as a shell's background job (`pytest &`) has Ctrl-C ignored, and so would every
# process it starts: the tests that press Ctrl-C on qkt need it handled as on a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
SEED = """STRATEGY momentum VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
RULES
WHEN ema(eur, 9) crosses ABOVE ema(eur, 21)
THEN BUY eur SIZING 0.1 BRACKET STOP_LOSS BY 50 PCT TAKE_PROFIT BY 100 PCT
"""

Writer = Callable[[str, str], Path]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The process environment without any QKT_* setting, with HOME/XDG pointed at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QKT_")}
    env.pop("BYBIT_API_KEY", None)
    env.pop("BYBIT_API_SECRET", None)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".state"),
        NO_COLOR="1",
    )
    env.update(extra)
    return env


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """Write ``text`` to ``tmp_path/name`` (creating folders) and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio: qkt's edges are asyncio tasks, not any anyio backend."""
    return "asyncio"


async def send(broker: Any, *requests: Any) -> None:
    """Hand orders to a venue broker as a session does, then wait for their answers."""
    for request in requests:
        broker.submit(request)
    await broker.settle()
