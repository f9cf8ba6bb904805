"""Every failure to read or write, and every bad value on the command line, is one line with the
right exit code: 2 for the command line, 1 for the input or the machine (SPEC §5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Result, Runner
from tests.conftest import ROOT, Writer

MOMENTUM = str(ROOT / "examples" / "momentum.qkt")
LONG = "c" * 5000 + ".yaml"


def one_line(result: Result) -> str:
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_config_schema_to_a_full_disk(qkt: Runner) -> None:
    result = qkt("config", "schema", "-o", "/dev/full")
    assert result.code == 1
    assert one_line(result) == (
        "error[write-failed]: cannot write /dev/full: No space left on device"
    )


def test_config_schema_into_a_directory(qkt: Runner, tmp_path: Path) -> None:
    result = qkt("config", "schema", "-o", str(tmp_path))
    assert result.code == 2
    line = one_line(result)
    assert f"'--output': {tmp_path} is a directory" in line


def test_config_schema_into_a_missing_directory(qkt: Runner, tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "schema.json"
    result = qkt("config", "schema", "-o", str(target))
    assert result.code == 2
    assert f"'--output': the directory {target.parent} does not exist" in one_line(result)
    assert not target.parent.exists()


def test_config_schema_with_a_name_too_long(qkt: Runner, tmp_path: Path) -> None:
    result = qkt("config", "schema", "-o", str(tmp_path / LONG))
    assert result.code == 2
    assert "'--output':" in one_line(result)
    assert "too long" in result.err


def test_config_schema_still_writes_its_file(qkt: Runner, tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    result = qkt("config", "schema", "-o", str(target))
    assert result.code == 0, result.err
    assert json.loads(target.read_text(encoding="utf-8"))["title"]
    assert result.err == f"wrote {target}\n"


@pytest.mark.parametrize("port", ["65536", "70000", "-1"])
def test_sim_port_out_of_range(qkt: Runner, port: str) -> None:
    result = qkt("sim", "gateway", "--port", port)
    assert result.code == 2
    assert f"'--port': {port} is not in the range 1<=x<=65535" in one_line(result)


def test_sim_host_that_cannot_be_an_address(qkt: Runner) -> None:
    result = qkt("sim", "gateway", "--host", "h" * 300, "--port", "5998")
    assert result.code == 2
    assert "'--host'" in one_line(result) or "'--port'" in one_line(result)


def test_a_config_path_too_long(qkt: Runner) -> None:
    result = qkt("--config", LONG, "brokers", "list")
    assert result.code == 2
    line = one_line(result)
    assert "'--config'" in line and "file name too long" in line
    assert len(line) < 300  # the path is shortened, not printed 5000 characters wide


def test_a_qkt_config_path_too_long(qkt: Runner) -> None:
    result = qkt("brokers", "list", env={"QKT_CONFIG": LONG})
    assert result.code == 1
    line = one_line(result)
    assert line.startswith("error[config-not-found]: config file ")
    assert "file name too long ($QKT_CONFIG)" in line and len(line) < 300


def test_a_config_that_is_a_directory(qkt: Runner, tmp_path: Path) -> None:
    result = qkt("--config", str(tmp_path), "brokers", "list")
    assert result.code == 2
    assert "'--config'" in one_line(result) and "is a directory" in result.err
    via_env = qkt("brokers", "list", env={"QKT_CONFIG": str(tmp_path)})
    assert via_env.code == 1
    assert "is not a file ($QKT_CONFIG)" in one_line(via_env)


def test_a_strategy_path_too_long(qkt: Runner) -> None:
    result = qkt("run", "s" * 5000 + ".qkt", "--paper")
    assert result.code == 2
    assert "does not exist" in one_line(result)


def test_a_usage_error_is_one_line_naming_the_help(qkt: Runner, write: Writer) -> None:
    result = qkt("run", MOMENTUM, "--no-such-flag")
    assert result.code == 2
    assert one_line(result) == ("error[usage]: No such option: --no-such-flag (see: qkt run -h)")


def test_help_without_arguments_is_still_help(qkt: Runner) -> None:
    result = qkt()
    assert result.code == 2
    assert "Usage: qkt" in result.out + result.err and "validate" in result.out + result.err
