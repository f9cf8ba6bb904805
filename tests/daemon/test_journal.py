"""The journal on real SQLite files: what a restart finds after a close, a reopen or a kill -9, the
order journal's refusals, exact decimals, the client-id sequence, migrations and secrets."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from qkt.brokers.tags import MAX_CLIENT_ID, order_tag
from qkt.config import load_config
from qkt.daemon.journal import (
    ClientIdJournaledError,
    Deployment,
    Fill,
    Journal,
    JournalError,
    NameInUseError,
    Order,
    PaperAccount,
    PaperPosition,
    Replay,
)
from qkt.daemon.schema import MIGRATIONS
from tests.conftest import ROOT, SEED, Writer

T0 = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def deployment(name: str = "fx-book/eur-momentum", **changes: object) -> Deployment:
    values: dict[str, object] = {
        "name": name,
        "strategy": "momentum",
        "file": "strategies/momentum.qkt",
        "source": SEED,
        "params": {"fast": Decimal("9"), "size": Decimal("0.10"), "hedge": True, "tf": "1m"},
        "strict": True,
        "portfolio": "fx-book",
    }
    values.update(changes)
    return Deployment(**values)  # type: ignore[arg-type]


def order(journal: Journal, name: str = "fx-book/eur-momentum", **changes: object) -> Order:
    client_id = str(changes.pop("client_id", None) or journal.next_client_id(name))
    values: dict[str, object] = {
        "deployment": name,
        "client_id": client_id,
        "tag": order_tag(name, client_id),
        "profile": "exness",
        "alias": "eur",
        "label": "EXNESS",
        "symbol": "EURUSD",
        "broker_symbol": "EURUSDm",
        "side": "buy",
        "qty": Decimal("0.10"),
        "time": T0,
        "stop_loss": Decimal("1.08430"),
        "take_profit": None,
    }
    values.update(changes)
    return Order(**values)  # type: ignore[arg-type]


def fill(o: Order, price: str = "1.08512", **changes: object) -> Fill:
    values: dict[str, object] = {
        "deployment": o.deployment,
        "client_id": o.client_id,
        "label": o.label,
        "symbol": o.symbol,
        "side": o.side,
        "qty": o.qty,
        "price": Decimal(price),
        "reason": "market",
        "time": T0 + timedelta(seconds=1),
        "commission": Decimal("0.35"),
        "alias": o.alias,
        "route": o.profile,
    }
    values.update(changes)
    return Fill(**values)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "qkt.db"


def run_child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# ---------------------------------------------------------------- the file
def test_the_file_is_private_in_wal_mode(db: Path) -> None:
    Journal.open(db).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with sqlite3.connect(db) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_a_database_is_a_clear_error(db: Path) -> None:
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match=str(db)) as caught:
        Journal.open(db)
    assert caught.value.diagnostics[0].code == "journal-unreadable"


def test_only_the_thread_that_opened_it_may_use_it(db: Path) -> None:
    journal = Journal.open(db)
    failures: list[BaseException] = []

    def elsewhere() -> None:
        try:
            journal.next_client_id("momentum")
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert len(failures) == 1 and isinstance(failures[0], sqlite3.ProgrammingError)


# ---------------------------------------------------------------- deployments
def test_a_deployment_comes_back_after_reopening_with_its_source_params_and_replay(
    db: Path,
) -> None:
    replay = Replay("time,open,high,low,close\n2024-01-01T00:00:00Z,1,1,1,1\n", "10")
    with Journal.open(db) as journal:
        journal.put_deployment(deployment(replay=replay))
    with Journal.open(db) as journal:
        record = journal.deployment("fx-book/eur-momentum")
    assert record is not None
    assert record.deployment == deployment(replay=replay)
    assert record.deployment.params["size"] == Decimal("0.10")  # exact, not 0.1 nor a float
    assert str(record.deployment.params["size"]) == "0.10"
    assert record.state == "starting" and record.reason is None


def test_a_live_name_is_refused_and_a_stopped_one_is_replaced_keeping_its_history(
    db: Path,
) -> None:
    clock = Clock()
    journal = Journal.open(db, now=clock)
    journal.put_deployment(deployment())
    with pytest.raises(NameInUseError, match="is starting"):
        journal.put_deployment(deployment(source="other"))
    journal.set_state("fx-book/eur-momentum", "running")
    with pytest.raises(NameInUseError, match="is running") as caught:
        journal.put_deployment(deployment(source="other"))
    assert "qkt stop fx-book/eur-momentum" in str(caught.value)
    first = order(journal)
    journal.order_sent(first)
    journal.record_fill(fill(first))
    journal.set_state("fx-book/eur-momentum", "failed", "gateway refused the account")

    clock.now = T0 + timedelta(hours=1)
    replaced = journal.put_deployment(deployment(source="STRATEGY v2", params={}))
    assert replaced.deployment.source == "STRATEGY v2" and replaced.deployment.params == {}
    assert (replaced.state, replaced.reason, replaced.created) == ("starting", None, clock.now)
    assert journal.order(first.client_id) is not None
    assert [f.client_id for f in journal.fills("fx-book/eur-momentum")] == [first.client_id]


def test_state_changes_carry_their_reason_and_since_moves_only_with_the_state(db: Path) -> None:
    clock = Clock()
    journal = Journal.open(db, now=clock)
    journal.put_deployment(deployment())
    clock.now = T0 + timedelta(minutes=1)
    running = journal.set_state("fx-book/eur-momentum", "running")
    clock.now = T0 + timedelta(minutes=2)
    again = journal.set_state("fx-book/eur-momentum", "running")
    assert running.since == again.since == T0 + timedelta(minutes=1)
    assert again.updated == T0 + timedelta(minutes=2)
    stopped = journal.set_state("fx-book/eur-momentum", "stopped", "replay interrupted")
    assert (stopped.state, stopped.reason, stopped.since) == (
        "stopped",
        "replay interrupted",
        clock.now,
    )
    with pytest.raises(JournalError, match="no deployment `nope`"):
        journal.set_state("nope", "running")


def test_what_a_restart_restores_is_the_starting_and_running_ones(db: Path) -> None:
    with Journal.open(db) as journal:
        for name, state in [
            ("a", "running"),
            ("b", "stopped"),
            ("c", "starting"),
            ("d", "finished"),
        ]:
            journal.put_deployment(deployment(name, portfolio=None), state)  # type: ignore[arg-type]
    with Journal.open(db) as journal:
        assert [d.name for d in journal.deployments(["starting", "running"])] == ["a", "c"]
        assert [d.name for d in journal.deployments()] == ["a", "b", "c", "d"]


def test_removing_a_refused_deployment_keeps_the_orders_it_sent(db: Path) -> None:
    journal = Journal.open(db)
    journal.put_deployment(deployment())
    sent = order(journal)
    journal.order_sent(sent)
    journal.save_paper("fx-book/eur-momentum", [PaperAccount("paper", Decimal(10000))])
    journal.remove_deployment("fx-book/eur-momentum")
    assert journal.deployment("fx-book/eur-momentum") is None
    assert journal.load_paper("fx-book/eur-momentum") == []
    assert [o.order.client_id for o in journal.open_orders("fx-book/eur-momentum")] == [
        sent.client_id
    ]


# ---------------------------------------------------------------- the order journal
def test_an_order_is_committed_when_order_sent_returns(db: Path) -> None:
    journal = Journal.open(db)
    sent = order(journal)
    journal.order_sent(sent)
    # another connection (what the next daemon would open) sees it at once
    with sqlite3.connect(db) as other:
        row = other.execute(
            "SELECT client_id, state, qty, typeof(qty), stop_loss FROM orders"
        ).fetchone()
    assert row == (sent.client_id, "sent", "0.10", "text", "1.08430")


def test_an_order_journaled_before_a_kill_9_is_there_after_it(db: Path) -> None:
    proc = run_child(
        f"""
        import time
        from datetime import UTC, datetime
        from decimal import Decimal
        from qkt.daemon.journal import Journal, Order
        journal = Journal.open({str(db)!r})
        while True:
            cid = journal.next_client_id("momentum")
            journal.order_sent(Order("momentum", cid, "t", "exness", "eur", "EXNESS", "EURUSD",
                                     "EURUSDm", "buy", Decimal("0.1"), datetime.now(UTC)))
            print(cid, flush=True)  # what the daemon would now send
        """
    )
    assert proc.stdout is not None
    printed = [proc.stdout.readline().strip() for _ in range(200)]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    with Journal.open(db) as journal:
        journaled = {o.order.client_id for o in journal.open_orders("momentum")}
        assert set(printed) <= journaled  # every id that could have been sent is journaled
        after = {journal.next_client_id("momentum") for _ in range(200)}
    assert not after & journaled  # and no id is issued again


def test_a_client_id_is_never_journaled_twice(db: Path) -> None:
    journal = Journal.open(db)
    first = order(journal, qty=Decimal("0.1"))
    journal.order_sent(first)
    with pytest.raises(ClientIdJournaledError, match=first.client_id) as caught:
        journal.order_sent(order(journal, client_id=first.client_id, qty=Decimal("5")))
    assert "never sent twice" in str(caught.value)
    held = journal.order(first.client_id)
    assert held is not None and held.order.qty == Decimal("0.1")
    assert len(journal.open_orders()) == 1


def test_outcomes_leave_open_exactly_the_orders_a_restart_must_resolve(db: Path) -> None:
    journal = Journal.open(db)
    sent, accepted, unknown, rejected, absent, filled = (order(journal) for _ in range(6))
    other = order(journal, "other", qty=Decimal("1"))
    for o in (sent, accepted, unknown, rejected, absent, filled, other):
        journal.order_sent(o)
    journal.outcome(accepted.client_id, "accepted")
    journal.outcome(unknown.client_id, "unknown", "timeout after 10 s")
    journal.outcome(rejected.client_id, "rejected", "10019 no money")
    journal.outcome(absent.client_id, "not_placed", "no deal or position carries its tag")
    journal.record_fill(fill(filled))
    journal.close()

    with Journal.open(db) as journal:
        open_ = journal.open_orders("fx-book/eur-momentum")
        assert [(o.order.client_id, o.state) for o in open_] == [
            (sent.client_id, "sent"),
            (accepted.client_id, "accepted"),
            (unknown.client_id, "unknown"),
        ]
        assert open_[2].reason == "timeout after 10 s"
        assert open_[0].order == sent
        assert {o.order.deployment for o in journal.open_orders()} == {
            "fx-book/eur-momentum",
            "other",
        }
        done = journal.order(filled.client_id)
        assert done is not None and done.final
        assert (done.state, done.price, done.filled_qty) == (
            "filled",
            Decimal("1.08512"),
            Decimal("0.10"),
        )
        refused = journal.order(rejected.client_id)
        assert refused is not None and (refused.state, refused.reason) == (
            "rejected",
            "10019 no money",
        )
        # an unknown outcome resolved later at the venue
        journal.record_fill(fill(unknown, "1.09"))
        assert unknown.client_id not in {o.order.client_id for o in journal.open_orders()}


def test_a_final_outcome_is_never_changed(db: Path) -> None:
    journal = Journal.open(db)
    o = order(journal)
    journal.order_sent(o)
    journal.outcome(o.client_id, "rejected", "market closed")
    with pytest.raises(JournalError, match="is rejected already") as caught:
        journal.outcome(o.client_id, "accepted")
    assert caught.value.diagnostics[0].code == "order-final"
    with pytest.raises(JournalError, match="no journaled order nope"):
        journal.outcome("nope", "accepted")
    with pytest.raises(ValueError, match="needs its reason"):
        journal.outcome(o.client_id, "unknown")


def test_a_stop_loss_fill_of_a_filled_order_keeps_its_entry_price(db: Path) -> None:
    journal = Journal.open(db)
    o = order(journal)
    journal.order_sent(o)
    journal.record_fill(fill(o, "1.08512"))
    journal.record_fill(fill(o, "1.08430", side="sell", reason="stop_loss"))
    held = journal.order(o.client_id)
    assert held is not None and held.price == Decimal("1.08512")
    fills = journal.fills("fx-book/eur-momentum")
    assert [(f.reason, f.price) for f in fills] == [
        ("market", Decimal("1.08512")),
        ("stop_loss", Decimal("1.08430")),
    ]
    assert fills[0] == fill(o, "1.08512")


def test_fills_gives_the_last_ones_oldest_first(db: Path) -> None:
    journal = Journal.open(db)
    orders = [order(journal) for _ in range(25)]
    for i, o in enumerate(orders):
        journal.order_sent(o)
        journal.record_fill(fill(o, f"1.{i:02d}"))
    last = journal.fills("fx-book/eur-momentum")
    assert [f.client_id for f in last] == [o.client_id for o in orders[5:]]
    assert len(journal.fills("fx-book/eur-momentum", limit=None)) == 25
    assert journal.fills("other") == []


def test_an_atomic_block_that_fails_writes_nothing(db: Path) -> None:
    journal = Journal.open(db)
    o = order(journal)
    journal.order_sent(o)
    with pytest.raises(RuntimeError), journal.atomic():
        journal.record_fill(fill(o))
        journal.save_paper("fx-book/eur-momentum", [PaperAccount("paper", Decimal(1))])
        raise RuntimeError("the paper broker failed half way")
    assert journal.fills("fx-book/eur-momentum") == []
    assert journal.load_paper("fx-book/eur-momentum") == []
    assert [r.state for r in journal.open_orders()] == ["sent"]


# ---------------------------------------------------------------- paper state
def test_paper_positions_and_balances_come_back_exactly(db: Path) -> None:
    accounts = [
        PaperAccount(
            "paper:exness",
            Decimal("10000"),
            Decimal("1.75"),
            (
                PaperPosition(
                    "exness",
                    "EURUSD",
                    Decimal("0.30"),
                    Decimal("1.084333333"),
                    Decimal("-12.5"),
                    Decimal("1.07"),
                    Decimal("1.10"),
                    "m-x-000001",
                ),
                PaperPosition("exness", "XAUUSD", Decimal("-1"), Decimal("2050.1")),
            ),
        ),
        PaperAccount("paper", Decimal("5000")),
    ]
    with Journal.open(db) as journal:
        journal.save_paper("fx-book/eur-momentum", accounts)
        journal.save_paper("other", [PaperAccount("paper", Decimal("1"))])
    with Journal.open(db) as journal:
        assert journal.load_paper("fx-book/eur-momentum") == sorted(accounts, key=lambda a: a.name)
        smaller = [PaperAccount("paper", Decimal("4990"), Decimal("0.1"))]
        journal.save_paper("fx-book/eur-momentum", smaller)
        assert journal.load_paper("fx-book/eur-momentum") == smaller
        journal.clear_paper("fx-book/eur-momentum")
        assert journal.load_paper("fx-book/eur-momentum") == []
        assert journal.load_paper("other") == [PaperAccount("paper", Decimal("1"))]


# ---------------------------------------------------------------- client ids
def test_client_ids_never_repeat_across_reopens(db: Path) -> None:
    issued: list[str] = []
    for _ in range(5):
        with Journal.open(db) as journal:
            issued += [journal.next_client_id("fx-book/eur-momentum") for _ in range(70)]
            issued += [journal.next_client_id("other") for _ in range(3)]
    assert len(set(issued)) == len(issued)
    assert all(i.startswith(("fx-book/eur-momentum-", "other-")) for i in issued)
    assert issued[0].endswith("-000001")


def test_client_ids_stay_unique_after_an_old_backup_is_restored(db: Path, tmp_path: Path) -> None:
    backup = tmp_path / "backup.db"
    with Journal.open(db) as journal:
        before = [journal.next_client_id("momentum") for _ in range(3)]
        journal.backup(backup)
        after_backup = [journal.next_client_id("momentum") for _ in range(100)]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    backup.rename(db)
    with Journal.open(db) as journal:
        restored = [journal.next_client_id("momentum") for _ in range(100)]
    assert not set(restored) & set(before + after_backup)


def test_client_ids_fit_the_gateway_however_long_the_name_and_the_sequence(db: Path) -> None:
    long_a, long_b = "p" * 150 + "/a", "p" * 150 + "/b"
    with Journal.open(db) as journal:
        journal.next_client_id(long_a)
    with sqlite3.connect(db) as raw:  # a deployment that has sent nearly a million orders
        raw.execute("UPDATE client_ids SET next = 999998 WHERE name = ?", (long_a,))
    with Journal.open(db) as journal:
        ids = [journal.next_client_id(long_a) for _ in range(4)]
        ids += [journal.next_client_id(long_b) for _ in range(2)]
    assert all(len(i) <= MAX_CLIENT_ID for i in ids), [len(i) for i in ids]
    assert len(set(ids)) == len(ids)


# ---------------------------------------------------------------- schema
V2 = (*MIGRATIONS, ("ALTER TABLE fills ADD COLUMN venue_deal TEXT",))


def test_a_version_1_file_migrates_to_version_2_keeping_its_data(db: Path) -> None:
    with Journal.open(db) as journal:
        journal.put_deployment(deployment())
        o = order(journal)
        journal.order_sent(o)
        journal.record_fill(fill(o))
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    with Journal.open(db, migrations=V2) as journal:
        assert journal.deployment("fx-book/eur-momentum") is not None
        assert journal.fills("fx-book/eur-momentum") == [fill(o)]
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
        columns = [row[1] for row in raw.execute("PRAGMA table_info(fills)")]
    assert "venue_deal" in columns


def test_a_failing_migration_leaves_the_file_at_its_version(db: Path) -> None:
    Journal.open(db).close()
    broken = (*MIGRATIONS, ("CREATE TABLE half (x)", "ALTER TABLE nowhere ADD COLUMN y"))
    with pytest.raises(JournalError, match="from version 1 to 2 failed") as caught:
        Journal.open(db, migrations=broken)
    assert caught.value.diagnostics[0].code == "journal-migration-failed"
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    assert "half" not in tables
    Journal.open(db).close()


def test_a_file_newer_than_the_code_is_refused(db: Path) -> None:
    Journal.open(db, migrations=V2).close()
    with pytest.raises(JournalError, match="schema version 2; this qkt knows versions up to 1"):
        Journal.open(db)


# ---------------------------------------------------------------- secrets
def test_no_secret_reaches_the_database(tmp_path: Path, write: Writer) -> None:
    key, secret = "gw-key-5f1e9c0d7a", "bybit-secret-77aa01"
    config_file = write(
        "qkt.config.yaml",
        textwrap.dedent(
            f"""
            brokers:
              exness:
                gateway_url: http://127.0.0.1:5005
                api_key: {key}
              bybit:
                type: bybit
                api_key: {key}
                api_secret: {secret}
            """
        ),
    )
    config = load_config(config_file, env={"HOME": str(tmp_path)}, cwd=tmp_path)
    profile = config.profiles["exness"]
    state = tmp_path / "state"
    state.mkdir()
    journal = Journal.open(state / "qkt.db")
    source = config_file.read_text().replace(key, "***").replace(secret, "***")
    journal.put_deployment(deployment(source=source, file=str(config.path)))
    o = order(journal, profile=profile.name, label=profile.name.upper())
    journal.order_sent(o)
    journal.outcome(o.client_id, "unknown", f"gateway {profile.target} timed out ({profile})")
    journal.record_fill(fill(o, route=f"{profile.name} {profile.target}"))
    journal.save_paper(o.deployment, [PaperAccount(f"paper:{profile.name}", Decimal(10000))])
    files = [p for p in state.iterdir() if p.is_file()]
    written = b"".join(p.read_bytes() for p in files)
    assert profile.target.encode() in written  # what was journaled is in these bytes
    assert key.encode() not in written and secret.encode() not in written
    journal.close()
    assert key.encode() not in (state / "qkt.db").read_bytes()
