"""The daemon's logs on real files: the sinks' files and line format, a deployment's own file, and
reading back — the last lines, and following a log across a rotation."""

from __future__ import annotations

import asyncio
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from qkt.daemon import logs
from qkt.daemon.statedir import StateDir


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateDir]:
    yield StateDir.open(tmp_path / "state")
    logger.remove()
    logger.configure(extra={})
    logger.add(sys.stderr)


def test_daemon_log_lines_carry_time_level_and_name(state: StateDir) -> None:
    logs.configure_daemon_logging(state, stderr=False)
    logger.info("listening")
    logger.bind(deployment="fx-book/eur-momentum").warning("gateway down")
    lines = state.daemon_log.read_text().splitlines()
    assert lines[0].endswith("Z INFO    daemon listening")
    assert lines[1].endswith("Z WARNING fx-book/eur-momentum gateway down")
    assert lines[0][:4].isdigit() and lines[0][10] == "T"
    assert stat.S_IMODE(state.daemon_log.stat().st_mode) == 0o600


def test_a_deployment_sink_takes_only_its_records(state: StateDir) -> None:
    logs.configure_daemon_logging(state, stderr=False)
    sink = logs.add_deployment_sink(state, "fx-book/eur-momentum")
    logger.bind(deployment="fx-book/eur-momentum").info("order BUY 0.1 EURUSD")
    logger.bind(deployment="momentum").info("someone else")
    logger.info("the daemon")
    logger.remove(sink)
    path = state.logs / "fx-book" / "eur-momentum.log"
    assert [line.split(maxsplit=3)[3] for line in path.read_text().splitlines()] == [
        "order BUY 0.1 EURUSD"
    ]
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(state.daemon_log.read_text().splitlines()) == 3  # the daemon's log has them all


def test_a_traceback_shows_no_variable_values(state: StateDir) -> None:
    logs.configure_daemon_logging(state, stderr=False)
    api_key = "sk-do-not-log-me"
    try:
        raise RuntimeError("refused")
    except RuntimeError:
        logger.exception("start failed")
    assert api_key not in state.daemon_log.read_text()
    assert "RuntimeError: refused" in state.daemon_log.read_text()


def test_tail_reads_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("".join(f"line {i}\n" for i in range(100_000)) + "partial")
    assert logs.tail(path, 3) == ["line 99997", "line 99998", "line 99999"]
    assert logs.tail(path, 0) == []
    assert logs.tail(tmp_path / "missing.log", 5) == []
    short = tmp_path / "short.log"
    short.write_text("a\nb\n")
    assert logs.tail(short, 50) == ["a", "b"]


def test_follow_gives_new_lines_across_a_rotation_and_ends_when_stopping(tmp_path: Path) -> None:
    path = tmp_path / "d.log"
    path.write_text("2025-01-06T09:30:00.000Z INFO    d one\n")
    seen: list[str] = []

    async def scenario() -> None:
        stopping = asyncio.Event()
        lines = logs.follow([path], 5, stopping, poll_s=0.01)
        seen.append(await anext(lines))
        with path.open("a") as handle:
            handle.write("2025-01-06T09:31:00.000Z INFO    d two\n2025-01-06T09:3")
        seen.append(await anext(lines))
        path.rename(tmp_path / "d.2025-01-06.log")  # what a size rotation does
        with path.open("w") as handle:
            handle.write("2025-01-06T09:32:00.000Z INFO    d three\n")
        seen.append(await anext(lines))
        stopping.set()
        assert [line async for line in lines] == []

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [line.split()[-1] for line in seen] == ["one", "two", "three"]


def test_follow_waits_for_a_log_that_does_not_exist_yet(tmp_path: Path) -> None:
    path = tmp_path / "later.log"

    async def scenario() -> str:
        lines = logs.follow([path], 50, asyncio.Event(), poll_s=0.01)
        waiting = asyncio.ensure_future(anext(lines))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        path.write_text("2025-01-06T09:30:00.000Z INFO    later started\n")
        line = await waiting
        await lines.aclose()
        return line

    assert asyncio.run(asyncio.wait_for(scenario(), 10)).endswith("later started")
