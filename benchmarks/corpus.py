"""A deterministic corpus of varied, valid strategies for throughput benchmarks and tests."""

from __future__ import annotations

import random

LABELS = [
    "EXNESS",
    "EXNESS-PERSONAL",
    "EXNESS-CORPORATE",
    "BACKTEST",
    "PAPER",
    "BYBIT",
    "ICMARKETS",
]
SYMBOLS = ["EURUSD", "GBPUSD", "XAUUSD", "NAS100", "BTCUSDT", "ETHUSDT", "USDJPY"]
TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h", "1d"]
ONE_ARG = ["sma", "ema", "wma", "rsi", "stdev", "highest", "lowest"]


def _value(rng: random.Random, aliases: list[str]) -> str:
    alias = rng.choice(aliases)
    roll = rng.random()
    if roll < 0.5:
        return f"{rng.choice(ONE_ARG)}({alias}, {rng.randint(2, 50)})"
    if roll < 0.6:
        return f"atr({alias}, {rng.randint(2, 30)})"
    if roll < 0.7:
        return f"bollinger_upper({alias}.close, 20, 2)"
    if roll < 0.8:
        return f"macd({alias}, 12, 26, 9)"
    return f"{alias}.{rng.choice(['open', 'high', 'low', 'close'])}"


def _condition(rng: random.Random, aliases: list[str]) -> str:
    kind = rng.random()
    a, b = _value(rng, aliases), _value(rng, aliases)
    if kind < 0.3:
        return f"{a} crosses {rng.choice(['ABOVE', 'below'])} {b}"
    if kind < 0.5:
        return f"{a} {rng.choice(['<', '>', '<=', '>=', '!='])} {b} AND NOT {b} > {a} * 2"
    if kind < 0.7:
        return f"rsi({rng.choice(aliases)}, 14) BETWEEN 30 AND 70 OR {a} > {b}"
    return f"POSITION.{rng.choice(aliases)} = 0 AND {a} > {b}"


def strategy(i: int) -> str:
    """The i-th strategy of the corpus (same text for the same i, always)."""
    rng = random.Random(i)
    n_streams = rng.randint(1, 4)
    aliases = [f"s{k}" for k in range(n_streams)]
    lines = [f"STRATEGY gen_{i} VERSION {rng.randint(1, 9)}", "SYMBOLS"]
    for alias in aliases:
        lines.append(
            f"  {alias} = {rng.choice(LABELS)}:{rng.choice(SYMBOLS)} EVERY {rng.choice(TIMEFRAMES)}"
        )
    lines.append("PARAM size = 0.1")
    lines.append(f"PARAM fast = {rng.randint(3, 12)}")
    lines.append(f"LET spread = {aliases[0]}.high - {aliases[0]}.low")
    lines.append("RULES")
    for _ in range(rng.randint(1, 5)):
        alias = rng.choice(aliases)
        side = rng.choice(["BUY", "SELL"])
        sizing = rng.choice(["size", "2 PCT OF EQUITY", "1000 USD", "0.5"])
        bracket = rng.choice(
            [
                "",
                " BRACKET { STOP_LOSS BY 1 PCT, TAKE_PROFIT BY 2 PCT }",
                " BRACKET STOP_LOSS BY 50 PCT TAKE_PROFIT BY 100 PCT",
            ]
        )
        lines.append(f"-- rule for {alias}")
        lines.append(f"WHEN {_condition(rng, aliases)}")
        lines.append(f'THEN {side} {alias} SIZING {sizing}{bracket}; LOG "{side} {alias}"')
    if rng.random() < 0.5:
        lines.append(f"WHEN spread > 0 AND ema({aliases[0]}, fast) < {aliases[0]} THEN CLOSE_ALL")
    return "\n".join(lines) + "\n"


def corpus(n: int = 1000) -> list[str]:
    return [strategy(i) for i in range(n)]
