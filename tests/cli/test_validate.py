"""``qkt validate`` in-process: routes, formats, strict mode, exit codes."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Runner
from tests.conftest import SEED, Writer

MULTI = """STRATEGY two_accounts VERSION 1
SYMBOLS
personal = EXNESS-PERSONAL:EURUSD EVERY 1m
corporate = EXNESS-CORPORATE:EURUSD EVERY 1m
RULES
WHEN ema(personal, 9) crosses ABOVE ema(personal, 21) THEN BUY personal SIZING 0.1
WHEN ema(corporate, 9) crosses BELOW ema(corporate, 21) THEN SELL corporate SIZING 0.2
"""

UNKNOWN_LABEL = """STRATEGY odd VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
x = OANDA:EURUSD EVERY 5m
RULES
WHEN ema(eur, 9) crosses ABOVE ema(x, 21) THEN BUY eur SIZING 0.1
"""


def test_seed_routes_exactly_as_the_spec_example_with_builtins_only(
    qkt: Runner, write: Writer
) -> None:
    path = write("momentum.qkt", SEED)
    result = qkt("validate", str(path), "--format", "json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["schema"] == "qkt.validate/1"
    assert data["ok"] is True
    assert data["strict"] is False
    assert data["config"] is None
    assert data["summary"] == {"files": 1, "errors": 0, "warnings": 0}
    (report,) = data["files"]
    assert report["kind"] == "strategy"
    assert report["name"] == "momentum"
    assert report["routes"] == [
        {
            "alias": "eur",
            "label": "EXNESS",
            "symbol": "EURUSD",
            "timeframe": "1m",
            "profile": "exness",
            "type": "mt5",
            "target": "http://localhost:5001",
            "broker_symbol": "EURUSDm",
            "magic": 10001,
            "fallback": False,
            "status": "ok",
        }
    ]


def test_two_accounts_of_one_venue_reach_their_own_gateways(
    qkt: Runner, write: Writer, root: Path
) -> None:
    path = write("two.qkt", MULTI)
    result = qkt("validate", str(path), "--format", "json", cwd=root)
    assert result.code == 0, result.out + result.err
    data = result.json()
    assert data["config"] == "qkt.config.yaml"
    routes = {r["alias"]: r for r in data["files"][0]["routes"]}
    assert routes["personal"]["profile"] == "exness-personal"
    assert routes["personal"]["target"] == "http://localhost:5005"
    assert routes["personal"]["magic"] == 10005
    assert routes["corporate"]["target"] == "http://localhost:5006"
    assert routes["corporate"]["magic"] == 10006
    assert {r["broker_symbol"] for r in routes.values()} == {"EURUSDm"}


def test_text_output_shows_the_route_table_and_summary(qkt: Runner, write: Writer) -> None:
    path = write("momentum.qkt", SEED)
    result = qkt("validate", str(path))
    assert result.code == 0
    line = next(x for x in result.out.splitlines() if x.strip().startswith("eur "))
    for cell in (
        "EXNESS:EURUSD",
        "1m",
        "exness",
        "mt5",
        "http://localhost:5001",
        "EURUSDm",
        "10001",
    ):
        assert cell in line
    assert result.out.strip().splitlines()[-1].startswith("ok: 1 file, 0 errors, 0 warnings")


def test_unknown_label_falls_back_to_paper_with_a_warning(qkt: Runner, write: Writer) -> None:
    path = write("odd.qkt", UNKNOWN_LABEL)
    result = qkt("validate", str(path), "--format", "json")
    assert result.code == 0
    report = result.json()["files"][0]
    x = next(r for r in report["routes"] if r["alias"] == "x")
    assert (x["profile"], x["type"], x["target"], x["fallback"], x["status"]) == (
        "paper",
        "paper",
        "paper",
        True,
        "fallback",
    )
    (diag,) = report["diagnostics"]
    assert (diag["severity"], diag["code"], diag["line"], diag["column"]) == (
        "warning",
        "unknown-label",
        4,
        5,
    )


def test_strict_flag_refuses_an_unknown_label(qkt: Runner, write: Writer) -> None:
    path = write("odd.qkt", UNKNOWN_LABEL)
    result = qkt("validate", str(path), "--strict-brokers")
    assert result.code == 1
    assert f"{path}:4:5: error[unknown-label]" in result.out
    assert "strict brokers: on (--strict-brokers)" in result.out


def test_strict_from_env_and_config_and_the_no_flag_wins(qkt: Runner, write: Writer) -> None:
    path = write("odd.qkt", UNKNOWN_LABEL)
    assert qkt("validate", str(path), env={"QKT_STRICT_BROKERS": "1"}).code == 1
    cfg = write("qkt.config.yaml", "strict_brokers: true\n")
    assert qkt("validate", str(path), cwd=cfg.parent).code == 1
    relaxed = qkt("validate", str(path), "--no-strict-brokers", cwd=cfg.parent)
    assert relaxed.code == 0
    assert "warning[unknown-label]" in relaxed.out


def test_github_format_annotates_each_diagnostic(qkt: Runner, write: Writer) -> None:
    path = write("odd.qkt", UNKNOWN_LABEL)
    result = qkt("validate", str(path), "--format", "github", "--strict-brokers")
    assert result.code == 1
    assert f"::error file={path},line=4,col=5,title=unknown-label::" in result.out


def test_bad_strategy_reports_position_and_exit_1_without_traceback(
    qkt: Runner, write: Writer
) -> None:
    path = write("bad.qkt", SEED.replace("ema(eur, 21)", "emma(eur, 21)"))
    result = qkt("validate", str(path))
    assert result.code == 1
    assert f"{path}:5:" in result.out
    assert "error[unknown-indicator]" in result.out
    assert "did you mean `ema`?" in result.out
    assert "Traceback" not in result.out + result.err


def test_directory_finds_strategies_and_portfolios(qkt: Runner, write: Writer) -> None:
    write("book/a.qkt", SEED)
    write("book/sub/b.qkt", SEED.replace("momentum", "other"))
    write("book/notes.yaml", "just: data\n")
    write(
        "book/portfolio.yaml",
        "name: book\nstrategies:\n  - file: a.qkt\n    as: first\n",
    )
    result = qkt("validate", str(write("book/a.qkt", SEED).parent), "--format", "json")
    assert result.code == 0, result.out
    kinds = sorted((Path(f["path"]).name, f["kind"]) for f in result.json()["files"])
    assert kinds == [("a.qkt", "strategy"), ("b.qkt", "strategy"), ("portfolio.yaml", "portfolio")]


def test_config_error_is_reported_with_its_line(qkt: Runner, write: Writer) -> None:
    strategy = write("momentum.qkt", SEED)
    cfg = write("qkt.config.yaml", "brokers:\n  exness:\n    magic: nope\n")
    result = qkt("validate", str(strategy), cwd=cfg.parent)
    assert result.code == 1
    assert "qkt.config.yaml:3:" in result.out + result.err
    assert "Traceback" not in result.out + result.err


LONG_NAME = "trend_" + "x" * 144  # 150 characters


def test_a_long_strategy_name_is_a_note_not_a_problem(qkt: Runner, write: Writer) -> None:
    assert len(LONG_NAME) == 150
    path = write("long.qkt", SEED.replace("momentum", LONG_NAME))
    for strict in ("--no-strict-brokers", "--strict-brokers"):
        result = qkt("validate", str(path), strict, "--format", "json")
        assert result.code == 0, result.out
        data = result.json()
        assert data["summary"] == {"files": 1, "errors": 0, "warnings": 0}
        (diag,) = data["files"][0]["diagnostics"]
        assert (diag["severity"], diag["code"], diag["path"], diag["line"]) == (
            "info",
            "name-shortened",
            str(path),
            1,
        )
        assert "150 characters" in diag["message"]
        assert "shortened, unique client id" in diag["message"]
    text = qkt("validate", str(path))
    assert f"{path}:1:1: info[name-shortened]: strategy name `trend_" in text.out
    short = write("short.qkt", SEED.replace("momentum", "x" * 100))
    assert qkt("validate", str(short), "--format", "json").json()["files"][0]["diagnostics"] == []


def test_a_long_deployment_name_is_noted_where_the_portfolio_gives_it(
    qkt: Runner, write: Writer
) -> None:
    write("seed.qkt", SEED)
    write("long.qkt", SEED.replace("momentum", LONG_NAME))
    portfolio = write(
        "book.yaml",
        "name: book\nallow_shared_symbols: true\nstrategies:\n"
        f"  - file: seed.qkt\n    as: {'d' * 130}\n"
        "  - file: long.qkt\n    as: short\n",
    )
    result = qkt("validate", str(portfolio), "--format", "json")
    assert result.code == 0, result.out
    first, second = result.json()["files"][0]["children"]
    (diag,) = first["diagnostics"]
    assert (diag["code"], diag["path"], diag["line"]) == ("name-shortened", str(portfolio), 4)
    assert "deployment name `ddd" in diag["message"]
    assert second["diagnostics"] == []  # deployed as `short`: its long strategy name is not used


def test_an_order_above_the_gateway_limit_warns_and_fails_when_strict(
    qkt: Runner, write: Writer
) -> None:
    path = write("big.qkt", SEED.replace("SIZING 0.1", "SIZING 150"))
    result = qkt("validate", str(path), "--format", "json")
    assert result.code == 0
    (diag,) = result.json()["files"][0]["diagnostics"]
    assert (diag["severity"], diag["code"], diag["line"]) == (
        "warning",
        "volume-above-gateway-max",
        6,
    )
    assert (
        SEED.replace("SIZING 0.1", "SIZING 150")
        .splitlines()[5][diag["column"] - 1 :]
        .startswith("150 ")
    )
    strict = qkt("validate", str(path), "--strict-brokers")
    assert strict.code == 1
    assert "error[volume-above-gateway-max]" in strict.out
    cfg = write(
        "qkt.config.yaml",
        "brokers:\n  exness:\n    instrument_overrides:\n      EURUSD: {max_volume: 200}\n",
    )
    allowed = qkt("validate", str(path), "--strict-brokers", "--format", "json", cwd=cfg.parent)
    assert allowed.code == 0, allowed.out
    assert allowed.json()["files"][0]["diagnostics"] == []
