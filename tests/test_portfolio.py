"""Portfolio files (SPEC §6.2): loading, PARAM binding and validation with YAML lines."""

from __future__ import annotations

from pathlib import Path

from qkt.config import load_config
from qkt.portfolio import load_portfolio
from qkt.validation import Validator, looks_like_portfolio
from tests.conftest import SEED, Writer

PARAMS = """STRATEGY cross VERSION 1
SYMBOLS
eur = EXNESS:EURUSD EVERY 1m
PARAM fast = 9
PARAM slow = 21
PARAM lots = 0.1
PARAM verbose = true
RULES
WHEN ema(eur, fast) crosses ABOVE ema(eur, slow) THEN BUY eur SIZING lots
"""


def validate(path: Path, **kw: object) -> dict[str, object]:
    config = load_config(None, env={}, cwd=path.parent)
    report = Validator(config, env={}, **kw).validate([path])  # type: ignore[arg-type]
    return report.to_json()


def test_children_get_their_deployment_names_and_routes(write: Writer) -> None:
    write("momentum.qkt", SEED)
    write("cross.qkt", PARAMS)
    path = write(
        "book.yaml",
        "name: fx-book\nstrategies:\n  - file: momentum.qkt\n    as: eur-momentum\n"
        "  - file: cross.qkt\n    params: {fast: 5, slow: 30, lots: 0.2, verbose: false}\n"
        "allow_shared_symbols: true\n",
    )
    data = validate(path)
    assert data["ok"] is True, data
    (report,) = data["files"]  # type: ignore[misc]
    assert (report["kind"], report["name"]) == ("portfolio", "fx-book")
    children = report["children"]
    assert [(c["as"], c["name"]) for c in children] == [
        ("eur-momentum", "momentum"),
        ("cross", "cross"),
    ]
    assert children[0]["routes"][0]["broker_symbol"] == "EURUSDm"


def test_param_errors_name_the_yaml_line(write: Writer) -> None:
    write("cross.qkt", PARAMS)
    path = write(
        "book.yaml",
        "name: fx-book\nstrategies:\n  - file: cross.qkt\n    params:\n      fats: 5\n"
        "      slow: fast\n      verbose: 1\n",
    )
    child = validate(path)["files"][0]["children"][0]  # type: ignore[index]
    found = {(d["code"], d["line"]) for d in child["diagnostics"]}
    assert found == {("unknown-param", 5), ("param-type", 6), ("param-type", 7)}
    unknown = next(d for d in child["diagnostics"] if d["code"] == "unknown-param")
    assert "did you mean `fast`?" in unknown["message"]
    assert unknown["path"] == str(path)


def test_shape_errors_are_positioned(write: Writer) -> None:
    path = write(
        "book.yaml",
        "name: FX Book\nstrict_brokers: maybe\nstrategies:\n  - file: a.qkt\n    as: x\n"
        "  - file: b.qkt\n    as: x\n    param: {}\n  - {}\n",
    )
    _, diags = load_portfolio(path)
    found = sorted((d.code, d.line) for d in diags)
    assert found == [
        ("bad-name", 1),
        ("bad-value", 2),
        ("duplicate-name", 7),
        ("missing-field", 9),
        ("unknown-key", 8),
    ]
    hint = next(d for d in diags if d.code == "unknown-key").hint
    assert hint == "did you mean `params`?"


def test_missing_strategy_file_is_an_error_at_its_entry(write: Writer) -> None:
    path = write("book.yaml", "name: b\nstrategies:\n  - file: gone.qkt\n")
    data = validate(path)
    assert data["ok"] is False
    child = data["files"][0]["children"][0]  # type: ignore[index]
    assert [(d["code"], d["line"]) for d in child["diagnostics"]] == [("strategy-not-found", 3)]


def test_two_strategies_on_one_account_symbol_need_permission(write: Writer) -> None:
    write("a.qkt", SEED)
    write("b.qkt", SEED.replace("momentum", "other"))
    text = "name: b\nstrategies:\n  - file: a.qkt\n  - file: b.qkt\n"
    path = write("book.yaml", text)
    relaxed = validate(path)
    assert relaxed["ok"] is True
    codes = [d["code"] for d in relaxed["files"][0]["diagnostics"]]  # type: ignore[index]
    assert codes == ["shared-account-symbol"]
    strict = write("strict.yaml", "strict_brokers: true\n" + text)
    assert validate(strict)["ok"] is False
    assert validate(strict, strict_flag=False)["ok"] is True
    allowed = write("allowed.yaml", text + "allow_shared_symbols: true\n")
    assert validate(allowed, strict_flag=True)["ok"] is True


def test_default_names_collide(write: Writer) -> None:
    write("a.qkt", SEED)
    path = write("book.yaml", "name: b\nstrategies:\n  - file: a.qkt\n  - file: a.qkt\n")
    data = validate(path)
    codes = [(d["code"], d["line"]) for d in data["files"][0]["diagnostics"]]  # type: ignore[index]
    assert ("duplicate-name", 4) in codes
    assert data["ok"] is False


def test_sniffing_portfolios_in_directories(write: Writer) -> None:
    assert looks_like_portfolio(write("p.yaml", "name: x\nstrategies:\n  - file: a.qkt\n"))
    assert not looks_like_portfolio(write("c.yaml", "brokers: {}\n"))
    assert not looks_like_portfolio(Path("/nonexistent/portfolio.yaml"))
