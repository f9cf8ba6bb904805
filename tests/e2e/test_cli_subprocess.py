"""``qkt`` as a real process: exit codes, env vars, no tracebacks, cheap imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import ROOT, SEED, Writer, clean_env


def qkt_command() -> list[str]:
    script = Path(sys.executable).parent / "qkt"
    if script.exists():
        return [str(script)]
    found = shutil.which("qkt")
    return [found] if found else [sys.executable, "-m", "cli"]


def run(
    *args: str, cwd: Path, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*qkt_command(), *args],
        cwd=cwd,
        env=clean_env(home, **(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_version(tmp_path: Path, home: Path) -> None:
    result = run("--version", cwd=tmp_path, home=home)
    assert result.returncode == 0
    assert result.stdout.startswith("qkt ")


def test_quick_start_validates_the_examples(home: Path) -> None:
    result = run("validate", "examples/", cwd=ROOT, home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "EURUSDm" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("ok: ")


def test_seed_json_from_a_real_process(write: Writer, home: Path) -> None:
    path = write("momentum.qkt", SEED)
    result = run("validate", path.name, "--format", "json", cwd=path.parent, home=home)
    assert result.returncode == 0
    route = json.loads(result.stdout)["files"][0]["routes"][0]
    assert (route["broker_symbol"], route["magic"], route["target"]) == (
        "EURUSDm",
        10001,
        "http://localhost:5001",
    )


def test_env_override_changes_the_route_and_names_its_source(write: Writer, home: Path) -> None:
    path = write("m.qkt", SEED.replace("EXNESS:", "EXNESS-PERSONAL:"))
    env = {
        "QKT_CONFIG": str(ROOT / "qkt.config.yaml"),
        "QKT_BROKER_EXNESS_PERSONAL_GATEWAY_URL": "http://192.168.1.20:5005",
        "QKT_BROKER_EXNESS_PERSONAL_MAGIC": "20005",
    }
    result = run("validate", str(path), "--format", "json", cwd=path.parent, home=home, env=env)
    assert result.returncode == 0, result.stderr
    route = json.loads(result.stdout)["files"][0]["routes"][0]
    assert (route["target"], route["magic"]) == ("http://192.168.1.20:5005", 20005)
    shown = run("brokers", "show", "exness-personal", "--json", cwd=path.parent, home=home, env=env)
    fields = json.loads(shown.stdout)["profiles"][0]["fields"]
    assert fields["magic"]["source"] == "env:QKT_BROKER_EXNESS_PERSONAL_MAGIC"
    assert fields["gateway_url"]["source"] == "env:QKT_BROKER_EXNESS_PERSONAL_GATEWAY_URL"


def test_env_only_profile_routes_its_label(write: Writer, home: Path) -> None:
    path = write("m.qkt", SEED.replace("EXNESS:", "LAB:"))
    env = {
        "QKT_BROKER_LAB_TYPE": "mt5",
        "QKT_BROKER_LAB_GATEWAY_URL": "http://lab:7000",
        "QKT_BROKER_LAB_MAGIC": "777",
    }
    result = run(
        "validate",
        str(path),
        "--format",
        "json",
        "--strict-brokers",
        cwd=path.parent,
        home=home,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    route = json.loads(result.stdout)["files"][0]["routes"][0]
    assert (route["profile"], route["target"], route["magic"]) == ("lab", "http://lab:7000", 777)


def test_strict_env_fails_an_unknown_label_with_exit_1(write: Writer, home: Path) -> None:
    path = write("m.qkt", SEED.replace("EXNESS:", "OANDA:"))
    relaxed = run("validate", str(path), cwd=path.parent, home=home)
    assert relaxed.returncode == 0
    assert "warning[unknown-label]" in relaxed.stdout
    strict = run("validate", str(path), cwd=path.parent, home=home, env={"QKT_STRICT_BROKERS": "1"})
    assert strict.returncode == 1
    assert f"{path}:3:7: error[unknown-label]" in strict.stdout


def test_user_errors_never_print_a_traceback(write: Writer, home: Path) -> None:
    bad = write("bad.qkt", "STRATEGY x VERSION 1\nSYMBOLS\n e = :: EVERY\nRULES WHEN THEN\n")
    cases = [
        (["validate", str(bad)], 1),
        (["validate", str(bad.parent / "missing.qkt")], 2),
        (["validate", "--no-such-flag", str(bad)], 2),
        (["validate"], 2),
        (["--config", str(bad.parent / "nope.yaml"), "brokers", "list"], 2),
        (["brokers", "show", "nobody"], 1),
    ]
    for args, code in cases:
        result = run(*args, cwd=bad.parent, home=home)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr, args


def test_broken_config_yaml_names_file_and_line(write: Writer, home: Path) -> None:
    cfg = write("qkt.config.yaml", "brokers:\n  exness:\n    gateway_url: [unclosed\n")
    strategy = write("m.qkt", SEED)
    result = run("validate", str(strategy), cwd=cfg.parent, home=home)
    assert result.returncode == 1
    text = result.stdout + result.stderr
    assert "qkt.config.yaml:" in text
    assert "Traceback" not in text


def test_validate_does_not_import_network_or_engine_modules(write: Writer, home: Path) -> None:
    path = write("m.qkt", SEED)
    probe = (
        "import sys, atexit\n"
        "def report():\n"
        "    heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'httpx', 'uvicorn', 'starlette', 'loguru'} or m.startswith('qkt.engine'))\n"
        "    sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
        "atexit.register(report)\n"
        f"sys.argv = ['qkt', 'validate', {str(path)!r}]\n"
        "from cli.main import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=path.parent,
        env=clean_env(home, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr


def test_probe_from_a_real_process(write: Writer, home: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health/ready").respond_with_json({"status": "ready"})
    httpserver.expect_request("/account").respond_with_json({"login": 77, "server": "Demo-1"})
    httpserver.expect_request("/symbol_info/EURUSDm").respond_with_json(
        {"digits": 5, "volume_min": "0.01", "volume_max": "50", "volume_step": "0.01"}
    )
    url = httpserver.url_for("").rstrip("/")
    cfg = write(
        "qkt.config.yaml",
        f"brokers:\n  exness:\n    gateway_url: {url}\n    api_key: ${{GW_KEY}}\n",
    )
    strategy = write("m.qkt", SEED)
    env = {"GW_KEY": "key-3141-secret"}
    args = ("validate", strategy.name, "--probe")
    result = run(*args, "--format", "json", cwd=cfg.parent, home=home, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (probe,) = json.loads(result.stdout)["probes"]
    assert (probe["ready"], probe["account"]["login"], probe["problem"]) == (True, 77, None)
    assert probe["symbols"][0]["max_volume"] == "50"
    assert {r.headers.get("Authorization") for r, _ in httpserver.log} == {"Bearer key-3141-secret"}

    httpserver.clear()
    httpserver.expect_request("/health/ready").respond_with_json({"error": "no"}, status=401)
    refused = run(*args, cwd=cfg.parent, home=home, env=env)
    assert refused.returncode == 1
    assert "error[gateway-auth-refused]" in refused.stdout
    row = next(
        x for x in refused.stdout.splitlines() if x.strip().startswith("exness ") and url in x
    )
    assert "refused the api_key (HTTP 401)" in row
    assert "Traceback" not in refused.stdout + refused.stderr
    assert "key-3141-secret" not in result.stdout + refused.stdout + refused.stderr


def test_help_offers_shell_completion(tmp_path: Path, home: Path) -> None:
    result = run("--help", cwd=tmp_path, home=home)
    assert result.returncode == 0
    assert "--install-completion" in result.stdout
    for command in ("validate", "brokers", "config"):
        assert command in result.stdout
