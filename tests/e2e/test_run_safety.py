"""``qkt run`` as a real process never trades on bad input: a misspelt ``--param`` is refused before
anything runs, and an order whose declared stop-loss has no value is refused, visibly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import ROOT, Writer, clean_env
from tests.e2e.test_cli_subprocess import qkt_command

DATA = str(ROOT / "examples" / "data" / "eurusd-1m.csv")


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*qkt_command(), *args],
        cwd=home,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_misspelt_param_is_refused_in_one_line(tmp_path: Path, write: Writer) -> None:
    path = write(
        "cross.qkt",
        "STRATEGY cross VERSION 1\nSYMBOLS\neur = PAPER:EURUSD EVERY 1m\nPARAM lots = 0.1\nRULES\n"
        "WHEN ema(eur, 9) crosses ABOVE ema(eur, 21) THEN BUY eur SIZING lots\n",
    )
    result = run("run", str(path), "--replay", DATA, "--param", "lot=5", home=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error[unknown-param]: --param lot=5: `cross` has no PARAM `lot` (declared: `lots`) "
        "(did you mean `lots`?)"
    ]


def test_a_stop_loss_without_a_value_refuses_the_order(tmp_path: Path, write: Writer) -> None:
    path = write(
        "naked.qkt",
        "STRATEGY naked VERSION 1\nSYMBOLS\neur = PAPER:EURUSD EVERY 1m WARMUP 0 BARS\nRULES\n"
        "WHEN eur.close > 0 THEN BUY eur SIZING 0.1 BRACKET STOP_LOSS BY atr(eur, 14)\n",
    )
    result = run("run", str(path), "--replay", DATA, "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["rejected", "summary"]
    assert events[0]["reason"] == (
        "STOP_LOSS has no value (atr(eur, 14) is not ready): order not sent"
    )
    assert events[-1]["fills"] == 0
