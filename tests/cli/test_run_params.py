"""``qkt run --param`` in-process: an override the strategy cannot take is refused before anything
runs, in one line naming it, with the exit code of its kind; a good one changes what trades."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Runner
from tests.conftest import ROOT, Writer

CROSS = """STRATEGY cross VERSION 1
SYMBOLS
eur = PAPER:EURUSD EVERY 1m
PARAM fast = 9
PARAM slow = 21
PARAM lots = 0.1
RULES
WHEN ema(eur, fast) crosses ABOVE ema(eur, slow) THEN BUY eur SIZING lots
WHEN ema(eur, fast) crosses BELOW ema(eur, slow) THEN CLOSE eur
"""
DATA = str(ROOT / "examples" / "data" / "eurusd-1m.csv")


def run(qkt: Runner, path: Path, *params: str) -> tuple[int, str, str]:
    args = ["run", str(path), "--replay", DATA, "--json"]
    for item in params:
        args += ["--param", item]
    result = qkt(*args)
    return result.code, result.out, result.err


@pytest.mark.parametrize(
    ("item", "code", "where", "says"),
    [
        ("fsat=5", "unknown-param", "", "(did you mean `fast`?)"),
        (
            "fast=abc",
            "param-type",
            "",
            "PARAM `fast` of `cross` is a number (default 9), got 'abc'",
        ),
        ("lots=nan", "param-value", "", "PARAM `lots` of `cross` must be a finite number"),
        ("fast=0", "bad-period", ":8:15", "(`fast` is 0 here, from --param fast=0)"),
        ("slow=20.5", "bad-period", ":8:44", "got 20.5"),
        ("lots=-0.1", "bad-size", ":8:70", "SIZING must be positive, got -0.1"),
    ],
)
def test_a_bad_override_is_one_line_and_nothing_runs(
    qkt: Runner, write: Writer, item: str, code: str, where: str, says: str
) -> None:
    path = write("cross.qkt", CROSS)
    status, out, err = run(qkt, path, item)
    assert status == 1, err
    assert out == ""  # no route, no order, no summary
    lines = err.splitlines()
    # One line per problem: a PARAM used by both rules is wrong at both uses.
    assert len(lines) == (2 if code == "bad-period" else 1), err
    assert all(f"error[{code}]: " in line and says in line for line in lines)
    if where:
        assert lines[0].startswith(f"{path}{where}: ")
        assert lines[-1].startswith(f"{path}:9:" if len(lines) == 2 else f"{path}{where}: ")
    assert "Traceback" not in err


def test_a_malformed_param_is_a_command_line_error(qkt: Runner, write: Writer) -> None:
    path = write("cross.qkt", CROSS)
    status, out, err = run(qkt, path, "fast")
    assert status == 2
    assert out == "" and "use NAME=VALUE" in err and "Traceback" not in err


def test_a_good_override_is_what_trades(qkt: Runner, write: Writer) -> None:
    path = write("cross.qkt", CROSS)
    status, out, err = run(qkt, path, "lots=0.3", "fast=5")
    assert status == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    orders = [e for e in events if e["event"] == "order"]
    assert orders and {o["qty"] for o in orders if o["side"] == "buy"} == {"0.3"}
    status, default, _ = run(qkt, path)
    assert status == 0 and default != out
