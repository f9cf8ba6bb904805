"""PARAM overrides get one set of checks wherever they enter: bound by name and type, then the
strategy is checked again with them, so a value the strategy cannot trade with is a positioned error
before anything runs (a portfolio's ``params:``, ``qkt run --param``, and ``qkt deploy``)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from qkt.config import load_config
from qkt.dsl import parse_strategy
from qkt.dsl.ast import Strategy
from qkt.params import Override, apply_params, cli_override
from qkt.validation import Validator
from tests.conftest import Writer

CROSS = """STRATEGY cross VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
PARAM fast = 9
PARAM slow = 21
PARAM lots = 0.1
PARAM verbose = true
PARAM mode = "long"
RULES
WHEN ema(eur, fast) crosses ABOVE ema(eur, slow) THEN BUY eur SIZING lots
"""
RULE_LINE = 10
FAST_AT = CROSS.splitlines()[RULE_LINE - 1].index("fast") + 1
SLOW_AT = CROSS.splitlines()[RULE_LINE - 1].index("slow") + 1
LOTS_AT = CROSS.splitlines()[RULE_LINE - 1].index("lots") + 1


def strategy() -> Strategy:
    parsed = parse_strategy(CROSS, "cross.qkt")
    assert parsed.ok and parsed.strategy is not None
    return parsed.strategy


def cli(*items: str) -> list[Override]:
    overrides = [cli_override(item) for item in items]
    assert all(o is not None for o in overrides)
    return [o for o in overrides if o is not None]


def problems(*items: str) -> list[tuple[str, int | None, int | None, str]]:
    _, diags = apply_params(strategy(), cli(*items), path="cross.qkt")
    return [(d.code, d.line, d.column, d.format()) for d in diags]


def test_values_from_the_command_line_take_the_type_of_the_param() -> None:
    values, diags = apply_params(
        strategy(),
        cli("fast=5", "lots=0.25", "verbose=FALSE", "mode=short", "slow=30"),
        path="cross.qkt",
    )
    assert diags == []
    assert values == {
        "fast": Decimal(5),
        "slow": Decimal(30),
        "lots": Decimal("0.25"),
        "verbose": False,
        "mode": "short",
    }


def test_a_malformed_item_is_not_an_override() -> None:
    assert cli_override("fast") is None
    assert cli_override("=5") is None
    assert cli_override("fast=") is not None  # an empty value is a value (of the wrong type)


def test_an_unknown_name_is_an_error_with_a_suggestion() -> None:
    ((code, line, _, text),) = problems("fsat=5")
    assert (code, line) == ("unknown-param", None)
    assert text == (
        "error[unknown-param]: --param fsat=5: `cross` has no PARAM `fsat` (declared: `fast`, "
        "`slow`, `lots`, `verbose`, `mode`) (did you mean `fast`?)"
    )


@pytest.mark.parametrize(
    ("item", "code", "message"),
    [
        ("fast=abc", "param-type", "PARAM `fast` of `cross` is a number (default 9), got 'abc'"),
        ("verbose=1", "param-type", "PARAM `verbose` of `cross` is true/false (default true)"),
        ("mode=5", "param-type", "PARAM `mode` of `cross` is a string (default 'long'), got 5"),
        ("lots=NaN", "param-value", "PARAM `lots` of `cross` must be a finite number, got NaN"),
        ("lots=-inf", "param-value", "must be a finite number, got -Infinity"),
        ("lots=sNaN", "param-value", "must be a finite number, got sNaN"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_error(item: str, code: str, message: str) -> None:
    ((got, _, _, text),) = problems(item)
    assert got == code
    assert f"--param {item}: " in text and message in text


@pytest.mark.parametrize(
    ("item", "code", "column", "message"),
    [
        (
            "fast=0",
            "bad-period",
            FAST_AT,
            "`ema` period must be a whole number of bars from 1 to 100,000, got 0",
        ),
        (
            "slow=2.5",
            "bad-period",
            SLOW_AT,
            "`ema` period must be a whole number of bars from 1 to 100,000, got 2.5",
        ),
        ("lots=-1", "bad-size", LOTS_AT, "SIZING must be positive, got -1"),
        (
            "lots=1e400",
            "bad-size",
            LOTS_AT,
            "SIZING 1e+400 is above the largest order size, 1,000,000,000",
        ),
        (  # written out, this number would take a gigabyte
            "lots=1e999999999",
            "bad-size",
            LOTS_AT,
            "SIZING 1e+999999999 is above the largest order size, 1,000,000,000",
        ),
        (
            "lots=1e-999999999",
            "bad-size",
            LOTS_AT,
            "SIZING 1e-999999999 is below the smallest order size, 0.00000001",
        ),
    ],
)
def test_the_strategy_is_checked_again_with_the_overrides(
    item: str, code: str, column: int, message: str
) -> None:
    ((got, line, col, text),) = problems(item)
    assert (got, line, col) == (code, RULE_LINE, column)
    name = item.partition("=")[0]
    assert text.startswith(
        f"cross.qkt:{RULE_LINE}:{column}: error[{code}]: {message} (`{name}` is "
    )
    assert text.endswith(f" here, from --param {item})")


def test_an_override_that_breaks_nothing_adds_nothing() -> None:
    # `fast = 21` equals `slow`: a legal, if odd, strategy.
    assert problems("fast=21") == []


def validate(path: Path) -> dict[str, object]:
    config = load_config(None, env={}, cwd=path.parent)
    return Validator(config, env={}).validate([path]).to_json()


def test_a_portfolio_child_is_checked_with_its_params(write: Writer) -> None:
    child = write("cross.qkt", CROSS)
    path = write(
        "book.yaml",
        "name: fx-book\nstrategies:\n  - file: cross.qkt\n    params:\n      fast: 0\n"
        "      lots: .nan\n",
    )
    data = validate(path)
    assert data["ok"] is False
    (report,) = data["files"]  # type: ignore[misc]
    (entry,) = report["children"]
    found = [(d["code"], d["path"], d["line"], d["column"]) for d in entry["diagnostics"]]
    assert sorted(found) == [
        ("bad-period", str(child), RULE_LINE, FAST_AT),
        ("param-value", str(path), 6, 7),
    ]
    period = next(d["message"] for d in entry["diagnostics"] if d["code"] == "bad-period")
    assert period.endswith(f"(`fast` is 0 here, from {path}:5)")


def test_a_portfolio_and_the_command_line_get_the_same_answer(write: Writer) -> None:
    write("cross.qkt", CROSS)
    path = write("book.yaml", "name: b\nstrategies:\n  - file: cross.qkt\n    params: {fsat: 5}\n")
    (report,) = validate(path)["files"]  # type: ignore[misc]
    (from_yaml,) = report["children"][0]["diagnostics"]
    ((_, _, _, from_cli),) = problems("fsat=5")
    assert from_yaml["code"] == "unknown-param"
    assert from_cli.endswith(from_yaml["message"])
