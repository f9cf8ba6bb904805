"""Every checker and parser error: code, position and suggestion, several per file."""

from __future__ import annotations

import pytest

from qkt.dsl import parse_strategy, parse_strategy_file
from tests.conftest import SEED, Writer

HEAD = "STRATEGY t VERSION 1\nSYMBOLS\nbtc = BYBIT:BTCUSDT EVERY 1m\nRULES\n"


def errors(text: str) -> list[tuple[str, int | None, int | None, str | None]]:
    parsed = parse_strategy(text, "t.qkt")
    assert all(d.path == "t.qkt" for d in parsed.diagnostics)
    return [(d.code, d.line, d.column, d.hint) for d in parsed.diagnostics]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("WHEN ema(btx, 9) > 1 THEN BUY btc", ("unknown-name", 5, 10, "did you mean `btc`?")),
        ("WHEN btx.close > 1 THEN BUY btc", ("unknown-alias", 5, 6, "did you mean `btc`?")),
        ("WHEN btc > 1 THEN BUY btx", ("unknown-alias", 5, 23, "did you mean `btc`?")),
        (
            "WHEN emma(btc, 9) > 1 THEN CLOSE btc",
            ("unknown-indicator", 5, 6, "did you mean `ema`?"),
        ),
        ("WHEN btc.clsoe > 1 THEN CLOSE btc", ("unknown-field", 5, 10, "did you mean `close`?")),
        ("WHEN atr(3, 14) > 1 THEN CLOSE btc", ("wrong-argument", 5, 10, None)),
        (
            "WHEN atr(btc.close, 14) > 1 THEN CLOSE btc",
            ("wrong-argument", 5, 10, "pass the stream itself: `atr(btc, ...)`"),
        ),
        ("WHEN ema(btc, 0) > 1 THEN CLOSE btc", ("bad-period", 5, 15, None)),
        ("WHEN ema(btc, 2.5) > 1 THEN CLOSE btc", ("bad-period", 5, 15, None)),
        ("WHEN ema(btc, btc.close) > 1 THEN CLOSE btc", ("bad-period", 5, 15, None)),
        (
            "WHEN btc > 1 THEN BUY btc SIZING 1 BRACKET STOP_LOSS BY 100 PCT",
            ("bad-percent", 5, 57, None),
        ),
        (
            "WHEN btc > 1 THEN BUY btc SIZING 1 BRACKET STOP_LOSS BY 0 PCT",
            ("bad-percent", 5, 57, None),
        ),
        (
            "WHEN btc > 1 THEN BUY btc SIZING 1 BRACKET TAKE_PROFIT BY -5 PCT",
            ("bad-percent", 5, 59, None),
        ),
        (
            "WHEN btc > 1 THEN BUY btc SIZING BRACKET STOP_LOSS BY 1 PCT",
            (
                "missing-sizing-value",
                5,
                27,
                "write e.g. `SIZING 0.1`, `SIZING 2 PCT OF EQUITY` or `SIZING 500 USD`",
            ),
        ),
        ("WHEN btc > 1 THEN BUY btc SIZING 0", ("bad-size", 5, 34, None)),
        ("WHEN btc > 1 THEN BUY btc SIZING 0 USD", ("bad-size", 5, 34, None)),
        (
            "WHEN btc > 1 THEN BUY btc BRACKET STOP_LOSS BY 0 TAKE_PROFIT AT 1",
            ("bad-price", 5, 48, None),
        ),
        (
            "WHEN ACCOUNT.equity < 9000 THEN FLATTEN",
            (
                "rule-without-stream",
                5,
                1,
                "use a stream in the condition, e.g. `eur.close > 0 AND ...`",
            ),
        ),
        ("WHEN rsi(btc, 14) THEN CLOSE btc", ("type-mismatch", 5, 6, "compare it, e.g. `x > 0`")),
        ("WHEN btc > 1 AND 3 THEN CLOSE btc", ("type-mismatch", 5, 18, None)),
        ("WHEN btc > 1 THNE CLOSE btc", ("syntax", 5, 14, "did you mean `THEN`?")),
        ("WEHN btc > 1 THEN CLOSE btc", ("unexpected-token", 5, 1, "did you mean `WHEN`?")),
        ("WHEN btc crosses abov 1 THEN CLOSE btc", ("syntax", 5, 18, "did you mean `ABOVE`?")),
        ("WHEN btc > 1 THEN BYU btc", ("syntax", 5, 19, "did you mean `BUY`?")),
        ('WHEN btc > 1 THEN LOG "open', ("unterminated-string", 5, 23, 'add the closing "')),
        ("WHEN btc > 1 ¤ THEN CLOSE btc", ("bad-character", 5, 14, None)),
    ],
)
def test_one_error(rule: str, expected: tuple[str, int, int, str | None]) -> None:
    assert expected in errors(HEAD + rule + "\n")


