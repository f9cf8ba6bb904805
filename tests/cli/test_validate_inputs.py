"""``qkt validate`` cannot pass by accident, and reads no input without bounds.

Unreadable, empty, special and oversized inputs are errors naming the file; a config file given as
a PATH is validated as a configuration; terminal output keeps codes and whole words.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qkt.textfile import MAX_FILE_BYTES
from tests.cli.conftest import Runner
from tests.conftest import ROOT, SEED, Writer, clean_env


def chmod_denies_reads(directory: Path) -> bool:
    """False as root (or with CAP_DAC_OVERRIDE), where chmod 000 does not stop a read."""
    probe = directory / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        probe.read_text()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o600)
        probe.unlink()
    return False


PORTFOLIO = "name: book\nstrategies:\n  - file: momentum.qkt\n"


def codes(result: object) -> list[tuple[str, str | None]]:
    data = result.json()  # type: ignore[attr-defined]
    found = [(d["code"], d["path"]) for d in data["diagnostics"]]
    for f in data["files"]:
        found += [(d["code"], d["path"]) for d in f["diagnostics"]]
    return found


# ------------------------------------------------------------ nothing to check, unreadable paths
def test_an_empty_directory_is_an_error(qkt: Runner, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = qkt("validate", "empty")
    assert result.code == 1, result.out
    assert "empty: error[nothing-to-check]" in result.out
    assert result.out.strip().splitlines()[-1].startswith("failed: 0 files, 1 error")


def test_a_directory_with_only_other_files_is_an_error(qkt: Runner, write: Writer) -> None:
    write("docs/README.md", "# notes\n")
    write("docs/notes.yaml", "just: data\n")
    result = qkt("validate", "docs", "--format", "json")
    assert result.code == 1
    assert result.json()["ok"] is False
    assert codes(result) == [("nothing-to-check", "docs")]


def test_a_typo_in_a_path_is_an_error_naming_it(qkt: Runner, write: Writer) -> None:
    write("momentum.qkt", SEED)
    result = qkt("validate", "momentum.qkt", "momentun.qkt")
    assert result.code == 2  # the command line is wrong (SPEC §5)
    assert "momentun.qkt" in result.err and "does not exist" in result.err
    assert "Traceback" not in result.out + result.err


def test_library_callers_get_a_missing_path_as_a_diagnostic(tmp_path: Path) -> None:
    from qkt.validation import collect_files

    files, diags = collect_files([tmp_path / "nope.qkt", tmp_path / ("n" * 300 + ".qkt")])
    assert files == []
    assert [(d.code, d.message) for d in diags] == [
        ("path-not-found", "no such file or directory"),
        ("file-unreadable", "cannot read: the file name is too long"),
    ]


def test_a_dangling_symlink_under_a_directory_is_an_error(qkt: Runner, write: Writer) -> None:
    write("book/momentum.qkt", SEED)
    (write("book/a.qkt", SEED).parent / "gone.qkt").symlink_to("nowhere.qkt")
    Path(write("book/x", "").parent / "old.yaml").symlink_to("missing.yaml")
    result = qkt("validate", "book", "--format", "json")
    assert result.code == 1, result.out
    found = codes(result)
    assert ("file-unreadable", "book/gone.qkt") in found
    assert ("file-unreadable", "book/old.yaml") in found


def test_a_directory_that_cannot_be_listed_is_an_error(
    qkt: Runner, write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("book/momentum.qkt", SEED)
    write("book/locked/b.qkt", SEED)
    real = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = qkt("validate", "book")
    assert result.code == 1, result.out
    assert "book/locked: error[file-unreadable]: cannot read: Permission denied" in result.out


def test_unreadable_files_and_directories_are_errors(
    qkt: Runner, write: Writer, tmp_path: Path
) -> None:
    if not chmod_denies_reads(tmp_path):
        pytest.skip("chmod 000 does not deny this user (root); the symlink variants cover it")
    write("book/momentum.qkt", SEED)
    secret = write("book/secret.qkt", SEED)
    hidden = write("book/hidden/c.qkt", SEED).parent
    private = write("book/private.yaml", PORTFOLIO)
    for path in (secret, hidden, private):
        path.chmod(0)
    try:
        result = qkt("validate", "book", "--format", "json")
    finally:
        for path in (secret, hidden, private):
            path.chmod(0o700)
    assert result.code == 1
    found = codes(result)
    for name in ("book/secret.qkt", "book/hidden", "book/private.yaml"):
        assert ("file-unreadable", name) in found


# ------------------------------------------------------------ special and oversized files
@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", ["pipe.qkt", "pipe.yaml", "qkt.config.yaml"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(
    qkt: Runner, tmp_path: Path, name: str
) -> None:
    os.mkfifo(tmp_path / name)
    result = qkt("validate", name)
    assert result.code == 1
    assert f"{name}: error[not-a-file]: cannot read: it is a FIFO (named pipe)" in result.out


@pytest.mark.timeout(20)
def test_a_fifo_inside_a_directory_is_refused(qkt: Runner, write: Writer) -> None:
    write("book/momentum.qkt", SEED)
    os.mkfifo(write("book/x", "").parent / "pipe.yaml")
    os.mkfifo(write("book/x", "").parent / "pipe.qkt")
    found = codes(qkt("validate", "book", "--format", "json"))
    assert ("not-a-file", "book/pipe.qkt") in found
    assert ("not-a-file", "book/pipe.yaml") in found


@pytest.mark.timeout(20)
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused_before_reading(qkt: Runner, device: str) -> None:
    result = qkt("validate", device)
    assert result.code == 1
    assert f"{device}: error[not-a-file]: cannot read: it is a device" in result.out


@pytest.mark.timeout(20)
def test_a_device_as_a_portfolio_strategy_is_refused(qkt: Runner, write: Writer) -> None:
    write("book.yaml", "name: book\nstrategies:\n  - file: /dev/zero\n")
    result = qkt("validate", "book.yaml")
    assert result.code == 1
    assert "book.yaml:3:5: error[strategy-unreadable]" in result.out
    assert "it is a device" in result.out


@pytest.mark.parametrize("name", ["big.qkt", "big.yaml", "qkt.config.yaml"])
def test_a_file_over_one_mebibyte_is_refused(qkt: Runner, write: Writer, name: str) -> None:
    padding = "# " + "x" * 98 + "\n"
    body = {"big.qkt": SEED, "big.yaml": PORTFOLIO, "qkt.config.yaml": "paper: {}\n"}[name]
    write("momentum.qkt", SEED)
    write(name, body + padding * (MAX_FILE_BYTES // len(padding) + 1))
    result = qkt("validate", name)
    assert result.code == 1
    assert f"{name}: error[file-too-large]" in result.out
    assert "at most 1,048,576 bytes (1 MiB)" in result.out


def test_a_strategy_just_under_the_limit_is_read(qkt: Runner, write: Writer) -> None:
    padding = "-- " + "x" * 97 + "\n"
    write("big.qkt", SEED + padding * ((MAX_FILE_BYTES - len(SEED)) // len(padding)))
    assert qkt("validate", "big.qkt").code == 0


def test_an_over_long_file_name_is_one_clean_error(qkt: Runner, write: Writer) -> None:
    long = "s" * 300 + ".qkt"
    write("book.yaml", f"name: book\nstrategies:\n  - file: {long}\n")
    portfolio = qkt("validate", "book.yaml")
    assert portfolio.code == 1
    assert "book.yaml:3:5: error[strategy-unreadable]" in portfolio.out
    assert "the file name is too long" in portfolio.out
    direct = qkt("validate", long)
    assert direct.code == 2  # as any PATH that does not exist
    assert "does not exist" in direct.err
    assert "Traceback" not in portfolio.out + portfolio.err + direct.out + direct.err


@pytest.mark.parametrize("name", ["bad.qkt", "bad.yaml", "qkt.config.yaml"])
def test_a_file_that_is_not_utf8_is_positioned_at_the_bad_byte(
    qkt: Runner, tmp_path: Path, name: str
) -> None:
    (tmp_path / name).write_bytes(b"# fine\n# fine too\nname: caf\xe9\n")
    result = qkt("validate", name, "--format", "json")
    assert result.code == 1
    (diag,) = [d for f in result.json()["files"] for d in f["diagnostics"]]
    assert (diag["path"], diag["line"], diag["column"]) == (name, 3, 10)
    assert "not UTF-8" in diag["message"]


# ------------------------------------------------------------ a config file as a PATH
BAD_CONFIG = (
    "brokers:\n  lab:\n    type: mt5\n    gateway_url: http://localhost:5009\n    magic: x\n"
)


def test_a_config_path_is_validated_as_a_configuration(qkt: Runner, write: Writer) -> None:
    write("other/qkt.config.yaml", BAD_CONFIG)
    result = qkt("validate", "other/qkt.config.yaml", "--format", "json")
    assert result.code == 1
    (report,) = result.json()["files"]
    assert (report["path"], report["kind"], report["ok"]) == (
        "other/qkt.config.yaml",
        "config",
        False,
    )
    assert [(d["code"], d["line"]) for d in report["diagnostics"]] == [("bad-value", 5)]
    assert "children" not in report


def test_a_good_config_path_is_ok_and_its_warnings_shown(qkt: Runner, write: Writer) -> None:
    write("other/qkt.config.yaml", "brokers:\n  bybit:\n    type: bybit\n    api_key: ${NOPE}\n")
    result = qkt("validate", "other/qkt.config.yaml")
    assert result.code == 0, result.out
    assert "other/qkt.config.yaml: config [ok]" in result.out
    assert "other/qkt.config.yaml:4:5: warning[unset-variable]" in result.out
    strict = qkt("validate", "other/qkt.config.yaml", "--strict-brokers")
    assert strict.code == 1


def test_the_active_config_as_a_path_is_reported_once(qkt: Runner, write: Writer) -> None:
    cfg = write("qkt.config.yaml", BAD_CONFIG)
    result = qkt("validate", "qkt.config.yaml", "--format", "json", cwd=cfg.parent)
    assert result.code == 1
    data = result.json()
    assert [f["kind"] for f in data["files"]] == ["config"]
    assert [d["code"] for d in data["files"][0]["diagnostics"]] == ["bad-value"]
    assert data["diagnostics"] == []
    assert data["summary"]["errors"] == 1


def test_a_directory_scan_validates_the_config_in_it(qkt: Runner, write: Writer) -> None:
    write("repo/momentum.qkt", SEED)
    write("repo/qkt.config.yaml", "paper:\n  starting_balance: -5\n")
    result = qkt("validate", "repo", "--format", "json")
    assert result.code == 1
    kinds = sorted((Path(f["path"]).name, f["kind"]) for f in result.json()["files"])
    assert kinds == [("momentum.qkt", "strategy"), ("qkt.config.yaml", "config")]


# ------------------------------------------------------------ terminal output
@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output as on a 60-column colour terminal."""
    monkeypatch.setattr("cli.output.use_rich", lambda stream=None: True)


