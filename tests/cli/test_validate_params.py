"""``qkt validate portfolio.yaml`` in-process: what a child's ``params:`` break in its strategy is
an error at the PARAM's use in the child's file, and the command fails."""

from __future__ import annotations

from tests.cli.conftest import Runner
from tests.conftest import Writer

CROSS = """STRATEGY cross VERSION 1
SYMBOLS
eur = PAPER:EURUSD EVERY 1m
PARAM fast = 9
PARAM lots = 0.1
RULES
WHEN ema(eur, fast) crosses ABOVE ema(eur, 21) THEN BUY eur SIZING lots
"""


def test_a_child_is_validated_with_its_params(qkt: Runner, write: Writer) -> None:
    child = write("cross.qkt", CROSS)
    book = write(
        "book.yaml",
        "name: book\nstrategies:\n  - file: cross.qkt\n    params: {fast: 2.5, lots: 0.2}\n",
    )
    result = qkt("validate", str(book))
    assert result.code == 1
    lines = [line.strip() for line in result.out.splitlines() if "error[" in line]
    assert lines == [
        f"{child}:7:15: error[bad-period]: `ema` period must be a whole number of bars from 1 to "
        f"100,000, got 2.5 (`fast` is 2.5 here, from {book}:4)"
    ]
    fixed = write(
        "fixed.yaml", "name: book\nstrategies:\n  - file: cross.qkt\n    params: {fast: 5}\n"
    )
    assert qkt("validate", str(fixed)).code == 0