def test_wrong_arity_names_the_signature() -> None:
    parsed = parse_strategy(HEAD + "WHEN ema(btc, 9, 3) > 1 THEN CLOSE btc\n", "t.qkt")
    (d,) = parsed.diagnostics
    assert (d.code, d.line, d.column) == ("wrong-arity", 5, 6)
    assert d.message == "`ema` takes 2 arguments (value, period), got 3"


def test_duplicate_alias_and_names() -> None:
    text = (
        "STRATEGY t VERSION 1\nSYMBOLS\nbtc = BYBIT:BTCUSDT EVERY 1m\nbtc = BYBIT:ETHUSDT EVERY 1m\n"
        "PARAM btc = 3\nLET x = btc.close\nLET x = 2\nRULES\nWHEN x > 1 THEN CLOSE btc\n"
    )
    found = errors(text)
    assert ("duplicate-alias", 4, 1, None) in found
    assert ("duplicate-name", 5, 7, None) in found
    assert ("duplicate-name", 7, 5, None) in found


def test_let_cycles_are_named() -> None:
    text = (
        "STRATEGY t VERSION 1\nSYMBOLS\nbtc = BYBIT:BTCUSDT EVERY 1m\n"
        "LET a = b + btc\nLET b = a\nLET c = c * 2\nRULES\nWHEN a > 1 THEN CLOSE btc\n"
    )
    parsed = parse_strategy(text, "t.qkt")
    by_code = {d.code: d for d in parsed.diagnostics}
    assert by_code["let-cycle"].message.endswith("`a` -> `b` -> `a`")
    assert (by_code["let-cycle"].line, by_code["let-cycle"].column) == (4, 5)
    assert (by_code["self-referencing-let"].line, by_code["self-referencing-let"].column) == (6, 5)


def test_missing_rules_and_header() -> None:
    assert ("missing-rules", 3, 17, None) in errors(
        "STRATEGY t VERSION 1\nSYMBOLS\nb = X:Y EVERY 1m"
    )
    found = errors("SYMBOLS\nb = X:Y EVERY 1m\nRULES\nWHEN b > 1 THEN CLOSE b\n")
    assert found[0][:3] == ("missing-header", 1, 1)


def test_bad_timeframe_suggests_the_form() -> None:
    found = errors(
        "STRATEGY t VERSION 1\nSYMBOLS\nb = X:Y EVERY 1w\nRULES\nWHEN b > 1 THEN CLOSE b\n"
    )
    assert found[0][:3] == ("bad-timeframe", 3, 15)


def test_the_parser_recovers_and_reports_every_error() -> None:
    text = HEAD + (
        "WHEN emma(btc, 9) > 1 THEN BUY btc\n"
        "WHEN btc > THEN BUY btc\n"
        "WHEN btc.clsoe > 1 THEN SELL bt\n"
        "WHEN btc > 1 THEN BUY btc SIZING 1 BRACKET STOP_LOSS BY 150 PCT\n"
    )
    codes = [(code, line) for code, line, _, _ in errors(text)]
    assert codes == [
        ("unknown-indicator", 5),
        ("syntax", 6),
        ("unknown-field", 7),
        ("unknown-alias", 7),
        ("bad-percent", 8),
    ]


def test_diagnostics_format_as_path_line_col() -> None:
    parsed = parse_strategy(SEED.replace("ema(eur, 21)", "emma(eur, 21)"), "momentum.qkt")
    assert [d.format() for d in parsed.diagnostics] == [
        "momentum.qkt:5:32: error[unknown-indicator]: unknown indicator `emma` (did you mean `ema`?)"
    ]


