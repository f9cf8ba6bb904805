"""Inputs ``scripts/fuzz.py`` found that crashed, hung or answered wrongly, each with the clean
answer a user gets instead: a positioned diagnostic, a visible notice, a summary that counts."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from qkt.brokers.registry import BrokerRegistry
from qkt.config import load_config
from qkt.diagnostics import did_you_mean
from qkt.dsl import parse_strategy
from qkt.engine.events import OrderRejected, VenueNotice
from qkt.errors import ConfigError
from qkt.feeds.replay import ReplaySource
from qkt.feeds.replaycheck import check_replay_text
from qkt.portfolio import load_portfolio
from qkt.session import LiveSession
from qkt.yamlsrc import load_yaml
from tests.conftest import ROOT, Writer

EURUSD = ROOT / "examples" / "data" / "eurusd-1m.csv"


def first_rows(n: int) -> str:
    with EURUSD.open(encoding="utf-8") as fh:
        return "".join(next(fh) for _ in range(n + 1))


# ------------------------------------------------------------ YAML


@pytest.mark.timeout(30)
def test_yaml_nested_thousands_deep_is_refused_before_it_is_built(write: Writer) -> None:
    # 30,000 levels overflowed the C composer's stack (a segfault); 500,000 unclosed ones took
    # seconds to compose before the depth limit was looked at.
    for text in ("strategies: " + "[" * 30_000 + "]" * 30_000, "strategies: " + "[" * 500_000):
        path = write("deep.yaml", text + "\n")
        started = time.monotonic()
        portfolio, diags = load_portfolio(path)
        assert time.monotonic() - started < 5
        assert portfolio is None
        # The column is where the depth was noticed: ours at level 65, or PyYAML's own limit
        # (6.0.4 and later scan ahead to 1,000 levels first).
        assert [(d.code, d.path, d.line, d.message) for d in diags] == [
            ("yaml-too-deep", str(path), 1, "the document nests deeper than 64 levels")
        ]
    path = write("qkt.config.yaml", "brokers: {a: " + "{a: " * 30_000 + "1" + "}" * 30_001 + "\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={"QKT_NO_CACHE": "1"}, cwd=path.parent)
    assert [(d.code, d.line) for d in raised.value.diagnostics] == [("yaml-too-deep", 1)]


@pytest.mark.timeout(30)
def test_a_yaml_document_of_too_many_values_is_refused_before_it_is_built() -> None:
    # 140,000 keys on one line were composed (seconds) before the values were counted.
    text = "brokers:\n  exness:\n    aliases: {" + "x," * 140_000 + "y: 1}\n"
    started = time.monotonic()
    doc, diags = load_yaml(text, "qkt.config.yaml")
    assert time.monotonic() - started < 2
    assert doc is None
    assert [d.format() for d in diags] == [
        "qkt.config.yaml:3:100008: error[yaml-too-large]: the document builds more than "
        "100,000 values"
    ]


def test_a_yaml_value_its_tag_cannot_make_is_an_error_at_the_value() -> None:
    cases = {
        # PyYAML's constructors raised AttributeError and KeyError on these
        "name: !!timestamp x\n": "1:7: error[yaml-syntax]: invalid YAML: `x` is not a valid "
        "!!timestamp",
        "name: !!bool maybe\n": "1:7: error[yaml-syntax]: invalid YAML: `maybe` is not a valid "
        "!!bool",
        "!!timestamp x: 1\n": "1:1: error[yaml-syntax]: invalid YAML: `x` is not a valid "
        "!!timestamp",
        # and ValueError, said at line 1 naming Python's sys.set_int_max_str_digits()
        "a: 1\nmagic: " + "9" * 5000 + "\n": "2:8: error[yaml-syntax]: invalid YAML: "
        "`99999999999999999...` is not a valid !!int (too many digits)",
        "a: !!timestamp 2026-13-45\n": "1:4: error[yaml-syntax]: invalid YAML: `2026-13-45` is "
        "not a valid !!timestamp (month must be in 1..12)",
    }
    for text, expected in cases.items():
        doc, diags = load_yaml(text, "p.yaml")
        assert doc is None
        assert [d.format() for d in diags] == [f"p.yaml:{expected}"], text[:30]


def test_a_url_with_a_malformed_host_is_a_bad_url_that_shows_no_credentials(
    write: Writer,
) -> None:
    # urlsplit raises ValueError on `[`-hosts; quoting the URL (credentials hidden) let it out.
    for url, shown in (
        ("http://[[[1", "http://[[[1"),
        ("http://user:secret@[::1", "http://***@[::1"),
    ):
        path = write("qkt.config.yaml", f"brokers:\n  exness:\n    gateway_url: '{url}'\n")
        with pytest.raises(ConfigError) as raised:
            load_config(path, env={"QKT_NO_CACHE": "1"}, cwd=path.parent)
        assert [d.format() for d in raised.value.diagnostics] == [
            "qkt.config.yaml:3:5: error[bad-url]: profile `exness`: `gateway_url` must be an "
            f"http:// or https:// URL with a valid host, got '{shown}'"
        ]


def test_a_configured_replay_path_too_long_to_look_up_is_a_positioned_error(write: Writer) -> None:
    # Path.is_file() raised OSError (file name too long) while the config was checked.
    path = write(
        "qkt.config.yaml", f"market_data:\n  source: replay\n  replay: {{path: {'a' * 300}.csv}}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={"QKT_NO_CACHE": "1"}, cwd=path.parent)
    (problem,) = raised.value.diagnostics
    assert (problem.code, problem.line, problem.column) == ("replay-not-found", 3, 12)
    assert problem.message.endswith("aaaaaaaa.csv cannot be used: the file name is too long")
    assert len(problem.message) < 160


@pytest.mark.timeout(60)
def test_a_portfolio_of_thousands_of_strategies_is_refused_at_once(write: Writer) -> None:
    # Each of 6,000 entries was parsed and planned: 12 s for 150 KB.
    write("s.qkt", (ROOT / "examples" / "gold_breakout.qkt").read_text(encoding="utf-8"))
    path = write("book.yaml", "name: book\nstrategies:\n" + "- file: s.qkt\n" * 6000)
    started = time.monotonic()
    portfolio, diags = load_portfolio(path)
    assert time.monotonic() - started < 2
    assert portfolio is None
    assert [d.format() for d in diags] == [
        f"{path}:2:1: error[too-many-strategies]: a portfolio deploys at most 1,000 strategies, "
        "this one lists 6,000 (split it into several portfolios)"
    ]


# ------------------------------------------------------------ replay files


def test_a_replay_time_of_thousands_of_digits_is_out_of_range() -> None:
    # int() refuses more than 4,300 digits: a ValueError escaped the check.
    report = check_replay_text("time,bid,ask\n" + "9" * 5000 + ",1,1.1\n", "r.csv", ["EURUSD"])
    assert [d.format() for d in report.diagnostics] == [
        "r.csv:2:1: error[replay-time]: time 99999999999999999999... is out of range "
        "(epoch milliseconds up to the year 9999)"
    ]
    # a digit int() does not read
    report = check_replay_text("time,bid,ask\n\u00b2,1,1.1\n", "r.csv", ["EURUSD"])
    assert [d.format() for d in report.diagnostics] == [
        "r.csv:2:1: error[replay-time]: time '\u00b2' is neither ISO-8601 nor epoch milliseconds "
        "(e.g. 2026-03-02T00:00:00Z)"
    ]


def test_a_bar_of_the_last_minute_of_9999_replays_as_the_check_passed_it(write: Writer) -> None:
    # Its close time (open + one minute) overflowed: the reader failed a file the check passed.
    path = write(
        "late.csv",
        "time,open,high,low,close,volume\n9999-12-31T23:58:00Z,1,1,1,1,1\n"
        "9999-12-31T23:59:00Z,1,1,1,1,1\n",
    )
    source = ReplaySource(path)
    assert source.check(["EURUSD"]).ok
    assert [(str(r.bar.time) if r.bar else None, str(r.time)) for r in source] == [
        ("9999-12-31 23:58:00+00:00", "9999-12-31 23:59:00+00:00"),
        ("9999-12-31 23:59:00+00:00", "9999-12-31 23:59:59.999999+00:00"),
    ]


def test_blanks_around_a_replay_time_or_volume_replay_as_the_check_passed_them(
    write: Writer,
) -> None:
    # The check strips a time (and reads a blank volume as 0); the reader did not, and failed
    # the file after the check had passed it: "the row changed since the file was checked".
    path = write(
        "padded.csv",
        "time,open,high,low,close,volume\n"
        " 2026-03-02T06:37:00Z ,1.08326,1.0833,1.08316,1.0832, \n"
        "\u20282026-03-02T06:38:00Z,1.08326,1.0833,1.08316,1.0832,\u00a0\n"
        " 1772434800000,1.08326,1.0833,1.08316,1.0832,1\n",
    )
    source = ReplaySource(path)
    assert source.check(["EURUSD"]).ok
    assert [(str(r.bar.time), r.bar.volume) for r in source if r.bar] == [
        ("2026-03-02 06:37:00+00:00", 0.0),
        ("2026-03-02 06:38:00+00:00", 0.0),
        ("2026-03-02 07:00:00+00:00", 1.0),
    ]


# ------------------------------------------------------------ the strategy language


def test_a_period_that_divides_by_zero_has_no_value() -> None:
    text = (
        "STRATEGY s VERSION 1\nSYMBOLS\neur = EXNESS:EURUSD EVERY 1m\nRULES\n"
        "WHEN ema(eur, 1/0) > 0 THEN CLOSE eur\n"
    )
    parsed = parse_strategy(text, "s.qkt")
    assert [d.format() for d in parsed.diagnostics] == [
        "s.qkt:5:15: error[undefined-value]: `ema` period has no value: `1 / 0` divides by zero"
    ]


@pytest.mark.timeout(60)
def test_thousands_of_unknown_names_among_thousands_of_lets_are_checked_at_once() -> None:
    # Every unknown name compared itself with every LET for a suggestion: 200 s for 100 KB.
    lets = "".join(f"LET c{i} = c{i + 1}x + 1\n" for i in range(3000))
    text = "STRATEGY s VERSION 1\nSYMBOLS\neur = EXNESS:EURUSD EVERY 1m\n" + lets
    started = time.monotonic()
    parsed = parse_strategy(text + "RULES\nWHEN eur.close > c0 THEN CLOSE eur\n", "s.qkt")
    assert time.monotonic() - started < 5
    assert len(parsed.diagnostics) == 51  # 50 and a too-many-errors note
    assert parsed.diagnostics[0].format() == (
        "s.qkt:4:10: error[unknown-name]: unknown name `c1x` (did you mean `c1`?)"
    )


def test_a_bollinger_k_of_hundreds_of_digits_runs(write: Writer) -> None:
    # The warm-up length counted k as a period: int(float(k)) raised OverflowError.
    text = (
        "STRATEGY s VERSION 1\nSYMBOLS\neur = EXNESS:EURUSD EVERY 1m\nRULES\n"
        f"WHEN eur.close > bollinger_upper(eur, 5, {'9' * 400}) THEN BUY eur SIZING 1\n"
    )
    parsed = parse_strategy(text, "s.qkt")
    assert parsed.ok and parsed.strategy is not None
    config = load_config(ROOT / "qkt.config.yaml", env={"QKT_NO_CACHE": "1"}, cwd=ROOT)
    session = LiveSession(parsed.strategy, BrokerRegistry.from_config(config), paper_only=True)
    assert session.runtime.warmup_bars("eur") == 5
    summary = session.run(ReplaySource(write("r.csv", first_rows(30))))
    assert summary.fills == 0  # the band is infinitely far: the rule never fires


@pytest.mark.timeout(60)
def test_blanks_at_the_end_of_a_strategy_are_read_at_once() -> None:
    # The tokenizer's pattern retried 90,000 trailing spaces at every offset: 10 s.
    text = (
        "STRATEGY s VERSION 1\nSYMBOLS\neur = EXNESS:EURUSD EVERY 1m\nRULES\nWHEN -" + " " * 500_000
    )
    started = time.monotonic()
    parsed = parse_strategy(text, "s.qkt")
    assert time.monotonic() - started < 2
    assert [d.format() for d in parsed.diagnostics] == [
        "s.qkt:5:500007: error[syntax]: expected a value, found end of file"
    ]


def test_suggestions_among_many_names_stay_cheap_and_right() -> None:
    names = [f"name{i}" for i in range(100_000)]
    started = time.monotonic()
    assert did_you_mean("nmae7", names) == "did you mean `name7`?"
    assert did_you_mean("x" * 10_000, names) is None
    assert time.monotonic() - started < 1


# ------------------------------------------------------------ sessions


def test_an_order_the_session_cannot_make_is_counted_as_rejected(tmp_path: Path) -> None:
    # The session's own refusals (the stop has no value: atr is not ready) were printed but
    # not counted in summary.rejected.
    text = (
        "STRATEGY s VERSION 1\nSYMBOLS\neur = EXNESS:EURUSD EVERY 1m\nRULES\n"
        "WHEN eur.close > 0 THEN BUY eur SIZING 1 BRACKET STOP_LOSS BY atr(eur, 50)\n"
    )
    parsed = parse_strategy(text, "s.qkt")
    assert parsed.strategy is not None
    replay = tmp_path / "r.csv"
    replay.write_text(first_rows(10), encoding="utf-8")
    events: list[object] = []
    config = load_config(ROOT / "qkt.config.yaml", env={"QKT_NO_CACHE": "1"}, cwd=ROOT)
    session = LiveSession(
        parsed.strategy, BrokerRegistry.from_config(config), paper_only=True, on_event=events.append
    )
    summary = session.run(ReplaySource(replay))
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert [r.reason for r in rejected] == [
        "STOP_LOSS has no value (atr(eur, 50) is not ready): order not sent"
    ]
    assert (summary.rejected, summary.fills) == (1, 0)


@pytest.mark.anyio
async def test_a_venue_quote_that_is_no_price_is_a_failed_read(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    # A gateway's 1e400 became an infinite price: with a position open, the equity
    # comparisons raised InvalidOperation; a time_msc past the year 9999 raised ValueError.
    import contextlib

    from qkt.engine.clock import WallClock
    from qkt.feeds.venue import VenueQuotes

    url = httpserver.url_for("").rstrip("/")
    cfg = tmp_path / "qkt.config.yaml"
    cfg.write_text(
        f"brokers:\n  exness:\n    gateway_url: {url}\n    retry_attempts: 1\n"
        "    tick_poll_interval_ms: 10\n"
    )
    answers = [
        {"bid": "1.1", "ask": "1.1002", "time_msc": 10**20},
        {"bid": "1.1", "ask": "1.1002", "time_msc": 1000},
        {"bid": "1e400", "ask": "1e400", "time_msc": 2000},
        {"bid": "0", "ask": "0", "time_msc": 3000},
        {"bid": "1.2", "ask": "1.2002", "time_msc": 4000},
    ]
    for answer in answers:
        httpserver.expect_oneshot_request("/symbol_info_tick/EURUSDm").respond_with_json(
            {"symbol": "EURUSDm", **answer}
        )
    config = load_config(cfg, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
    parsed = parse_strategy(
        "STRATEGY v VERSION 1\nSYMBOLS\neur = EXNESS:EURUSD EVERY 1m\nRULES\n"
        "WHEN eur.close > 2 THEN CLOSE eur\n",
        "v.qkt",
    )
    assert parsed.strategy is not None
    session = LiveSession(parsed.strategy, BrokerRegistry.from_config(config), clock=WallClock())
    notices: list[VenueNotice] = []
    session.bus.subscribe(VenueNotice, notices.append)
    async with contextlib.aclosing(VenueQuotes(session).rows()) as source:
        rows = [await anext(source), await anext(source)]
    assert [(r.tick.bid, r.tick.ask) for r in rows if r.tick] == [(1.1, 1.1002), (1.2, 1.2002)]
    assert [(n.level, n.message) for n in notices] == [
        (
            "warning",
            f"quotes of EURUSDm cannot be read: the quote's time_msc {10**20} is not a time",
        ),
        ("info", "quotes of EURUSDm can be read again"),
        (
            "warning",
            "quotes of EURUSDm cannot be read: the quote is not a price (bid 1e+400, ask 1e+400)",
        ),
        ("info", "quotes of EURUSDm can be read again"),
    ]


def test_money_beyond_twenty_digits_is_computed_and_printed_whole(
    write: Writer, tmp_path: Path
) -> None:
    # Quantizing a figure of more than 20 integer digits to 8 places raised InvalidOperation:
    # a paper profile's commission on a contract size of 1e30, a summary of 1e300.
    from cli.run import _money

    config = write(
        "qkt.config.yaml",
        "brokers:\n  sim: {type: paper, contract_sizes: {EURUSD: 1e30}, commission_bps: 1}\n",
    )
    text = (
        "STRATEGY s VERSION 1\nSYMBOLS\neur = SIM:EURUSD EVERY 1m\nRULES\n"
        "WHEN eur.close > 0 THEN BUY eur SIZING 1\n"
    )
    parsed = parse_strategy(text, "s.qkt")
    assert parsed.strategy is not None
    replay = write("r.csv", first_rows(3))
    registry = BrokerRegistry.from_config(
        load_config(config, env={"QKT_NO_CACHE": "1"}, cwd=tmp_path)
    )
    summary = LiveSession(parsed.strategy, registry).run(ReplaySource(replay))
    assert summary.commission == Decimal("1.0851300000000000000000000000E+26")  # 1.08513 * 1e26
    assert _money(summary.commission) == "108513" + "0" * 21
    assert _money(Decimal("1e300")) == "1" + "0" * 300
    assert _money(Decimal("-0.000000005")) == "0"
