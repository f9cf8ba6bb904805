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
            ("wrong-argument", 5, 10, "pass the stream itself: `btc`"),
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
            ("missing-sizing-value", 5, 34, None),
        ),
        ("WHEN btc > 1 THEN BUY btc SIZING 0", ("bad-quantity", 5, 34, None)),
        ("WHEN 1 > 0 THEN CLOSE btc", ("rule-without-stream", 5, 1, None)),
        ("WHEN rsi(btc, 14) THEN CLOSE btc", ("type-mismatch", 5, 6, "compare it, e.g. `x > 0`")),
        ("WHEN btc > 1 AND 3 THEN CLOSE btc", ("type-mismatch", 5, 18, None)),
        ("WHEN btc > 1 THNE CLOSE btc", ("syntax", 5, 14, "did you mean `THEN`?")),
        ("WEHN btc > 1 THEN CLOSE btc", ("unexpected-token", 5, 1, "did you mean `WHEN`?")),
        ("WHEN btc crosses abov 1 THEN CLOSE btc", ("syntax", 5, 18, "did you mean `ABOVE`?")),
        ("WHEN btc > 1 THEN BYU btc", ("syntax", 5, 19, "did you mean `BUY`?")),
        ('WHEN btc > 1 THEN LOG "open', ("unterminated-string", 5, 23, None)),
        ("WHEN btc > 1 ¤ THEN CLOSE btc", ("bad-character", 5, 14, None)),
    ],
)
def test_one_error(rule: str, expected: tuple[str, int, int, str | None]) -> None:
    assert expected in errors(HEAD + rule + "\n")


def test_wrong_arity_names_the_signature() -> None:
    parsed = parse_strategy(HEAD + "WHEN ema(btc, 9, 3) > 1 THEN CLOSE btc\n", "t.qkt")
    (d,) = parsed.diagnostics
    assert (d.code, d.line, d.column) == ("wrong-arity", 5, 6)
    assert "`ema` takes 2 arguments (ema(value, period)), got 3" in d.message


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
    assert by_code["let-cycle"].message.endswith("a -> b -> a")
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
