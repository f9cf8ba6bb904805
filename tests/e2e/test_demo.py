"""``qkt demo`` as a real process (SPEC §5.7): the routing preview, the orders that reach the
simulator, the fills, every child's positions and PnL; and on every way out — the end,
``--keep``, Ctrl-C, SIGTERM, a closed output, the demo killed — no process of its own left
behind and its temporary folder gone (unless kept)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO

import pytest

from qkt.demo import DemoError, find_examples
from qkt.demo.workdir import Workdir, write_sim_prices
from qkt.feeds.replay import ReplaySource
from tests.conftest import ROOT, clean_env
from tests.e2e.test_cli_subprocess import qkt_command

FOLDER = re.compile(r"^demo +temporary folder (\S+)$", re.M)
PIDS = re.compile(r"^demo +(?:daemon|mt5-gateway simulator): PID (\d+)", re.M)
DONE = re.compile(r"^demo +done in ([\d.]+) s: (\d+) orders reached the simulator", re.M)
CHILDREN = ("demo-book/eur-momentum", "demo-book/btc-trend", "demo-book/gold_breakout")


class Demo:
    """``qkt demo`` in a clean home, its output read as it comes."""

    def __init__(self, home: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*qkt_command(), "demo", *args],
            cwd=home,
            env=clean_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=_read, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors))
        ]
        for reader in self._readers:
            reader.start()

    @property
    def err(self) -> str:
        return "".join(self.errors)

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.out, re.M):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} in the demo's output:\n{self.out[-3000:]}")
            time.sleep(0.05)

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the demo did not end within {timeout:g} s:\n{self.out[-3000:]}")
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def folder(self) -> Path:
        found = FOLDER.search(self.out)
        assert found, self.out[-3000:]
        return Path(found.group(1))

    def pids(self) -> list[int]:
        return [int(p) for p in PIDS.findall(self.out)]


def _read(stream: IO[str], into: list[str]) -> None:
    with contextlib.suppress(ValueError, OSError):  # a stream the test closed
        for line in stream:
            into.append(line)


def leftovers(folder: Path, pids: list[int]) -> list[str]:
    """Live processes started for the demo: the PIDs it reported, and any whose command line
    names its folder (the daemon's state dir, the simulator's prices)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if int(entry.name) in pids or str(folder) in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def gone(folder: Path, pids: list[int], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := leftovers(folder, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "home"
    path.mkdir()
    yield path


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


# ---------------------------------------------------------------- the whole run
@pytest.mark.slow
@pytest.mark.timeout(180)
@linux_only
def test_the_demo_previews_deploys_trades_and_leaves_nothing_behind(home: Path) -> None:
    demo = Demo(home)
    assert demo.finish(120) == 0, demo.err
    out, folder, pids = demo.out, demo.folder(), demo.pids()
    assert "Traceback" not in out + demo.err
    assert len(pids) == 2

    url = re.search(r"mt5-gateway simulator: PID \d+, (http://127\.0\.0\.1:\d+) ", out)
    assert url, out
    # the routing preview: validate's report of the portfolio, EXNESS routed to the simulator
    assert re.search(r"portfolio\.yaml: portfolio demo-book \[ok\]$", out, re.M)
    assert re.search(rf"eur +EXNESS:EURUSD +1m +exness +mt5 +{url.group(1)} +EURUSDm", out)
    assert re.search(r"btc +BACKTEST:BTCUSDT +1h +backtest +paper +paper", out)
    assert "ok: 1 file, 0 errors" in out
    # the deploy, then orders at the simulator and fills of every child
    for name in CHILDREN:
        assert f"{name}: running, strategy " in out
        assert re.search(rf"^fill +{name} +#\d+ +(BUY|SELL) ", out, re.M), name
        assert re.search(rf"^state +{name} +finished: replay ended", out, re.M), name
    assert re.search(r"^gateway +demo-book/eur-momentum +#1 +BUY +0\.1 EURUSDm +sl ", out, re.M)
    assert re.search(r"^gateway +demo-book/gold_breakout +#1 +(BUY|SELL) +0\.1 XAUUSDm", out, re.M)
    assert not re.search(r"^gateway +demo-book/btc-trend", out, re.M)  # paper: not at the venue
    # the final table: a row per position of every child, with its PnL
    table = out.split("positions and PnL:\n", 1)[1]
    for name in CHILDREN:
        assert re.search(rf"^  {name} +finished +\d+ +\d+ ", table, re.M), name
    assert re.search(r"EXNESS:EURUSD +\d", table) and "BACKTEST:ETHUSDT" in table
    done = DONE.search(out)
    assert done and float(done.group(1)) < 60 and int(done.group(2)) > 0
    gateway_lines = len(re.findall(r"^gateway ", out, re.M))
    assert int(done.group(2)) == gateway_lines
    # everything stopped, the folder removed
    assert f"removed {folder}" in out
    assert not folder.exists()
    assert not gone(folder, pids, 5)


@pytest.mark.slow
@pytest.mark.timeout(180)
@linux_only
def test_keep_leaves_the_folder_with_its_state_and_logs(home: Path) -> None:
    demo = Demo(home, "--keep")
    try:
        assert demo.finish(120) == 0, demo.err
        folder, pids = demo.folder(), demo.pids()
        assert re.search(rf"^demo +kept {re.escape(str(folder))} \(--keep\)", demo.out, re.M)
        assert folder.is_dir()
        assert (folder / "qkt.config.yaml").is_file()
        assert (folder / "state" / "qkt.db").is_file()
        log = (folder / "state" / "logs" / "demo-book" / "gold_breakout.log").read_text()
        assert " order " in log and " fill " in log
        assert not (folder / "state" / "qkt.sock").exists()  # the daemon stopped cleanly
        assert not gone(folder, pids, 5)
    finally:
        found = FOLDER.search(demo.out)
        if found:
            shutil.rmtree(found.group(1), ignore_errors=True)


# ---------------------------------------------------------------- the ways out
@pytest.mark.slow
@pytest.mark.timeout(120)
@linux_only
@pytest.mark.parametrize(
    ("signum", "moment", "code"),
    [
        (signal.SIGINT, r"^demo +temporary folder ", 130),  # while the daemon starts
        (signal.SIGINT, r"^gateway ", 130),  # while it trades
        (signal.SIGTERM, r"^gateway ", 143),
    ],
    ids=["sigint-starting", "sigint-trading", "sigterm-trading"],
)
def test_a_signal_at_any_moment_stops_everything_and_removes_the_folder(
    home: Path, signum: int, moment: str, code: int
) -> None:
    demo = Demo(home)
    demo.wait_for(moment)
    demo.proc.send_signal(signum)
    started = time.monotonic()
    assert demo.finish(30) == code, demo.err
    assert time.monotonic() - started < 15
    folder, pids = demo.folder(), demo.pids()
    assert f"interrupted ({signal.Signals(signum).name}): everything is stopped" in demo.err
    assert "Traceback" not in demo.out + demo.err
    assert not folder.exists()
    assert not gone(folder, pids, 5)
    if moment.endswith("gateway "):
        assert re.search(r"^demo +stopping the deployments of demo-book$", demo.out, re.M)
        assert "positions and PnL:" in demo.out


@pytest.mark.slow
@pytest.mark.timeout(120)
@linux_only
def test_a_closed_output_stops_everything_quietly(home: Path) -> None:
    demo = Demo(home)
    demo.wait_for(r"^gateway ")
    folder, pids = demo.folder(), demo.pids()
    assert demo.proc.stdout is not None
    demo.proc.stdout.close()  # the reader goes; the demo's next line has nowhere to go
    assert demo.finish(30) == 1
    assert "Traceback" not in demo.err
    assert not folder.exists()
    assert not gone(folder, pids, 5)


@pytest.mark.slow
@pytest.mark.timeout(120)
@linux_only
def test_children_end_with_the_demo_when_it_is_killed(home: Path) -> None:
    demo = Demo(home)
    try:
        demo.wait_for(r"^gateway ")
        folder, pids = demo.folder(), demo.pids()
        demo.proc.kill()
        demo.finish(10)
        assert not gone(folder, pids, 30)
    finally:
        found = FOLDER.search(demo.out)
        if found:
            shutil.rmtree(found.group(1), ignore_errors=True)


# ---------------------------------------------------------------- its inputs
def test_the_examples_are_found_in_the_checkout_and_missing_ones_are_one_line(
    tmp_path: Path,
) -> None:
    found = find_examples()
    assert found.root == ROOT
    assert found.portfolio.name == "portfolio.yaml" and found.replay.name == "markets-1m.csv"
    with pytest.raises(DemoError) as refused:
        find_examples(tmp_path)
    message = refused.value.diagnostics[0].format()
    assert message.startswith("error[demo]: finding the examples: ")
    assert str(tmp_path / "examples" / "portfolio.yaml") in message
    assert "pip install -e ." in message and "\n" not in message


def test_the_simulators_quotes_are_the_routed_symbols_after_a_flat_lead_in(
    tmp_path: Path,
) -> None:
    work = Workdir(tmp_path)
    replay = ROOT / "examples" / "data" / "markets-1m.csv"
    pace = write_sim_prices(replay, {"EURUSD", "XAUUSD"}, work)
    assert pace.prices == work.sim_prices
    check = ReplaySource(work.sim_prices).check(["EURUSD", "XAUUSD"])
    assert not [d for d in check.diagnostics if d.is_error]
    rows = work.sim_prices.read_text().splitlines()[1:]
    assert {r.rsplit(",", 1)[1] for r in rows} == {"EURUSD", "XAUUSD"}
    lead = [r for r in rows if r.startswith("2026-03-01")]
    assert lead and all(r.split(",")[1] == r.split(",")[4] for r in lead)  # flat bars
    assert rows[len(lead)].startswith("2026-03-02T00:00:00Z")
    assert 10 < pace.seconds < 30
    span = Decimal(3 * 24 * 3600 - 60)
    assert abs(Decimal(str(pace.speed)) * Decimal(str(pace.seconds)) - span) < 1


def test_the_demo_is_a_command_with_help() -> None:
    result = subprocess.run(
        [*qkt_command(), "demo", "--help"],
        env=clean_env(Path(os.environ.get("HOME", "/tmp"))),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "--keep" in result.stdout and "Ctrl-C" in result.stdout
