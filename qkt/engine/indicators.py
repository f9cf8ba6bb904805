"""Incremental indicators of the `.qkt` reference: O(1) work per bar, ``None`` until warmed up.

Indicators work in binary floats, as every charting and backtesting tool does; money and quantities
elsewhere in the engine are decimals. Each class takes one new value per closed bar through
``update`` and returns its current value (``None`` while it is not defined yet).

Definitions (period N in bars), checked against TA-Lib in the tests:

* ``Sma`` mean of the last N values; ``Ema`` seeded with the SMA of the first N values, then
  ``prev + (x - prev) * 2 / (N + 1)``; ``Wma`` linear weights 1..N.
* ``Rsi`` Wilder: the first averages are simple means of the first N gains and losses, then
  ``avg = (prev * (N - 1) + x) / N``; defined after N + 1 values; 100 when there are no losses.
* ``Atr`` Wilder's average of the true range; defined after N + 1 bars.
* ``Stdev`` population standard deviation; ``Bollinger`` SMA ± k · stdev.
* ``Macd`` ema_fast - ema_slow, each EMA seeded on its own; the signal is an EMA of the MACD line.
* ``Highest``/``Lowest`` the extreme of the N values *before* the current one.
"""

from __future__ import annotations

import math
from collections import deque


class Sma:
    __slots__ = ("_n", "_total", "_window", "value")

    def __init__(self, n: int) -> None:
        self._n = n
        self._window: deque[float] = deque()
        self._total = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        window = self._window
        window.append(x)
        self._total += x
        if len(window) > self._n:
            self._total -= window.popleft()
        if len(window) == self._n:
            self.value = self._total / self._n
        return self.value


class Ema:
    __slots__ = ("_alpha", "_count", "_n", "_seed", "value")

    def __init__(self, n: int) -> None:
        self._n = n
        self._alpha = 2.0 / (n + 1)
        self._count = 0
        self._seed = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        value = self.value
        if value is not None:
            self.value = value + (x - value) * self._alpha
            return self.value
        self._count += 1
        self._seed += x
        if self._count == self._n:
            self.value = self._seed / self._n
        return self.value


class Wma:
    """Weights 1..N, newest heaviest; the weighted sum is updated, not recomputed."""

    __slots__ = ("_denominator", "_n", "_total", "_weighted", "_window", "value")

    def __init__(self, n: int) -> None:
        self._n = n
        self._denominator = n * (n + 1) / 2.0
        self._window: deque[float] = deque()
        self._total = 0.0
        self._weighted = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        window = self._window
        if len(window) == self._n:
            # Every kept value loses one weight step; the oldest (weight 1) leaves.
            self._weighted += self._n * x - self._total
            self._total += x - window.popleft()
            window.append(x)
        else:
            window.append(x)
            self._total += x
            self._weighted += len(window) * x
        if len(window) == self._n:
            self.value = self._weighted / self._denominator
        return self.value


class Rsi:
    __slots__ = ("_count", "_gain", "_loss", "_n", "_prev", "value")

    def __init__(self, n: int) -> None:
        self._n = n
        self._prev: float | None = None
        self._count = 0
        self._gain = 0.0
        self._loss = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        prev = self._prev
        self._prev = x
        if prev is None:
            return None
        change = x - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        n = self._n
        if self._count < n:
            self._count += 1
            self._gain += gain
            self._loss += loss
            if self._count < n:
                return None
            self._gain /= n
            self._loss /= n
        else:
            self._gain = (self._gain * (n - 1) + gain) / n
            self._loss = (self._loss * (n - 1) + loss) / n
        if self._loss == 0.0:
            self.value = 100.0
        else:
            self.value = 100.0 - 100.0 / (1.0 + self._gain / self._loss)
        return self.value


