"""Run ``qkt`` in-process through its real entry point (argv in, exit code and output out)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Runner = Callable[..., Result]


@pytest.fixture
def qkt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Runner:
    """``qkt(*args, env={...}, cwd=path)`` calls ``cli.main.main`` with a clean environment."""
    from cli.main import main

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        full = clean_env(home, **(env or {}))
        for key in list(__import__("os").environ):
            monkeypatch.delenv(key)
        for key, value in full.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(cwd or tmp_path)
        monkeypatch.setattr(sys, "argv", ["qkt", *args])
        capsys.readouterr()
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
