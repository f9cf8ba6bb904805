"""Generate the bundled sample market data: python scripts/gen_sample_data.py

Three days of 1-minute bars (2026-03-02 to 2026-03-04, UTC) for EURUSD, XAUUSD, BTCUSDT and
ETHUSDT: a seeded random walk with realistic per-minute volatility, an intraday volatility cycle
and a few trends, so the example strategies trade. The same seed always writes the same files.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples" / "data"
START = datetime(2026, 3, 2, tzinfo=UTC)
MINUTES = 3 * 24 * 60

# symbol: (start price, per-minute volatility, decimals, typical volume)
MARKETS = {
    "EURUSD": (1.0850, 0.00012, 5, 120.0),
    "XAUUSD": (2915.0, 0.00030, 2, 60.0),
    "BTCUSDT": (86500.0, 0.00085, 2, 12.0),
    "ETHUSDT": (2250.0, 0.00110, 2, 150.0),
}


def bars(symbol: str, seed: int) -> list[tuple[str, float, float, float, float, float]]:
    price, vol, digits, volume = MARKETS[symbol]
    rng = random.Random(seed)
    rows = []
    drift = 0.0
    for minute in range(MINUTES):
        if minute % 360 == 0:  # a new regime every six hours: trending or ranging
            drift = rng.choice([-1.0, -0.5, 0.0, 0.0, 0.5, 1.0]) * vol * 0.15
        hour = (minute // 60) % 24
        session = 1.6 if 7 <= hour < 17 else 0.7  # busier in the European/US day
        sigma = vol * session
        opened = price
        path = [opened]
        for _ in range(4):
            path.append(path[-1] * math.exp(drift / 4 + rng.gauss(0, sigma / 2)))
        price = path[-1]
        high = max(path) * (1 + abs(rng.gauss(0, sigma / 4)))
        low = min(path) * (1 - abs(rng.gauss(0, sigma / 4)))
        moment = (START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
        qty = round(volume * session * rng.uniform(0.5, 1.5), 2)
        rows.append(
            (
                moment,
                round(opened, digits),
                round(high, digits),
                round(low, digits),
                round(price, digits),
                qty,
            )
        )
    return rows


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    combined: list[tuple[str, str, tuple[str, float, float, float, float, float]]] = []
    for seed, symbol in enumerate(MARKETS, start=7):
        rows = bars(symbol, seed)
        if symbol != "ETHUSDT":
            path = OUT / f"{symbol.lower()}-1m.csv"
            with path.open("w", encoding="utf-8") as fh:
                fh.write("time,open,high,low,close,volume\n")
                for r in rows:
                    fh.write(",".join(str(v) for v in r) + "\n")
            print(f"wrote {path.relative_to(ROOT)} ({len(rows)} bars)")
        combined.extend((r[0], symbol, r) for r in rows)
    combined.sort(key=lambda item: (item[0], item[1]))
    path = OUT / "markets-1m.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("time,open,high,low,close,volume,symbol\n")
        for _, symbol, r in combined:
            fh.write(",".join(str(v) for v in r) + f",{symbol}\n")
    print(f"wrote {path.relative_to(ROOT)} ({len(combined)} bars)")


if __name__ == "__main__":
    main()