def test_a_narrow_terminal_keeps_codes_and_whole_words(
    qkt: Runner, write: Writer, terminal: None
) -> None:
    write("odd.qkt", SEED.replace("ema(eur, 21)", "ema(eru, 21)").replace("EXNESS", "OANDA"))
    result = qkt("validate", "odd.qkt", env={"COLUMNS": "60", "NO_COLOR": ""})
    assert result.code == 1
    assert "error[unknown-name]" in result.out
    assert "warning[unknown-label]" in result.out or "warning[fallback" in result.out
    words = result.out.split()
    for cell in ("OANDA:EURUSD", "fallback", "paper", "EURUSD"):
        assert cell in words, result.out


def test_a_narrow_terminal_keeps_the_route_table_whole(
    qkt: Runner, write: Writer, terminal: None
) -> None:
    write("momentum.qkt", SEED)
    result = qkt("validate", "momentum.qkt", env={"COLUMNS": "60", "NO_COLOR": ""})
    assert result.code == 0
    words = result.out.split()
    for cell in ("EXNESS:EURUSD", "http://localhost:5001", "EURUSDm", "10001", "BROKER"):
        assert cell in words, result.out


# ------------------------------------------------------------ as a real process
def test_an_empty_directory_fails_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "cli", "validate", "empty"],
        cwd=tmp_path,
        env={**clean_env(tmp_path / "home"), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "empty: error[nothing-to-check]" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_directory_scan_stays_inside_its_path(qkt: Runner, write: Writer) -> None:
    write("outside/other.qkt", SEED.replace("momentum", "other"))
    book = write("repo/book/momentum.qkt", SEED).parent
    (book / "up").symlink_to("../..")  # a loop back above the PATH
    result = qkt("validate", "repo", "--format", "json")
    assert result.code == 0, result.out
    assert [f["path"] for f in result.json()["files"]] == ["repo/book/momentum.qkt"]
