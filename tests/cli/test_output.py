"""Terminal rendering: rich tables on a TTY, plain columns otherwise, NO_COLOR respected."""

from __future__ import annotations

import io

import pytest

from cli import output
from qkt.diagnostics import error


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_output_when_not_a_tty(capsys: pytest.CaptureFixture[str]) -> None:
    output.table(["A", "LONGER"], [["x", "y"], ["wide cell", "z"]], title="t")
    assert capsys.readouterr().out.splitlines() == [
        "t",
        "  A          LONGER",
        "  x          y",
        "  wide cell  z",
    ]


def test_tty_uses_rich_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert output.use_rich(FakeTTY())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not output.use_rich(FakeTTY())


def test_rich_diagnostics_escape_user_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    fake = FakeTTY()
    monkeypatch.setattr("sys.stdout", fake)
    output.print_diagnostics([error("x", "bad [bold]markup[/bold] kept", path="a.qkt", line=1)])
    assert "bad [bold]markup[/bold] kept" in fake.getvalue()
