"""The demo's temporary folder: the configuration whose ``exness`` profile is the simulator, the
quotes the simulator follows, the daemon's state dir, and the children's output.

The simulator and the daemon's replay run side by side on two clocks: the simulator moves one
row of its file every ``--tick-ms``, the replay sends the sample bars at a multiple of real time.
So that a fill at the simulator happens near the price the strategy saw, the simulator's file
holds only the rows of the symbols it serves, the replay's speed is chosen to take as long as
the simulator's file, and the file starts with a short flat stretch (the first price, on
earlier bars) that covers the moments between the simulator's first tick and the replay's
first row.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

TICK_MS = 2
"""How often the simulator moves to its file's next row."""
STEP_MS = TICK_MS + 0.17
"""What a step of the simulator takes (its ticker waits ``TICK_MS``, then moves the quote;
measured: 2.165 ms a step while the demo runs on two cores)."""
LEAD_S = 0.45
"""The usual time from the simulator's first tick to the replay's first row: the deploy's
checks, the daemon's plan and its brokers' start against the simulator."""
MAX_SOCKET = 100  # bytes of a socket path under the temporary folder (a Unix socket holds 107)


@dataclass(frozen=True, slots=True)
class Workdir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "qkt.config.yaml"

    @property
    def state(self) -> Path:
        return self.path / "state"

    @property
    def sim_prices(self) -> Path:
        return self.path / "sim-prices.csv"

    @property
    def sim_output(self) -> Path:
        return self.path / "sim.out"

    @property
    def daemon_output(self) -> Path:
        return self.path / "daemon.out"


@dataclass(frozen=True, slots=True)
class Pace:
    tick_ms: int
    speed: float
    seconds: float
    """How long the replay takes at ``speed``."""
    prices: Path | None
    """The simulator's file (None: no stream routes to it, its quotes are a random walk)."""

    @property
    def speed_text(self) -> str:
        return f"{self.speed:.0f}"

    @property
    def span_text(self) -> str:
        """The time the replay covers: ``3 days``, ``6 hours``."""
        span = self.speed * self.seconds
        days, hours = round(span / 86400), round(span / 3600)
        return f"{days} day{'s' * (days != 1)}" if days else f"{hours} hour{'s' * (hours != 1)}"


def make_workdir() -> Workdir:
    """A fresh folder (mode 0700) short enough for the daemon's socket."""
    base = None
    probe = len(os.fsencode(Path(tempfile.gettempdir()) / "qkt-demo-xxxxxxxx/state/qkt.sock"))
    if probe > MAX_SOCKET and Path("/tmp").is_dir():
        base = "/tmp"
    return Workdir(Path(tempfile.mkdtemp(prefix="qkt-demo-", dir=base)))


def write_config(work: Workdir, port: int) -> None:
    """Only the simulator as ``exness``; market data from the deploy's replay alone."""
    work.config.write_text(
        "# qkt demo: the exness profile is the bundled mt5-gateway simulator\n"
        "market_data:\n"
        "  source: none\n"
        "brokers:\n"
        "  exness:\n"
        f"    gateway_url: http://127.0.0.1:{port}\n"
        "    poll_interval_ms: 100\n"
        "    http_timeout_ms: 2000\n"
        "    retry_attempts: 2\n"
        "    ready_timeout_ms: 10000\n",
        encoding="utf-8",
    )


def write_sim_prices(replay: Path, symbols: set[str], work: Workdir) -> Pace:
    """The rows of ``replay`` for ``symbols`` (the qkt symbols routed to the simulator), after
    the flat lead-in, into the simulator's file; and the replay's pace that keeps the two
    together (about 15 s when nothing routes to the simulator)."""
    with replay.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    at = {name: i for i, name in enumerate(header)}
    ti, si = at["time"], at["symbol"]
    first, last = _time(body[0][ti]), _time(body[-1][ti])
    span = (last - first).total_seconds()
    kept = [r for r in body if r[si] in symbols]
    if not kept:
        speed = max(span / 15, 1.0)
        return Pace(TICK_MS, speed, span / speed, None)
    steps = len(kept) * STEP_MS / 1000
    speed = span / steps
    lead = _lead_in(header, kept, round(LEAD_S / (STEP_MS / 1000) / len(symbols)))
    with work.sim_prices.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(lead)
        writer.writerows(kept)
    return Pace(TICK_MS, speed, span / speed, work.sim_prices)


def _lead_in(header: list[str], kept: list[list[str]], count: int) -> list[list[str]]:
    """``count`` flat one-minute bars per symbol before the first row, at its first open."""
    at = {name: i for i, name in enumerate(header)}
    start = _time(kept[0][at["time"]])
    opens: dict[str, str] = {}
    for row in kept:
        opens.setdefault(row[at["symbol"]], row[at["open"]])
    rows = []
    for back in range(count, 0, -1):
        for symbol, price in sorted(opens.items()):
            row = [""] * len(header)
            row[at["time"]] = (start - timedelta(minutes=back)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for column in ("open", "high", "low", "close"):
                row[at[column]] = price
            if "volume" in at:
                row[at["volume"]] = "0"
            row[at["symbol"]] = symbol
            rows.append(row)
    return rows


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())