def test_unreadable_files_are_diagnostics(write: Writer) -> None:
    binary = write("bin.qkt", "")
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert [d.code for d in parse_strategy_file(binary).diagnostics] == ["encoding"]
    missing = parse_strategy_file(binary.parent / "missing.qkt")
    assert [d.code for d in missing.diagnostics] == ["file-unreadable"]


def codes(text: str) -> list[str]:
    return [d.code for d in parse_strategy(text, "t.qkt").diagnostics]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "WHEN btc > 1 THEN BUY btc BRACKET STOP_LOSS BY 1 PCT STOP_LOSS BY 2 PCT",
            ("duplicate-leg", 5, 54, None),
        ),
        (
            'WHEN btc > 1 THEN LOG loud "x"',
            ("bad-log-level", 5, 23, None),
        ),
        (
            "WHEN bollinger_upper(btc, 20, 0) > 1 THEN CLOSE btc",
            ("bad-value", 5, 31, None),
        ),
        ("WHEN macd(btc, 26, 12, 9) > 0 THEN CLOSE btc", ("bad-period", 5, 6, None)),
        ("WHEN sma(btc, 1000000) > 0 THEN CLOSE btc", ("bad-period", 5, 15, None)),
        (
            "WHEN POSITION.btc.pnll > 0 THEN CLOSE btc",
            ("unknown-field", 5, 19, "did you mean `pnl`?"),
        ),
        (
            "WHEN btc > 1 AND ACCOUNT.equty > 0 THEN CLOSE btc",
            ("unknown-field", 5, 26, "did you mean `equity`?"),
        ),
        ("WHEN POSITION.btx > 0 THEN CLOSE btc", ("unknown-alias", 5, 15, "did you mean `btc`?")),
        ("WHEN btc > 1 THEN CLOSE btx", ("unknown-alias", 5, 25, "did you mean `btc`?")),
        (
            "WHEN btc > ema THEN CLOSE btc",
            ("unknown-name", 5, 12, "`ema` is an indicator: call it, e.g. `ema(eur, 14)`"),
        ),
        ('WHEN btc > "high" THEN CLOSE btc', ("type-mismatch", 5, 12, None)),
        ('WHEN btc = "high" THEN CLOSE btc', ("type-mismatch", 5, 10, None)),
        ("WHEN btc > 1 AND NOT btc THEN CLOSE btc", ("type-mismatch", 5, 22, None)),
        (
            "WHEN btc.close + 1 THEN CLOSE btc",  # at the start of the expression, not at `+`
            ("type-mismatch", 5, 6, "compare it, e.g. `x > 0`"),
        ),
        ("WHEN btc IN [1, TRUE] THEN CLOSE btc", ("type-mismatch", 5, 17, None)),
        ("WHEN btc > 1 THEN BUY btc SIZING TRUE", ("type-mismatch", 5, 34, None)),
        ("WHEN btc > 1 THEN BUY btc SIZING btc > 1", ("unexpected-token", 5, 38, None)),
        (
            "WHEN btc < 1 < 2 THEN CLOSE btc",
            ("syntax", 5, 14, "join them with AND, e.g. `a < b AND b < c`"),
        ),
        (
            "WHEN btc > 1 THEN CLOSE; CLOSE btc",
            ("syntax", 5, 24, "use CLOSE_ALL to close every position"),
        ),
        (
            "WHEN btc > 1 THEN BUY btc SIZING 2 PCT OF EQUTY",
            ("syntax", 5, 43, "did you mean `EQUITY`?"),
        ),
        ("WHEN THEN CLOSE btc", ("syntax", 5, 6, "the condition is missing")),
        ("WHEN btc > 1 THEN BUY btc LOG 'x'", ("syntax", 5, 27, "separate actions with `;`")),
        ("WHEN btc > 1 BUY btc", ("syntax", 5, 14, "add `THEN` before the first action")),
        ("WHEN " + "(" * 40 + "btc" + ")" * 40 + " > 1 THEN CLOSE btc", ("too-deep", 5, 38, None)),
    ],
)
def test_more_errors(rule: str, expected: tuple[str, int, int, str | None]) -> None:
    assert expected in errors(HEAD + rule + "\n")


