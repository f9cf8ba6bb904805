"""``qkt sim bybit`` as a real process: its help, its options, and a started simulator answering
public and signed requests, following a replay file."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, clean_env
from tests.e2e.test_cli_subprocess import qkt_command
from tests.sim.test_bybit_sim import Signed, ok

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_help_explains_the_simulator_and_its_options(tmp_path: Path) -> None:
    result = subprocess.run(
        [*qkt_command(), "sim", "bybit", "--help"],
        cwd=ROOT, env=clean_env(tmp_path), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for option in ("--port", "--host", "--api-key", "--api-secret", "--symbols", "--tick-ms",
                   "--seed", "--prices", "--balance"):  # fmt: skip
        assert option in text
    for fact in ("QKT_SIM_BYBIT_API_KEY", "QKT_SIM_BYBIT_API_SECRET", "qkt-sim-key",
                 "HMAC-SHA256", "/_sim/faults"):  # fmt: skip
        assert fact in text


@pytest.mark.parametrize(
    ("flags", "hint"),
    [(("--symbols", "btc"), "--symbols"), (("--balance", "lots"), "--balance"),
     (("--symbols", ","), "--symbols")],
)  # fmt: skip
def test_bad_options_are_usage_errors(tmp_path: Path, flags: tuple[str, ...], hint: str) -> None:
    result = subprocess.run(
        [*qkt_command(), "sim", "bybit", "--port", str(free_port()), *flags],
        cwd=ROOT, env=clean_env(tmp_path), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and hint in result.stderr, result.stderr


def test_a_started_simulator_answers_and_follows_a_replay_file(tmp_path: Path) -> None:
    prices = tmp_path / "ticks.csv"
    rows = ["time,bid,ask,symbol"]
    rows += [f"2026-03-02T00:00:{i:02d}Z,{3000 + i}.00,{3000 + i}.02,ETHUSDT" for i in range(60)]
    prices.write_text("\n".join(rows) + "\n")
    port = free_port()
    env = clean_env(tmp_path, QKT_SIM_BYBIT_API_KEY="env-key", QKT_SIM_BYBIT_API_SECRET="env-s3")
    proc = subprocess.Popen(
        [*qkt_command(), "sim", "bybit", "--port", str(port), "--symbols", "BTCUSDT,ETHUSDT",
         "--tick-ms", "100", "--seed", "4", "--balance", "2500", "--prices", str(prices)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"{url}/v5/market/time", timeout=0.5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    pytest.fail(f"the simulator did not start: {proc.communicate()[1]}")
                time.sleep(0.1)
        assert abs(int(ok(answer.json())["timeSecond"]) - time.time()) < 5
        client = Signed(url, "env-key", "env-s3")
        wallet = ok(client.get("/v5/account/wallet-balance", "accountType=UNIFIED"))
        assert wallet["list"][0]["totalWalletBalance"] == "2500"
        assert client.get("/v5/user/query-api", key="qkt-sim-key")["retCode"] == 10003
        bids = set()
        for _ in range(40):
            tick = ok(httpx.get(f"{url}/v5/market/tickers?category=spot&symbol=ETHUSDT").json())
            bids.add(tick["list"][0]["bid1Price"])
            if len(bids) >= 3:
                break
            time.sleep(0.1)
        assert len(bids) >= 3 and all(3000 <= float(b) < 3060 for b in bids)
    finally:
        proc.terminate()
        code = proc.wait(timeout=15)
    assert code == 0
    err = proc.communicate()[1]
    assert "bybit simulator on" in err and "stopped" in err
    assert "env-s3" not in err and "env-key" not in err
