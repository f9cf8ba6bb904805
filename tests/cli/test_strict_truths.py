"""What decided strict mode, as ``qkt validate`` and ``qkt run`` say it (SPEC §4.2)."""

from __future__ import annotations

import json

from tests.cli.conftest import Runner
from tests.conftest import ROOT, Writer

UNKNOWN_LABEL = """STRATEGY odd VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
x = OANDA:XAUUSD EVERY 1m
RULES
WHEN eur.close > 1 THEN BUY eur SIZING 0.1
"""
PLAIN = """STRATEGY plain VERSION 1
SYMBOLS
eur = BACKTEST:EURUSD EVERY 1m
RULES
WHEN eur.close > 1 THEN BUY eur SIZING 0.1
"""


def test_an_empty_QKT_STRICT_BROKERS_is_unset(qkt: Runner, write: Writer) -> None:
    path = write("odd.qkt", UNKNOWN_LABEL)
    write("qkt.config.yaml", "strict_brokers: true\n")
    result = qkt("validate", str(path), env={"QKT_STRICT_BROKERS": ""})
    assert result.code == 1  # the config's strict_brokers decides: the unknown label is an error
    assert "error[unknown-label]" in result.out
    assert result.out.splitlines()[-1].endswith("strict brokers: on (config:qkt.config.yaml:1)")
    blank = qkt("validate", str(path), "--format", "json", env={"QKT_STRICT_BROKERS": "  "})
    assert blank.json()["strict"] is True


def test_an_unparseable_QKT_STRICT_BROKERS_is_one_line_and_exit_1(
    qkt: Runner, write: Writer
) -> None:
    path = write("plain.qkt", PLAIN)
    result = qkt("validate", str(path), env={"QKT_STRICT_BROKERS": "maybe"})
    assert result.code == 1
    errors = [line for line in (result.out + result.err).splitlines() if "error[" in line]
    assert errors == [
        "error[env-bad-strict]: QKT_STRICT_BROKERS='maybe' is not a boolean "
        "(1/0, true/false, yes/no, on/off; empty means unset)"
    ]
    as_json = qkt("validate", str(path), "--format", "json", env={"QKT_STRICT_BROKERS": "maybe"})
    assert as_json.code == 1
    data = as_json.json()
    assert data["ok"] is False and data["files"] == []
    assert [d["code"] for d in data["diagnostics"]] == ["env-bad-strict"]

    run = qkt(
        *("run", str(ROOT / "examples/momentum.qkt"), "--paper"),
        *("--replay", str(ROOT / "examples/data/eurusd-1m.csv")),
        env={"QKT_STRICT_BROKERS": "maybe"},
    )
    assert run.code == 1
    assert run.out == ""  # nothing ran
    assert run.err.strip().splitlines() == errors
    # a flag does not hide it: the variable would decide the next command without one
    flagged = qkt("validate", str(path), "--no-strict-brokers", env={"QKT_STRICT_BROKERS": "maybe"})
    assert flagged.code == 1 and "error[env-bad-strict]" in flagged.out


def test_a_portfolio_s_strict_brokers_is_what_the_summary_says(qkt: Runner, write: Writer) -> None:
    write("odd.qkt", UNKNOWN_LABEL)
    portfolio = write(
        "book.yaml", "name: book\nstrict_brokers: true\nstrategies:\n  - file: odd.qkt\n"
    )
    result = qkt("validate", str(portfolio))
    assert result.code == 1
    assert result.out.splitlines()[-1].endswith(f"strict brokers: on (portfolio:{portfolio})")
    data = qkt("validate", str(portfolio), "--format", "json").json()
    assert (data["strict"], data["strict_source"]) == (True, f"portfolio:{portfolio}")
    # the flag beats the portfolio, and the summary says so
    relaxed = qkt("validate", str(portfolio), "--no-strict-brokers")
    assert relaxed.code == 0
    assert relaxed.out.splitlines()[-1].endswith("strict brokers: off (--no-strict-brokers)")


def test_files_checked_under_different_strictness_are_each_named(
    qkt: Runner, write: Writer
) -> None:
    plain = write("plain.qkt", PLAIN)
    write("odd.qkt", UNKNOWN_LABEL)
    portfolio = write(
        "book.yaml", "name: book\nstrict_brokers: true\nstrategies:\n  - file: odd.qkt\n"
    )
    result = qkt("validate", str(plain), str(portfolio))
    assert result.out.splitlines()[-1].endswith(
        f"strict brokers: off (default), on for {portfolio} (portfolio:{portfolio})"
    )
    data = qkt("validate", str(plain), str(portfolio), "--format", "json").json()
    assert data["strict"] is False  # not every file was checked strictly
    assert data["strict_source"] == f"default; portfolio:{portfolio} for {portfolio}"


def test_run_says_what_decided_strict_mode(qkt: Runner, write: Writer) -> None:
    path = write("plain.qkt", PLAIN)
    bars = write(
        "bars.csv", "time,open,high,low,close\n2026-03-02T10:00:00Z,1.085,1.086,1.084,1.085\n"
    )
    result = qkt("run", str(path), "--replay", str(bars), "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out.splitlines()[-1])
    assert (summary["strict"], summary["strict_source"]) == (False, "default")
    env_on = qkt("run", str(path), "--replay", str(bars), env={"QKT_STRICT_BROKERS": "yes"})
    assert env_on.code == 0, env_on.err
    assert env_on.out.splitlines()[-1].endswith("; strict brokers: on (env:QKT_STRICT_BROKERS)")


def test_when_nothing_could_decide_the_summary_says_so(qkt: Runner, write: Writer) -> None:
    path = write("plain.qkt", PLAIN)
    result = qkt("validate", str(path), env={"QKT_STRICT_BROKERS": "maybe"})
    assert result.out.splitlines()[-1].endswith("strict brokers: undecided (see the errors)")
    write("qkt.config.yaml", "brokers:\n  exness:\n    magic: x\n")
    broken = qkt("validate", str(path), "--format", "json")
    assert (broken.json()["strict"], broken.json()["strict_source"]) == (False, "undecided")
    flagged = qkt("validate", str(path), "--no-strict-brokers")
    assert flagged.out.splitlines()[-1].endswith("strict brokers: off (--no-strict-brokers)")
