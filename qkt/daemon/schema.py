"""The journal's schema: a list of forward migrations, versioned with ``PRAGMA user_version``.

``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``; a fresh file runs them all. Each
step and its version bump commit together, so a step that fails leaves the file at the version it
had. A released step is never edited: a change of schema is a new step appended to the list. A file
of a newer version than this code knows is refused (an older qkt would misread it).

Decimals are TEXT (exact); times are ISO-8601 UTC TEXT; booleans are 0/1.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from qkt.daemon.records import JournalError
from qkt.diagnostics import error

Migration = tuple[str, ...]
"""The statements of one step (``executescript`` is not used: it commits on its own)."""

_V1: Migration = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE deployments (
        name TEXT PRIMARY KEY,
        portfolio TEXT,
        strategy TEXT NOT NULL,
        file TEXT NOT NULL,
        source TEXT NOT NULL,
        params TEXT NOT NULL,
        strict INTEGER NOT NULL CHECK (strict IN (0, 1)),
        state TEXT NOT NULL
            CHECK (state IN ('starting', 'running', 'stopped', 'failed', 'finished')),
        reason TEXT,
        since TEXT NOT NULL,
        replay_csv TEXT,
        replay_speed TEXT,
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        CHECK ((replay_csv IS NULL) = (replay_speed IS NULL))
    )""",
    """CREATE TABLE orders (
        client_id TEXT PRIMARY KEY,
        deployment TEXT NOT NULL,
        tag TEXT NOT NULL,
        profile TEXT NOT NULL,
        alias TEXT NOT NULL,
        label TEXT NOT NULL,
        symbol TEXT NOT NULL,
        broker_symbol TEXT NOT NULL,
        side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
        qty TEXT NOT NULL,
        stop_loss TEXT,
        take_profit TEXT,
        reduce_only INTEGER NOT NULL CHECK (reduce_only IN (0, 1)),
        time TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'sent' CHECK (
            state IN ('sent', 'accepted', 'unknown', 'filled', 'rejected', 'not_placed')),
        reason TEXT,
        fill_price TEXT,
        fill_qty TEXT,
        updated TEXT NOT NULL
    )""",
    "CREATE INDEX orders_open ON orders (deployment)"
    " WHERE state IN ('sent', 'accepted', 'unknown')",
    """CREATE TABLE fills (
        id INTEGER PRIMARY KEY,
        deployment TEXT NOT NULL,
        client_id TEXT NOT NULL,
        alias TEXT,
        route TEXT,
        label TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
        qty TEXT NOT NULL,
        price TEXT NOT NULL,
        reason TEXT NOT NULL,
        time TEXT NOT NULL,
        commission TEXT NOT NULL
    )""",
    "CREATE INDEX fills_deployment ON fills (deployment, id)",
    """CREATE TABLE paper_accounts (
        deployment TEXT NOT NULL,
        account TEXT NOT NULL,
        starting_balance TEXT NOT NULL,
        commission_paid TEXT NOT NULL,
        PRIMARY KEY (deployment, account)
    )""",
    """CREATE TABLE paper_positions (
        deployment TEXT NOT NULL,
        account TEXT NOT NULL,
        label TEXT NOT NULL,
        symbol TEXT NOT NULL,
        qty TEXT NOT NULL,
        avg_price TEXT NOT NULL,
        realized TEXT NOT NULL,
        stop_loss TEXT,
        take_profit TEXT,
        legs_client_id TEXT,
        PRIMARY KEY (deployment, account, label, symbol)
    )""",
    # The first sequence number of each name not reserved yet (see Journal.next_client_id).
    "CREATE TABLE client_ids (name TEXT PRIMARY KEY, next INTEGER NOT NULL CHECK (next > 0))",
)

MIGRATIONS: tuple[Migration, ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def migrate(
    connection: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS
) -> int:
    """Bring the database of ``connection`` (in autocommit mode) to ``len(migrations)``, one
    committed step at a time; returns that version. Raises JournalError when the file is newer
    than ``migrations`` or a step fails (the file then stays at the last version reached)."""
    known = len(migrations)
    version = schema_version(connection)
    if version > known:
        raise JournalError(
            error(
                "journal-too-new",
                f"{path} has schema version {version}; this qkt knows versions up to {known}",
                hint="upgrade qkt, or use another state dir",
            )
        )
    for number in range(version, known):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in migrations[number]:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number + 1}")
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            connection.execute("ROLLBACK")
            raise JournalError(
                error(
                    "journal-migration-failed",
                    f"{path}: migrating the schema from version {number} to {number + 1} "
                    f"failed: {exc}",
                )
            ) from exc
    return known
