"""Bad input from a real process: the exit code, one line, never a traceback, nothing sent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, Writer, clean_env
from tests.e2e.test_cli_subprocess import qkt_command

MOMENTUM = str(ROOT / "examples" / "momentum.qkt")
EURUSD = ROOT / "examples" / "data" / "eurusd-1m.csv"


def run(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*qkt_command(), *args],
        cwd=home,
        env=clean_env(home, **(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_replay_files_exit_1_with_positioned_lines(tmp_path: Path, write: Writer) -> None:
    rows = EURUSD.read_text(encoding="utf-8").splitlines(keepends=True)[:301]
    cases = {
        "seconds.csv": (
            "time,open,high,low,close\n1772409600,1,1,1,1\n",
            ":2:1: error[replay-epoch",
        ),
        "dup.csv": ("time,open,high,low,close,open\n", ":1:26: error[replay-duplicate-column]"),
        "late.csv": ("".join(rows) + "2026-03-02T05:00:00Z,1,1,1,inf,1\n", ":302:28: error"),
        "long.csv": (
            "time,bid,ask\n" + "9" * 200_000 + ",1,1\n",
            ":2: error[replay-line-too-long]",
        ),
        "latin.csv": ("time,bid,ask\n", ""),
    }
    for name, (text, expected) in cases.items():
        path = write(name, text)
        if name == "latin.csv":
            path.write_bytes(b"time,bid,ask\n2026-03-02T00:00:00Z,1\xe9,1.1\n")
            expected = ":2: error[replay-encoding]"
        result = run("run", MOMENTUM, "--replay", str(path), "--paper", home=tmp_path)
        assert result.returncode == 1, (name, result.stderr)
        assert result.stdout == "", name  # nothing routed, nothing sent
        assert "Traceback" not in result.stderr, name
        assert f"{path}{expected}" in result.stderr, (name, result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["sim", "gateway", "--port", "0"],
        ["sim", "gateway", "--port", "65536"],
        ["run", MOMENTUM, "--speed", "nan"],
        ["run", MOMENTUM, "--replay", str(EURUSD), "--speed", "inf", "--paper"],
        ["--config", "c" * 5000, "brokers", "list"],
        ["config", "schema", "-o", "/no/such/dir/schema.json"],
    ],
)
def test_a_bad_command_line_exits_2_in_one_line(tmp_path: Path, args: list[str]) -> None:
    result = run(*args, home=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_exits_1_in_one_line(tmp_path: Path) -> None:
    result = run("config", "schema", "-o", "/dev/full", home=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "error[write-failed]: cannot write /dev/full: No space left on device\n"


def test_a_long_qkt_config_exits_1_in_one_line(tmp_path: Path) -> None:
    result = run("validate", MOMENTUM, home=tmp_path, env={"QKT_CONFIG": "c" * 5000})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_stdout_closed_early_is_not_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*qkt_command(), "run", MOMENTUM, "--replay", str(EURUSD), "--paper"],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith("route  eur:")
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert err == ""