def test_a_condition_error_still_checks_the_actions() -> None:
    found = errors(HEAD + "WHEN btc > 1 BUY btx\nWHEN btc crosess ABOVE 1 THEN SELL btx SIZING 0\n")
    assert [(c, line) for c, line, _, _ in found] == [
        ("syntax", 5),
        ("unknown-alias", 5),
        ("syntax", 6),
    ]


def test_unknown_alias_message_and_hint() -> None:
    (d,) = parse_strategy(HEAD + "WHEN btx.close > 1 THEN CLOSE btc\n", "t.qkt").diagnostics
    assert d.message == "unknown stream alias `btx`"
    assert (
        d.format()
        == "t.qkt:5:6: error[unknown-alias]: unknown stream alias `btx` (did you mean `btc`?)"
    )


def test_period_params_must_be_whole_numbers() -> None:
    text = (
        "STRATEGY t VERSION 1\nSYMBOLS\nbtc = BYBIT:BTCUSDT EVERY 1m\nPARAM p = 2.5\nPARAM n = 7\n"
        "PARAM s = 'x'\nLET live = btc.close\nRULES\n"
        "WHEN ema(btc, p) > 1 AND ema(btc, n) > 1 AND ema(btc, n * 2) > 1 AND sma(btc, live) > 1"
        " AND sma(btc, s) > 1 THEN CLOSE btc\n"
    )
    found = errors(text)
    assert [(c, line, col) for c, line, col, _ in found] == [
        ("bad-period", 9, 15),
        ("bad-period", 9, 79),
        ("bad-period", 9, 102),
    ]


def test_version_and_header_errors() -> None:
    for version in ("0", "1.5", "x", "99999999999"):
        found = errors(SEED.replace("VERSION 1", f"VERSION {version}"))
        assert ("bad-version", 1, 27) in [e[:3] for e in found]
    assert errors("") == [
        ("missing-header", 1, 1, None),
        ("missing-rules", 1, 1, None),
    ]
    assert parse_strategy("", "t.qkt").strategy is None
    assert "unexpected-token" in codes(SEED + "STRATEGY again VERSION 2\n")


def test_streams_need_a_symbols_section() -> None:
    found = errors(SEED.replace("SYMBOLS\n", ""))
    assert found == [("missing-symbols", 2, 1, None)]
    bare = errors("STRATEGY t VERSION 1\nRULES\nWHEN ACCOUNT.equity > 0 THEN FLATTEN\n")
    assert bare[0][:3] == ("missing-symbols", 1, 1)


def test_reserved_words_and_missing_keywords_in_declarations() -> None:
    found = errors(SEED.replace("eur = EXNESS", "at = EXNESS"))
    assert ("syntax", 3, 1, "choose another name") in found
    stray = errors(SEED.replace("RULES", "fast = 3\nRULES"))
    assert ("syntax", 4, 8, "for a value, write `PARAM fast = 3`") in stray
    assert ("syntax", 1, 11, None) in errors("STRATEGY x")
    assert ("syntax", 2, 1, None) in errors("STRATEGY x\n")  # at the end of the file


def test_a_broken_declaration_does_not_cascade() -> None:
    text = (
        "STRATEGY t VERSION 1\nSYMBOLS\nbtc = BYBIT:BTCUSDT EVERY 1min\nPARAM p = btc\n"
        "LET l = (btc.close\nRULES\nWHEN ema(btc, p) > l THEN BUY btc SIZING p\n"
    )
    assert codes(text) == ["bad-timeframe", "syntax", "syntax"]


def test_the_number_of_errors_is_capped() -> None:
    text = HEAD + "WHEN btx > 1 THEN CLOSE btc\n" * 80
    diags = parse_strategy(text, "t.qkt").diagnostics
    assert len(diags) == 51
    assert {d.code for d in diags[:50]} == {"unknown-name"}
    assert (diags[-1].code, diags[-1].severity) == ("too-many-errors", "info")


def test_a_misspelt_stream_keyword_is_a_hint() -> None:
    found = errors(SEED.replace("EVERY 1m", "EVRY 1m"))
    assert ("syntax", 3, 21, "did you mean `EVERY`?") in found
