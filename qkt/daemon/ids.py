"""The client-id sequence of one state dir: ``<name>-<stamp>-<000001>``, never issued twice.

Two things make an id unique, each enough on its own in the usual case:

- a **per-name counter** in the file (``client_ids``), which reserves numbers in blocks of
  :data:`ID_BLOCK`: a block is committed before any of its numbers is handed out, so a restart —
  after ``kill -9`` too — continues above it (the unused rest of a block is skipped);
- a **stamp** drawn at each open of the journal (milliseconds, base 36), always above the last one
  recorded (``meta``), so ids of two opens differ even where the counter went back: a restored
  backup, a lost last commit after a power cut (as long as the clock does not go back as well).

The gateway takes 128 characters; :func:`qkt.brokers.tags.client_prefix` shortens a long name (with
a hash of it) so that an id always fits, also past the millionth order of one name.
"""

from __future__ import annotations

import sqlite3
import time

from qkt.brokers.tags import client_prefix, run_stamp

ID_BLOCK = 64
_MILLION = 1_000_000


def reserve(db: sqlite3.Connection, name: str) -> tuple[int, int]:
    """Reserve the next block of numbers of ``name``: ``(first, end)``. Run it in a transaction."""
    row = db.execute("SELECT next FROM client_ids WHERE name = ?", (name,)).fetchone()
    first = 1 if row is None else int(row[0])
    db.execute(
        "INSERT INTO client_ids (name, next) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET next = excluded.next",
        (name, first + ID_BLOCK),
    )
    return first, first + ID_BLOCK


def draw_stamp(db: sqlite3.Connection) -> str:
    """The stamp of this open, above every earlier one. Run it in a transaction."""
    row = db.execute("SELECT value FROM meta WHERE key = 'stamp'").fetchone()
    value = max(int(time.time() * 1000), (0 if row is None else int(row[0])) + 1)
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('stamp', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(value),),
    )
    return run_stamp(value)


def client_id(name: str, stamp: str, number: int) -> str:
    """``<name>-<stamp>-<000001>``; from the millionth on ``<name>-<stamp>-<1>-<000000>``, so the
    id still fits the gateway's limit (the prefix makes room for the longer tail)."""
    high, low = divmod(number, _MILLION)
    return f"{client_prefix(name, stamp if high == 0 else f'{stamp}-{high}')}-{low:06d}"