class Atr:
    """Wilder's average true range over bars (high, low, close)."""

    __slots__ = ("_avg", "_count", "_n", "_prev_close", "value")

    def __init__(self, n: int) -> None:
        self._n = n
        self._prev_close: float | None = None
        self._count = 0
        self._avg = 0.0
        self.value: float | None = None

    def update_bar(self, high: float, low: float, close: float) -> float | None:
        prev = self._prev_close
        self._prev_close = close
        if prev is None:
            return None
        tr = max(high - low, abs(high - prev), abs(low - prev))
        n = self._n
        if self._count < n:
            self._count += 1
            self._avg += tr
            if self._count < n:
                return None
            self._avg /= n
        else:
            self._avg = (self._avg * (n - 1) + tr) / n
        self.value = self._avg
        return self.value


class Stdev:
    """Population standard deviation over a sliding window (Welford's update, no cancellation)."""

    __slots__ = ("_m2", "_mean", "_n", "_window", "value")

    def __init__(self, n: int) -> None:
        self._n = n
        self._window: deque[float] = deque()
        self._mean = 0.0
        self._m2 = 0.0
        self.value: float | None = None

    @property
    def mean(self) -> float | None:
        return self._mean if len(self._window) == self._n else None

    def update(self, x: float) -> float | None:
        window = self._window
        n = self._n
        if len(window) < n:
            window.append(x)
            delta = x - self._mean
            self._mean += delta / len(window)
            self._m2 += delta * (x - self._mean)
        else:
            old = window.popleft()
            window.append(x)
            mean_old = self._mean
            self._mean = mean_old + (x - old) / n
            self._m2 += (x - old) * (x - self._mean + old - mean_old)
        if len(window) == n:
            self.value = math.sqrt(self._m2 / n) if self._m2 > 0 else 0.0
        return self.value


class Bollinger:
    """Middle = SMA(N), upper/lower = middle ± k · population stdev."""

    __slots__ = ("_k", "_stdev", "lower", "middle", "upper")

    def __init__(self, n: int, k: float = 2.0) -> None:
        self._stdev = Stdev(n)
        self._k = k
        self.middle: float | None = None
        self.upper: float | None = None
        self.lower: float | None = None

    def update(self, x: float) -> float | None:
        sd = self._stdev.update(x)
        if sd is not None:
            middle = self._stdev.mean
            assert middle is not None
            self.middle = middle
            self.upper = middle + self._k * sd
            self.lower = middle - self._k * sd
        return self.middle


class Macd:
    __slots__ = ("_fast", "_signal", "_slow", "hist", "signal", "value")

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self._fast = Ema(fast)
        self._slow = Ema(slow)
        self._signal = Ema(signal)
        self.value: float | None = None
        self.signal: float | None = None
        self.hist: float | None = None

    def update(self, x: float) -> float | None:
        fast = self._fast.update(x)
        slow = self._slow.update(x)
        if fast is None or slow is None:
            return None
        self.value = fast - slow
        self.signal = self._signal.update(self.value)
        if self.signal is not None:
            self.hist = self.value - self.signal
        return self.value


class _Extreme:
    """The max (or min) of the N values before the current one: a monotonic deque, O(1) amortised."""

    __slots__ = ("_candidates", "_index", "_n", "_sign", "value")

    def __init__(self, n: int, sign: float) -> None:
        self._n = n
        self._sign = sign  # +1 for highest, -1 for lowest
        self._candidates: deque[tuple[int, float]] = deque()
        self._index = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        index = self._index
        candidates = self._candidates
        # The answer for this bar covers bars index-N .. index-1: computed before x joins.
        while candidates and candidates[0][0] < index - self._n:
            candidates.popleft()
        if index >= self._n:
            self.value = candidates[0][1] * self._sign
        keyed = x * self._sign
        while candidates and candidates[-1][1] <= keyed:
            candidates.pop()
        candidates.append((index, keyed))
        self._index = index + 1
        return self.value


class Highest(_Extreme):
    __slots__ = ()

    def __init__(self, n: int) -> None:
        super().__init__(n, 1.0)


class Lowest(_Extreme):
    __slots__ = ()

    def __init__(self, n: int) -> None:
        super().__init__(n, -1.0)
