"""Each incremental indicator against TA-Lib on thousands of bars (to 1e-9 where definitions agree).

Deliberate differences, each asserted below rather than hidden:
- ``highest``/``lowest`` cover the N bars *before* the current one; TA-Lib's MAX/MIN include it,
  so qkt's value at bar t equals TA-Lib's at bar t-1.
- ``macd`` seeds each EMA with its own SMA; TA-Lib's MACD starts the fast EMA late so both begin
  on the same bar. The two converge: after a warm-up of a few hundred bars they agree to 1e-9.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from qkt.engine import indicators as ind

talib = pytest.importorskip("talib")

N_BARS = 5000


def walk(seed: int, start: float, vol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = random.Random(seed)
    closes, highs, lows = [], [], []
    price = start
    for _ in range(N_BARS):
        price *= math.exp(rng.gauss(0, vol))
        spread = abs(rng.gauss(0, vol)) * price
        closes.append(price)
        highs.append(price + spread * rng.random())
        lows.append(price - spread * rng.random())
    return np.array(closes), np.array(highs), np.array(lows)


SERIES = {
    "eurusd": walk(1, 1.08, 0.0004),
    "btc": walk(2, 60000.0, 0.004),
    "gold": walk(3, 2400, 0.001),
}


def run(indicator: object, values: np.ndarray) -> list[float | None]:
    return [indicator.update(float(x)) for x in values]  # type: ignore[attr-defined]


def assert_matches(ours: list[float | None], theirs: np.ndarray, rel: float = 1e-9) -> None:
    assert len(ours) == len(theirs)
    for t, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if math.isnan(b):
            assert a is None, f"bar {t}: qkt has {a}, TA-Lib is not defined yet"
        else:
            assert a is not None, f"bar {t}: qkt is not defined, TA-Lib has {b}"
            assert a == pytest.approx(b, rel=rel, abs=1e-9 * max(1.0, abs(b))), f"bar {t}"


@pytest.mark.parametrize("name", sorted(SERIES))
@pytest.mark.parametrize("n", [2, 9, 21, 50])
def test_sma_ema_wma(name: str, n: int) -> None:
    close = SERIES[name][0]
    assert_matches(run(ind.Sma(n), close), talib.SMA(close, n))
    assert_matches(run(ind.Ema(n), close), talib.EMA(close, n))
    assert_matches(run(ind.Wma(n), close), talib.WMA(close, n))


@pytest.mark.parametrize("name", sorted(SERIES))
@pytest.mark.parametrize("n", [2, 14, 30])
def test_rsi_and_atr(name: str, n: int) -> None:
    close, high, low = SERIES[name]
    assert_matches(run(ind.Rsi(n), close), talib.RSI(close, n))
    atr = ind.Atr(n)
    ours = [
        atr.update_bar(float(h), float(lo), float(c))
        for h, lo, c in zip(high, low, close, strict=True)
    ]
    assert_matches(ours, talib.ATR(high, low, close, n))


def test_rsi_is_100_without_losses() -> None:
    rsi = ind.Rsi(3)
    assert [rsi.update(x) for x in (1.0, 2.0, 3.0, 4.0, 5.0)] == [None, None, None, 100.0, 100.0]


@pytest.mark.parametrize("name", sorted(SERIES))
@pytest.mark.parametrize("n", [5, 20])
def test_stdev_and_bollinger(name: str, n: int) -> None:
    close = SERIES[name][0]
    # TA-Lib sums squares, so its own rounding is ~1e-12 of price²; compare relative to price.
    ours = run(ind.Stdev(n), close)
    theirs = talib.STDDEV(close, n, 1)
    for t, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if math.isnan(b):
            assert a is None
        else:
            assert a == pytest.approx(b, abs=1e-9 * close[t]), f"bar {t}"
    upper, middle, lower = talib.BBANDS(close, n, 2.0, 2.0)
    bands = ind.Bollinger(n, 2.0)
    for t, x in enumerate(close):
        bands.update(float(x))
        if math.isnan(middle[t]):
            assert bands.middle is None
            continue
        assert bands.middle == pytest.approx(middle[t], rel=1e-9)
        assert bands.upper == pytest.approx(upper[t], abs=1e-9 * close[t])
        assert bands.lower == pytest.approx(lower[t], abs=1e-9 * close[t])


@pytest.mark.parametrize("name", sorted(SERIES))
def test_highest_lowest_exclude_the_current_bar(name: str) -> None:
    close = SERIES[name][0]
    for n in (3, 20):
        hi, lo = run(ind.Highest(n), close), run(ind.Lowest(n), close)
        talib_hi, talib_lo = talib.MAX(close, n), talib.MIN(close, n)
        assert hi[:n] == [None] * n and lo[:n] == [None] * n
        assert hi[n:] == list(talib_hi[n - 1 : -1])
        assert lo[n:] == list(talib_lo[n - 1 : -1])


@pytest.mark.parametrize("name", sorted(SERIES))
def test_macd_converges_to_talib(name: str) -> None:
    close = SERIES[name][0]
    macd = ind.Macd(12, 26, 9)
    lines = []
    for x in close:
        macd.update(float(x))
        lines.append((macd.value, macd.signal, macd.hist))
    their_macd, their_signal, their_hist = talib.MACD(close, 12, 26, 9)
    assert lines[24][0] is None and lines[25][0] is not None  # defined once the slow EMA is
    for t in range(600, N_BARS):
        scale = max(1e-9 * close[t], 1e-12)
        assert lines[t][0] == pytest.approx(their_macd[t], abs=scale)
        assert lines[t][1] == pytest.approx(their_signal[t], abs=scale)
        assert lines[t][2] == pytest.approx(their_hist[t], abs=scale)
