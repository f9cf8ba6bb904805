"""The order journal's cost on dispatch: insert + commit of ``order_sent`` (what runs before every
send), and of the outcome and fill that follow, on a real SQLite file in WAL mode with
``synchronous=NORMAL`` (SPEC §9: the journal adds <= 1 ms to the dispatch p99).

The journal first gets ``--history`` orders (weeks of trading) so the figures include index growth.
Each measured order is one ``next_client_id`` + ``order_sent`` (the send path), then an
``outcome`` (``accepted``) and a ``record_fill``, each its own committed transaction.

The slowest commits are SQLite's automatic WAL checkpoints (they fsync). A second run calls
``Journal.checkpoint()`` between orders (every ``--checkpoint-every``, untimed), as a host can on a
timer, to show what the send path costs when checkpoints stay off it.

Usage: python benchmarks/journal.py [--orders 5000] [--history 100000] [--checkpoint-every 100]
                                    [--dir PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qkt.brokers.tags import order_tag
from qkt.daemon.journal import Fill, Journal, Order

NAME = "fx-book/eur-momentum"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_order(journal: Journal) -> Order:
    client_id = journal.next_client_id(NAME)
    return Order(
        NAME,
        client_id,
        order_tag(NAME, client_id),
        "exness",
        "eur",
        "EXNESS",
        "EURUSD",
        "EURUSDm",
        "buy",
        Decimal("0.10"),
        datetime.now(UTC),
        stop_loss=Decimal("1.08430"),
        take_profit=Decimal("1.09100"),
    )


def make_fill(order: Order) -> Fill:
    return Fill(
        NAME,
        order.client_id,
        order.label,
        order.symbol,
        order.side,
        order.qty,
        Decimal("1.08512"),
        "market",
        datetime.now(UTC),
        Decimal("0.35"),
        order.alias,
        order.profile,
    )


def fill_history(journal: Journal, count: int) -> None:
    batch = 5000
    for start in range(0, count, batch):
        with journal.atomic():
            for _ in range(min(batch, count - start)):
                order = make_order(journal)
                journal.order_sent(order)
                journal.record_fill(make_fill(order))


def measure(journal: Journal, orders: int, checkpoint_every: int) -> dict[str, list[float]]:
    """Milliseconds of each call, per call; a checkpoint (untimed) every ``checkpoint_every``."""
    times: dict[str, list[float]] = {
        "next_client_id+order_sent": [],
        "outcome": [],
        "record_fill": [],
    }
    sent, outcome, filled = times.values()
    clock = time.perf_counter
    for number in range(orders):
        t0 = clock()
        order = make_order(journal)
        journal.order_sent(order)
        t1 = clock()
        journal.outcome(order.client_id, "accepted")
        t2 = clock()
        journal.record_fill(make_fill(order))
        t3 = clock()
        sent.append((t1 - t0) * 1000)
        outcome.append((t2 - t1) * 1000)
        filled.append((t3 - t2) * 1000)
        if checkpoint_every and number % checkpoint_every == checkpoint_every - 1:
            journal.checkpoint()
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    print(title)
    for name, values in times.items():
        p50, p99, p999 = (
            statistics.median(values),
            percentile(values, 0.99),
            percentile(values, 0.999),
        )
        slow = sum(v > 1 for v in values)
        print(
            f"  {name:26} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms   p99.9 {p999:6.3f} ms   "
            f"max {max(values):6.3f} ms   > 1 ms: {slow}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the file goes (default: a temp dir)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "qkt.db"
        journal = Journal.open(path)
        fill_history(journal, args.history)
        journal.checkpoint()
        automatic = measure(journal, args.orders, 0)
        timed = measure(journal, args.orders, args.checkpoint_every)
        size = path.stat().st_size
        journal.close()

    print(f"order journal in {path.parent}: {args.history} orders of history, {size / 1e6:.1f} MB")
    print(f"{args.orders} orders per run; every call is its own committed transaction")
    print("(WAL, synchronous=NORMAL: a commit writes the WAL, only checkpoints fsync)")
    report("automatic checkpoints (inside whichever commit crosses ~4 MB of WAL):", automatic)
    report(f"Journal.checkpoint() every {args.checkpoint_every} orders, between orders:", timed)
    sends = automatic["next_client_id+order_sent"]
    print(f"before each send: p99 {percentile(sends, 0.99):.3f} ms   (target <= 1 ms)")


if __name__ == "__main__":
    main()
