"""In-process parse + check + plan throughput over a generated corpus (SPEC §9: ≥2,000 files/s).

Usage: python benchmarks/throughput.py [--files 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.corpus import corpus
from qkt.brokers.registry import BrokerRegistry
from qkt.config import load_config
from qkt.dsl import parse_strategy
from qkt.routing import plan_routes

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    texts = corpus(args.files)
    config = load_config(ROOT / "qkt.config.yaml", env={})
    registry = BrokerRegistry.from_config(config)
    rates, bad = [], 0
    for _ in range(args.rounds):
        start = time.perf_counter()
        for i, text in enumerate(texts):
            parsed = parse_strategy(text, f"gen_{i}.qkt")
            if parsed.strategy is None or not parsed.ok:
                bad += 1
                continue
            plan_routes(parsed.strategy, registry, False, path=f"gen_{i}.qkt")
        rates.append(len(texts) / (time.perf_counter() - start))
    lines = sum(t.count("\n") for t in texts) / len(texts)
    print(f"parse + check + plan over {len(texts)} generated strategies (~{lines:.0f} lines each):")
    print(f"  median {statistics.median(rates):8.0f} files/s   (target >= 2,000)")
    print(f"  best   {max(rates):8.0f} files/s over {args.rounds} rounds")
    if bad:
        print(f"  WARNING: {bad // args.rounds} corpus files did not validate")


if __name__ == "__main__":
    main()
