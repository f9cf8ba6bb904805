"""``qkt validate --probe`` against real HTTP servers: readiness, account, routed symbols, live
volume limits, refused keys; read-only and all at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer, URIPattern
from werkzeug import Request, Response

from tests.cli.conftest import Result, Runner
from tests.conftest import SEED, Writer

EURUSD = {
    "bid": 1.0841,
    "ask": 1.0843,
    "digits": 5,
    "point": 0.00001,
    "volume_min": 0.01,
    "volume_max": 200.0,
    "volume_step": 0.01,
    "trade_contract_size": 100000,
    "trade_mode": 4,
}
ACCOUNT = {"login": 5551234, "server": "Exness-MT5Trial9", "trade_mode": "0", "margin_mode": 0}


def gateway(
    server: HTTPServer,
    symbols: dict[str, dict[str, Any]] | None = None,
    account: dict[str, Any] | None = None,
) -> str:
    """A ready gateway serving ``/account`` and the given symbols (others answer 404)."""
    server.expect_request("/health/ready").respond_with_json(
        {"ok": True, "status": "ready", "mt5_status": "connected"}
    )
    server.expect_request("/account").respond_with_json(account or ACCOUNT)
    for name, info in (symbols if symbols is not None else {"EURUSDm": EURUSD}).items():
        server.expect_request(f"/symbol_info/{name}").respond_with_json(info)
    server.expect_request(_AnyOtherSymbol()).respond_with_json(
        {"ok": False, "error": "Symbol not found", "error_type": "not_found"}, status=404
    )
    return server.url_for("").rstrip("/")


class _AnyOtherSymbol(URIPattern):
    """A URI matcher for the symbols a test did not serve (checked after the served ones)."""

    def match(self, uri: str) -> bool:
        return uri.startswith("/symbol_info/")


def config(write: Writer, url: str, extra: str = "") -> Path:
    return write("qkt.config.yaml", f"brokers:\n  exness:\n    gateway_url: {url}\n{extra}")


def probe(qkt: Runner, cfg: Path, *paths: Path, flags: tuple[str, ...] = ()) -> Result:
    return qkt("validate", *map(str, paths), "--probe", "--format", "json", *flags, cwd=cfg.parent)


def test_probe_reports_each_routed_gateway_with_its_symbols(
    qkt: Runner, write: Writer, httpserver: HTTPServer
) -> None:
    url = gateway(httpserver)
    cfg = config(
        write, url, "  lab:\n    type: mt5\n    gateway_url: http://127.0.0.1:9\n    magic: 5\n"
    )
    path = write(
        "two.qkt",
        SEED.replace(
            "eur = EXNESS:EURUSD EVERY 1m",
            "eur = EXNESS:EURUSD EVERY 1m\nlab = LAB:EURUSD EVERY 1m",
        ),
    )
    result = probe(qkt, cfg, path)
    assert result.code == 0, result.out
    data = result.json()
    probes = {p["profile"]: p for p in data["probes"]}
    assert probes["exness"] == {
        "profile": "exness",
        "type": "mt5",
        "target": url,
        "ready": True,
        "account": {
            "login": 5551234,
            "server": "Exness-MT5Trial9",
            "trade_mode": "demo",
            "margin_mode": "netting",
        },
        "symbols": [
            {
                "symbol": "EURUSD",
                "broker_symbol": "EURUSDm",
                "tradable": True,
                "min_volume": "0.01",
                "volume_step": "0.01",
                "max_volume": "200.0",
                "digits": 5,
            }
        ],
        "problem": None,
    }
    lab = probes["lab"]
    assert (lab["ready"], lab["account"]) == (False, None)
    assert lab["symbols"] == [
        {
            "symbol": "EURUSD",
            "broker_symbol": "EURUSD",
            "tradable": None,
            "min_volume": None,
            "volume_step": None,
            "max_volume": None,
            "digits": None,
        }
    ]
    assert lab["problem"] is not None and "unreachable" in lab["problem"]
    assert [d["code"] for d in data["diagnostics"]] == ["gateway-unreachable"]
    assert data["diagnostics"][0]["severity"] == "warning"
    strict = qkt("validate", str(path), "--probe", "--strict-brokers", cwd=cfg.parent)
    assert strict.code == 1
    assert "error[gateway-unreachable]" in strict.out


def test_probe_is_read_only_and_asks_for_each_symbol_once(
    qkt: Runner, write: Writer, httpserver: HTTPServer
) -> None:
    url = gateway(httpserver, {"EURUSDm": EURUSD, "USTECm": {**EURUSD, "digits": 2}})
    cfg = config(write, url)
    path = write(
        "s.qkt",
        "STRATEGY s VERSION 1\nSYMBOLS\na = EXNESS:EURUSD EVERY 1m\nb = EXNESS:EURUSD EVERY 5m\n"
        "c = EXNESS:NAS100 EVERY 1m\nRULES\nWHEN a.close > 1 THEN BUY a SIZING 0.1\n",
    )
    assert qkt("validate", str(path), cwd=cfg.parent).code == 0
    assert httpserver.log == []  # without --probe nothing is asked
    result = probe(qkt, cfg, path)
    assert result.code == 0, result.out
    (found,) = result.json()["probes"]
    assert [(s["symbol"], s["broker_symbol"], s["digits"]) for s in found["symbols"]] == [
        ("EURUSD", "EURUSDm", 5),
        ("NAS100", "USTECm", 2),
    ]
    asked = sorted((req.method, req.path) for req, _ in httpserver.log)
    assert asked == [
        ("GET", "/account"),
        ("GET", "/health/ready"),
        ("GET", "/symbol_info/EURUSDm"),
        ("GET", "/symbol_info/USTECm"),
    ]


@pytest.fixture
def threaded_server() -> Iterator[HTTPServer]:
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def test_probe_asks_for_the_account_and_every_symbol_at_once(
    qkt: Runner, write: Writer, threaded_server: HTTPServer
) -> None:
    """Each answer waits until all three reads are in flight: one at a time, none is answered."""
    together = threading.Barrier(3, timeout=3)

    def held(body: dict[str, Any]) -> Any:
        def handler(request: Request) -> Response:
            try:
                together.wait()
            except threading.BrokenBarrierError:
                return Response('{"error": "asked one at a time"}', status=400)
            return Response(json.dumps(body), content_type="application/json")

        return handler

    threaded_server.expect_request("/health/ready").respond_with_json({"status": "ready"})
    threaded_server.expect_request("/account").respond_with_handler(held(ACCOUNT))
    for name in ("EURUSDm", "XAUUSDm"):
        threaded_server.expect_request(f"/symbol_info/{name}").respond_with_handler(held(EURUSD))
    cfg = config(write, threaded_server.url_for("").rstrip("/"))
    path = write(
        "s.qkt",
        "STRATEGY s VERSION 1\nSYMBOLS\na = EXNESS:EURUSD EVERY 1m\nb = EXNESS:XAUUSD EVERY 1m\n"
        "RULES\nWHEN a.close > 1 THEN BUY a SIZING 0.1\n",
    )
    result = probe(qkt, cfg, path)
    assert result.code == 0, result.out
    (found,) = result.json()["probes"]
    assert [s["tradable"] for s in found["symbols"]] == [True, True]
    assert found["account"]["login"] == 5551234


@pytest.mark.parametrize(
    ("trade_mode", "tradable", "word"),
    [(0, False, "disabled"), (3, False, "close-only"), (1, True, None), (4, True, None)],
)
def test_a_symbol_the_venue_does_not_trade_is_an_error(
    qkt: Runner,
    write: Writer,
    httpserver: HTTPServer,
    trade_mode: int,
    tradable: bool,
    word: str | None,
) -> None:
    cfg = config(write, gateway(httpserver, {"EURUSDm": {**EURUSD, "trade_mode": trade_mode}}))
    result = probe(qkt, cfg, write("seed.qkt", SEED), flags=("--no-strict-brokers",))
    data = result.json()
    (found,) = data["probes"]
    assert found["symbols"][0]["tradable"] is tradable
    if word is None:
        assert result.code == 0, result.out
        assert (data["diagnostics"], found["problem"]) == ([], None)
        return
    assert result.code == 1
    (diag,) = data["diagnostics"]
    assert (diag["severity"], diag["code"]) == ("error", "symbol-not-tradable")
    assert "EURUSDm" in diag["message"] and word in diag["message"]
    assert found["problem"] == f"EURUSDm is {word}"


def test_a_symbol_without_trade_mode_is_tradable(
    qkt: Runner, write: Writer, httpserver: HTTPServer
) -> None:
    plain = {k: v for k, v in EURUSD.items() if k != "trade_mode"}
    cfg = config(write, gateway(httpserver, {"EURUSDm": plain}))
    result = probe(qkt, cfg, write("seed.qkt", SEED))
    assert result.code == 0, result.out
    assert result.json()["probes"][0]["symbols"][0]["tradable"] is True


def test_a_symbol_the_gateway_does_not_have_is_an_error_even_when_not_strict(
    qkt: Runner, write: Writer, httpserver: HTTPServer
) -> None:
    cfg = config(write, gateway(httpserver, {}))
    path = write("seed.qkt", SEED)
    result = probe(qkt, cfg, path, flags=("--no-strict-brokers",))
    assert result.code == 1
    data = result.json()
    (diag,) = data["diagnostics"]
    assert (diag["severity"], diag["code"]) == ("error", "symbol-not-found")
    assert "EURUSDm" in diag["message"] and "Symbol not found" in diag["message"]
    (found,) = data["probes"]
    assert found["ready"] is True
    assert found["symbols"][0]["tradable"] is False
    assert found["problem"] == "EURUSDm is not on the gateway"
    text = qkt("validate", str(path), "--probe", cwd=cfg.parent)
    assert "error[symbol-not-found]" in text.out
    row = next(x for x in text.out.splitlines() if "EURUSDm" in x and "NO" in x.split())
    assert row.split()[:4] == ["exness", "EURUSD", "EURUSDm", "NO"]


@pytest.mark.parametrize(
    ("limits", "code", "limit"),
    [
        ({"volume_min": 1, "volume_max": 50, "volume_step": 0.1}, "venue-volume-below-min", "1"),
        ({"volume_min": "0.2", "volume_step": 0.05}, "venue-volume-below-min", "0.2"),
        ({"volume_min": 0.01, "volume_step": 0.03}, "venue-volume-off-step", "0.03"),
        ({"volume_min": 0.01, "volume_max": "0.05"}, "venue-volume-above-max", "0.05"),
    ],
)
def test_a_constant_size_outside_the_live_volume_limits_is_an_error(
    qkt: Runner,
    write: Writer,
    httpserver: HTTPServer,
    limits: dict[str, Any],
    code: str,
    limit: str,
) -> None:
    cfg = config(write, gateway(httpserver, {"EURUSDm": {**EURUSD, **limits}}))
    path = write("seed.qkt", SEED)
    result = probe(qkt, cfg, path, flags=("--no-strict-brokers",))
    assert result.code == 1, result.out
    data = result.json()
    assert data["diagnostics"] == []
    diags = data["files"][0]["diagnostics"]
    assert [d["code"] for d in diags] == [code]
    (diag,) = diags
    assert diag["severity"] == "error"
    assert (diag["path"], diag["line"]) == (str(path), 6)
    assert SEED.splitlines()[5][diag["column"] - 1 :].startswith("0.1 ")
    assert "`eur`" in diag["message"] and "0.1" in diag["message"]
    assert f" {limit} of EURUSDm" in diag["message"]
    assert data["probes"][0]["problem"] is None  # the venue is fine; the strategy is not


def test_sizes_inside_the_live_limits_pass_and_unknown_sizes_are_not_checked(
    qkt: Runner, write: Writer, httpserver: HTTPServer
) -> None:
    cfg = config(write, gateway(httpserver, {"EURUSDm": {**EURUSD, "volume_min": 0.1}}))
    path = write(
        "s.qkt",
        "STRATEGY s VERSION 1\nSYMBOLS\neur = EXNESS:EURUSD EVERY 1m\nPARAM lots = 0.2\nRULES\n"
        "WHEN eur.close > 1 THEN BUY eur SIZING lots\n"
        "WHEN eur.close > 2 THEN SELL eur SIZING 1 PCT OF EQUITY\n",
    )
    result = probe(qkt, cfg, path)
    assert result.code == 0, result.out
    assert result.json()["files"][0]["diagnostics"] == []


def test_a_portfolio_child_gets_the_live_volume_error_with_its_params(
    qkt: Runner, write: Writer, httpserver: HTTPServer
) -> None:
    cfg = config(write, gateway(httpserver, {"EURUSDm": {**EURUSD, "volume_min": 0.5}}))
    write(
        "s.qkt",
        "STRATEGY s VERSION 1\nSYMBOLS\neur = EXNESS:EURUSD EVERY 1m\nPARAM lots = 1\nRULES\n"
        "WHEN eur.close > 1 THEN BUY eur SIZING lots\n",
    )
    book = write(
        "book.yaml",
        "name: book\nallow_shared_symbols: true\nstrategies:\n"
        "  - file: s.qkt\n    as: big\n"
        "  - file: s.qkt\n    as: small\n    params: {lots: 0.2}\n",
    )
    result = probe(qkt, cfg, book)
    assert result.code == 1, result.out
    big, small = result.json()["files"][0]["children"]
    assert (big["as"], big["ok"], big["diagnostics"]) == ("big", True, [])
    (diag,) = small["diagnostics"]
    assert (diag["code"], diag["line"]) == ("venue-volume-below-min", 6)
    assert "order size 0.2" in diag["message"]


def test_a_refused_api_key_is_an_error_not_an_unreachable_gateway(
    qkt: Runner, write: Writer, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/health/ready").respond_with_json(
        {"ok": False, "error": "unauthorized"}, status=401
    )
    url = httpserver.url_for("").rstrip("/")
    cfg = config(write, url, "    api_key: ${GW_TOKEN}\n")
    path = write("seed.qkt", SEED)
    env = {"GW_TOKEN": "tok-5524-wrong"}
    result = qkt(
        "validate", str(path), "--probe", "--format", "json", "--no-strict-brokers",
        env=env, cwd=cfg.parent,
    )  # fmt: skip
    assert result.code == 1
    data = result.json()
    (diag,) = data["diagnostics"]
    assert (diag["severity"], diag["code"]) == ("error", "gateway-auth-refused")
    assert "refused the api_key (HTTP 401)" in diag["message"]
    (found,) = data["probes"]
    assert (found["ready"], found["account"]) == (False, None)
    assert found["problem"] == "refused the api_key (HTTP 401)"
    assert [req.headers.get("Authorization") for req, _ in httpserver.log] == [
        "Bearer tok-5524-wrong"
    ]  # nothing is read after the refusal
    text = qkt("validate", str(path), "--probe", env=env, cwd=cfg.parent)
    assert text.code == 1
    row = next(x for x in text.out.splitlines() if x.strip().startswith("exness ") and url in x)
    assert "refused the api_key (HTTP 401)" in row
    assert "UNREACHABLE" not in text.out
    assert "tok-5524-wrong" not in text.out + text.err


def test_an_account_other_than_expected_is_an_error(
    qkt: Runner, write: Writer, httpserver: HTTPServer
) -> None:
    cfg = config(write, gateway(httpserver), "    expected_account_login: 42\n")
    result = probe(qkt, cfg, write("seed.qkt", SEED))
    assert result.code == 1
    data = result.json()
    assert [d["code"] for d in data["diagnostics"]] == ["account-mismatch"]
    assert "5551234" in data["probes"][0]["problem"]


def test_probe_says_whether_an_account_hedges(
    qkt: Runner, write: Writer, httpserver: HTTPServer
) -> None:
    cfg = config(write, gateway(httpserver, account={"login": 7, "margin_mode": 2}))
    result = probe(qkt, cfg, write("seed.qkt", SEED))
    assert result.code == 0, result.out
    (found,) = result.json()["probes"]
    assert found["account"]["margin_mode"] == "hedging"


def test_text_output_shows_each_profile_and_its_symbols(
    qkt: Runner, write: Writer, httpserver: HTTPServer
) -> None:
    url = gateway(httpserver, {"EURUSDm": EURUSD, "USTECm": {**EURUSD, "digits": 2}})
    cfg = config(write, url)
    path = write(
        "s.qkt",
        "STRATEGY s VERSION 1\nSYMBOLS\na = EXNESS:EURUSD EVERY 1m\nc = EXNESS:NAS100 EVERY 1m\n"
        "RULES\nWHEN a.close > 1 THEN BUY a SIZING 0.1\n",
    )
    result = qkt("validate", str(path), "--probe", cwd=cfg.parent)
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    profile = next(x for x in lines if x.strip().startswith("exness ") and url in x).split()
    assert profile == [
        "exness", "mt5", url, "ready", "5551234", "Exness-MT5Trial9", "demo", "netting",
    ]  # fmt: skip
    rows = [x.split() for x in lines if x.strip().startswith("exness ") and url not in x]
    assert rows == [
        ["exness", "EURUSD", "EURUSDm", "yes", "0.01", "0.01", "200.0", "5"],
        ["exness", "NAS100", "USTECm", "yes", "0.01", "0.01", "200.0", "2"],
    ]


def test_probe_without_venue_routes_reports_no_probes(qkt: Runner, write: Writer) -> None:
    path = write("paper.qkt", SEED.replace("EXNESS:", "BACKTEST:"))
    result = qkt("validate", str(path), "--probe", "--format", "json")
    assert result.code == 0
    assert result.json()["probes"] == []
    assert "probes" not in qkt("validate", str(path), "--format", "json").json()
