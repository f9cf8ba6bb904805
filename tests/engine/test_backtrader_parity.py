"""The same EMA(9)/EMA(21) crossover in backtrader and in qkt: the same entries and exits, at the
same bars and prices."""

from __future__ import annotations

import pytest

from benchmarks.emacross import make_bars, rows, run_backtrader, run_qkt

pytest.importorskip("backtrader")


def test_same_trades_as_backtrader() -> None:
    bars = make_bars(6000)
    ours = run_qkt(rows(bars))
    theirs = run_backtrader(bars)
    assert len(ours) > 50
    assert ours == theirs
