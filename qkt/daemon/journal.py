"""The daemon's durable state in one SQLite file (``<state-dir>/qkt.db``, SPEC §6.1).

It holds the deployments (with the strategy source each runs), the **order journal** — every order
request committed before it is sent, then its outcome —, fills, paper positions and balances, and
the client-id sequence. Schema and migrations: :mod:`qkt.daemon.schema`; values:
:mod:`qkt.daemon.records`.

Durability: WAL mode with ``synchronous=NORMAL``. A method that returned has committed, and the
commit survives the process ending in any way — an exception, ``kill -9``, the OOM killer — because
the WAL is written before the method returns. It does not cover the machine losing power or the
kernel crashing: WAL commits are fsynced at checkpoints, not each time, so the last transactions
before such a crash may be lost (the file stays consistent, never corrupt). Client ids stay unique
even then (each open draws a new stamp, below). Not supported: a network filesystem (WAL needs
shared memory on a local disk), another process writing the file, or copying the file while the
daemon runs (use :meth:`Journal.backup`).

Threads: one connection, owned by the thread that opened it (the daemon's asyncio loop thread);
sqlite3 refuses calls from any other thread. Each method is one short transaction; a transaction
must never span an ``await``, since every write of every session shares the connection.

Client ids (:meth:`Journal.next_client_id`, :mod:`qkt.daemon.ids`): ``<name>-<stamp>-<000001>``,
never issued twice by one state dir — not across restarts, not after ``kill -9``, not after a backup
is restored.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType

from qkt.daemon import ids, rows
from qkt.daemon.records import (
    DEPLOYMENT_STATES,
    FINAL_ORDER_STATES,
    LIVE_STATES,
    OPEN_ORDER_STATES,
    OUTCOMES,
    ClientIdJournaledError,
    Deployment,
    DeploymentRecord,
    DeploymentState,
    Fill,
    JournalError,
    NameInUseError,
    Order,
    OrderRecord,
    OrderState,
    Outcome,
    PaperAccount,
    PaperPosition,
    Replay,
)
from qkt.daemon.schema import MIGRATIONS, Migration, migrate
from qkt.diagnostics import error

__all__ = [
    "DEPLOYMENT_STATES",
    "FINAL_ORDER_STATES",
    "LIVE_STATES",
    "OPEN_ORDER_STATES",
    "OUTCOMES",
    "ClientIdJournaledError",
    "Deployment",
    "DeploymentRecord",
    "DeploymentState",
    "Fill",
    "Journal",
    "JournalError",
    "NameInUseError",
    "Order",
    "OrderRecord",
    "OrderState",
    "Outcome",
    "PaperAccount",
    "PaperPosition",
    "Replay",
]

_OPEN = "(" + ", ".join(f"'{state}'" for state in OPEN_ORDER_STATES) + ")"
_LIVE = "(" + ", ".join(f"'{state}'" for state in LIVE_STATES) + ")"
_DEPLOYMENTS = rows.DEPLOYMENT_COLUMNS
_ORDERS = rows.ORDER_COLUMNS
_FILLS = rows.FILL_COLUMNS
_POSITIONS = rows.POSITION_COLUMNS


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Journal:
    """The open database. Obtain one with :meth:`open`; close it with :meth:`close` (or ``with``)."""

    def __init__(self, connection: sqlite3.Connection, path: Path, now: Callable[[], datetime]):
        self._db = connection
        self.path = path
        self._now = now
        self._depth = 0
        self._ids: dict[str, tuple[int, int]] = {}  # name -> (next number, end of its block)
        with self.atomic():
            self.stamp = ids.draw_stamp(connection)
        """The stamp of this open, carried by every client id it issues."""

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        now: Callable[[], datetime] = _utc_now,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> Journal:
        """Open (or create, mode 0600) the journal at ``path`` and migrate it forward. Raises
        JournalError when the file is not a database, is newer than this code, or refuses WAL."""
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
            connection = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(error("journal-unreadable", f"cannot open {path}: {exc}")) from None
        try:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(
                    error(
                        "journal-no-wal",
                        f"{path}: SQLite refused WAL mode (journal_mode is {mode})",
                        hint="keep the state dir on a local filesystem",
                    )
                )
            connection.execute("PRAGMA synchronous = NORMAL")
            migrate(connection, path, migrations)
            return cls(connection, path, now)
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise JournalError(error("journal-unreadable", f"{path}: {exc}")) from None
        except BaseException:
            connection.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction around several calls (a fill and the paper state it changed); nested
        blocks are savepoints. Never hold one across an ``await``. A failing write (disk full, I/O
        error) rolls back and raises JournalError (``journal-write-failed``)."""
        outer = self._depth == 0
        name = f"s{self._depth}"
        self._db.execute("BEGIN IMMEDIATE" if outer else f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield
            if outer:
                self._db.execute("COMMIT")
        except BaseException as exc:
            if outer and self._db.in_transaction:
                self._db.execute("ROLLBACK")
            elif not outer:
                self._db.execute(f"ROLLBACK TO {name}")
                self._db.execute(f"RELEASE {name}")
            if (
                outer
                and isinstance(exc, sqlite3.Error)
                and not isinstance(exc, sqlite3.IntegrityError)
            ):
                raise JournalError(
                    error("journal-write-failed", f"{self.path}: the write was rolled back: {exc}")
                ) from exc
            raise
        finally:
            self._depth -= 1
        if not outer:
            self._db.execute(f"RELEASE {name}")

    def checkpoint(self) -> None:
        """Move the WAL into the database file now (it fsyncs: some ms). SQLite also does it on
        its own every ~4 MB of WAL, inside whichever commit crosses the mark, which may be the one
        before a send; calling this between orders (on a timer, when idle) keeps it off that path."""
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def backup(self, target: Path) -> None:
        """A consistent copy of the journal at ``target`` (mode 0600), safe while the daemon runs."""
        os.close(os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        copy = sqlite3.connect(target)
        try:
            self._db.backup(copy)
        finally:
            copy.close()

    # ------------------------------------------------------------ deployments
    def put_deployment(
        self, deployment: Deployment, state: DeploymentState = "starting"
    ) -> DeploymentRecord:
        """Record a new deployment, replacing a ``stopped``, ``failed`` or ``finished`` one of the
        same name (its orders, fills, paper state and id counter stay: they belong to the name).
        Raises NameInUseError when the name is ``starting`` or ``running``."""
        _check(state, DEPLOYMENT_STATES, "deployment state")
        name = deployment.name
        row = rows.deployment_row(deployment, state, self._stamp_now())
        updates = ", ".join(f"{c} = excluded.{c}" for c in _DEPLOYMENTS.split(", ")[1:])
        with self.atomic():
            cursor = self._db.execute(
                f"INSERT INTO deployments ({_DEPLOYMENTS}) VALUES ({rows.marks(_DEPLOYMENTS)}) "
                f"ON CONFLICT (name) DO UPDATE SET {updates} "
                f"WHERE deployments.state NOT IN {_LIVE}",
                row,
            )
            if cursor.rowcount == 0:
                held = self.deployment(name)
                raise NameInUseError(
                    error(
                        "name-in-use",
                        f"deployment `{name}` is {held.state if held else 'in use'}",
                        hint=f"stop it first: qkt stop {name}",
                    )
                )
        return self._deployment(name)

    def set_state(
        self, name: str, state: DeploymentState, reason: str | None = None
    ) -> DeploymentRecord:
        """Move ``name`` to ``state`` with its reason (``since`` changes only with the state)."""
        _check(state, DEPLOYMENT_STATES, "deployment state")
        now = self._stamp_now()
        with self.atomic():
            cursor = self._db.execute(
                "UPDATE deployments SET reason = ?, updated = ?, "
                "since = CASE WHEN state = ? THEN since ELSE ? END, state = ? WHERE name = ?",
                (reason, now, state, now, state, name),
            )
            if cursor.rowcount == 0:
                raise JournalError(error("unknown-deployment", f"no deployment `{name}`"))
        return self._deployment(name)

    def deployment(self, name: str) -> DeploymentRecord | None:
        row = self._db.execute(
            f"SELECT {_DEPLOYMENTS} FROM deployments WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else rows.deployment_record(row)

    def deployments(
        self, states: Iterable[DeploymentState] | None = None
    ) -> list[DeploymentRecord]:
        """Every deployment (or those in ``states``), by name."""
        query = f"SELECT {_DEPLOYMENTS} FROM deployments"
        wanted: tuple[str, ...] = ()
        if states is not None:
            wanted = tuple(states)
            query += f" WHERE state IN ({', '.join('?' * len(wanted))})"
        found = self._db.execute(query + " ORDER BY name", wanted).fetchall()
        return [rows.deployment_record(row) for row in found]

    def remove_deployment(self, name: str) -> None:
        """Forget the deployment and its paper state (a deploy refused after it was recorded).
        Its orders, fills and id counter stay, like every order that may have reached a venue."""
        with self.atomic():
            self._db.execute("DELETE FROM deployments WHERE name = ?", (name,))
            self.clear_paper(name)

    # ------------------------------------------------------------ orders
    def next_client_id(self, name: str) -> str:
        """A client id for an order of deployment (or session) ``name`` that this state dir has
        never issued and never will again; at most 128 characters (see :mod:`qkt.daemon.ids`)."""
        number, end = self._ids.get(name, (0, 0))
        if number >= end:
            with self.atomic():
                number, end = ids.reserve(self._db, name)
        self._ids[name] = (number + 1, end)
        return ids.client_id(name, self.stamp, number)

    def order_sent(self, order: Order) -> None:
        """Journal ``order`` and commit, before it is sent. Raises ClientIdJournaledError when its
        client id is journaled already: that order must not be sent (again)."""
        row = rows.order_row(order, self._stamp_now())
        try:
            with self.atomic():
                self._db.execute(
                    f"INSERT INTO orders ({_ORDERS}) VALUES ({rows.marks(_ORDERS)})", row
                )
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname not in (
                "SQLITE_CONSTRAINT_PRIMARYKEY",
                "SQLITE_CONSTRAINT_UNIQUE",
            ):
                raise ValueError(
                    f"order {order.client_id} does not fit the journal: {exc}"
                ) from None
            held = self.order(order.client_id)
            owner = f"`{held.order.deployment}` ({held.state})" if held else "another order"
            raise ClientIdJournaledError(
                error(
                    "client-id-journaled",
                    f"client id {order.client_id} is journaled already, for {owner}: "
                    "it is never sent twice",
                )
            ) from None

    def outcome(self, client_id: str, state: Outcome, reason: str | None = None) -> None:
        """Record what became of a journaled order: ``accepted``, ``unknown`` (reason: why),
        ``rejected`` (reason), or ``not_placed`` (the venue shows it never arrived). Fills are
        recorded by :meth:`record_fill`. A final outcome is never changed: JournalError."""
        _check(state, OUTCOMES, "order outcome")
        if state != "accepted" and not reason:
            raise ValueError(f"a `{state}` outcome needs its reason")
        with self.atomic():
            cursor = self._db.execute(
                f"UPDATE orders SET state = ?, reason = ?, updated = ? "
                f"WHERE client_id = ? AND state IN {_OPEN}",
                (state, reason, self._stamp_now(), client_id),
            )
            if cursor.rowcount == 0:
                held = self.order(client_id)
                if held is None:
                    raise JournalError(error("unknown-order", f"no journaled order {client_id}"))
                raise JournalError(
                    error(
                        "order-final",
                        f"order {client_id} is {held.state} already; `{state}` is not recorded",
                    )
                )

    def order(self, client_id: str) -> OrderRecord | None:
        row = self._db.execute(
            f"SELECT {_ORDERS} FROM orders WHERE client_id = ?", (client_id,)
        ).fetchone()
        return None if row is None else rows.order_record(row)

    def open_orders(self, deployment: str | None = None) -> list[OrderRecord]:
        """Orders without a final outcome (``sent``, ``accepted``, ``unknown``), oldest first: what
        a restart resolves at the venue before the stream sends anything. All deployments' when
        ``deployment`` is None."""
        where = f"state IN {_OPEN}" + ("" if deployment is None else " AND deployment = ?")
        found = self._db.execute(
            f"SELECT {_ORDERS} FROM orders WHERE {where} ORDER BY rowid",
            () if deployment is None else (deployment,),
        ).fetchall()
        return [rows.order_record(row) for row in found]

    # ------------------------------------------------------------ fills
    def record_fill(self, fill: Fill) -> None:
        """Record a fill; in the same commit its order (when journaled) becomes ``filled`` with the
        fill's price and quantity, unless it is filled already (a stop or target closing it). The
        venue is the truth: a fill also settles an order resolved as ``not_placed`` or rejected."""
        row = rows.fill_row(fill)
        with self.atomic():
            self._db.execute(f"INSERT INTO fills ({_FILLS}) VALUES ({rows.marks(_FILLS)})", row)
            self._db.execute(
                "UPDATE orders SET state = 'filled', fill_price = ?, fill_qty = ?, reason = NULL, "
                "updated = ? WHERE client_id = ? AND state != 'filled'",
                (rows.dec(fill.price), rows.dec(fill.qty), self._stamp_now(), fill.client_id),
            )

    def fills(self, deployment: str, limit: int | None = 20) -> list[Fill]:
        """The last ``limit`` fills of ``deployment`` (all when None), oldest first."""
        found = self._db.execute(
            f"SELECT {_FILLS} FROM fills WHERE deployment = ? ORDER BY id DESC LIMIT ?",
            (deployment, -1 if limit is None else limit),
        ).fetchall()
        return [rows.fill_record(row) for row in reversed(found)]

    # ------------------------------------------------------------ paper state
    def save_paper(self, deployment: str, accounts: Iterable[PaperAccount]) -> None:
        """Replace the paper state of ``deployment`` with ``accounts``, in one commit."""
        with self.atomic():
            self.clear_paper(deployment)
            for account in accounts:
                start, paid = rows.dec(account.starting_balance), rows.dec(account.commission_paid)
                self._db.execute(
                    "INSERT INTO paper_accounts (deployment, account, starting_balance, "
                    "commission_paid) VALUES (?, ?, ?, ?)",
                    (deployment, account.name, start, paid),
                )
                self._db.executemany(
                    f"INSERT INTO paper_positions ({_POSITIONS}) VALUES ({rows.marks(_POSITIONS)})",
                    [rows.position_row(deployment, account.name, p) for p in account.positions],
                )

    def load_paper(self, deployment: str) -> list[PaperAccount]:
        """The paper accounts of ``deployment`` as last saved, by name (empty when none)."""
        positions: dict[str, list[PaperPosition]] = {}
        for row in self._db.execute(
            f"SELECT {_POSITIONS} FROM paper_positions WHERE deployment = ? ORDER BY label, symbol",
            (deployment,),
        ):
            positions.setdefault(row[1], []).append(rows.position_record(row[2:]))
        accounts = self._db.execute(
            "SELECT account, starting_balance, commission_paid FROM paper_accounts "
            "WHERE deployment = ? ORDER BY account",
            (deployment,),
        ).fetchall()
        return [
            PaperAccount(name, Decimal(start), Decimal(paid), tuple(positions.get(name, ())))
            for name, start, paid in accounts
        ]

    def clear_paper(self, deployment: str) -> None:
        """Forget the paper state of ``deployment`` (its next session starts a fresh account)."""
        with self.atomic():
            self._db.execute("DELETE FROM paper_positions WHERE deployment = ?", (deployment,))
            self._db.execute("DELETE FROM paper_accounts WHERE deployment = ?", (deployment,))

    # ------------------------------------------------------------ internals
    def _stamp_now(self) -> str:
        return rows.utc(self._now())

    def _deployment(self, name: str) -> DeploymentRecord:
        record = self.deployment(name)
        assert record is not None
        return record


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{value!r} is not a {what} ({', '.join(allowed)})")
