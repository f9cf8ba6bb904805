"""The tokenizer: token types, exact positions, comments, strings, timeframes and bad input."""

from __future__ import annotations

from qkt.dsl.lexer import tokenize


def kinds(text: str) -> list[tuple[str, str]]:
    tokens, _ = tokenize(text)
    return [(t[0], t[1]) for t in tokens]


def test_tokens_carry_type_text_line_column_and_offset() -> None:
    tokens, diags = tokenize("WHEN ema(eur, 9) crosses\n  ABOVE 1.5 -- note\nTHEN")
    assert diags == []
    assert tokens == [
        ("WHEN", "WHEN", 1, 1, 0),
        ("ident", "ema", 1, 6, 5),
        ("(", "(", 1, 9, 8),
        ("ident", "eur", 1, 10, 9),
        (",", ",", 1, 13, 12),
        ("num", "9", 1, 15, 14),
        (")", ")", 1, 16, 15),
        ("CROSSES", "CROSSES", 1, 18, 17),
        ("ABOVE", "ABOVE", 2, 3, 27),
        ("num", "1.5", 2, 9, 33),
        ("THEN", "THEN", 3, 1, 45),
        ("eof", "", 3, 5, 49),
    ]


def test_operators_numbers_timeframes_and_strings() -> None:
    ops = "<= >= == != <> < > = - + * / % { } [ ] ; : ."
    assert kinds(ops) == [
        *[(op, op) for op in ops.split(" ")],
        ("eof", ""),
    ]
    assert kinds("15m 4H 1.25 .5 0.001 'it''s' \"a 'b'\"") == [
        ("tf", "15m"),
        ("tf", "4H"),
        ("num", "1.25"),
        ("num", ".5"),
        ("num", "0.001"),
        ("str", "it"),
        ("str", "s"),
        ("str", "a 'b'"),
        ("eof", ""),
    ]
    assert kinds("15min")[:2] == [("num", "15"), ("ident", "min")]


def test_keywords_are_case_insensitive_identifiers_keep_their_case() -> None:
    assert kinds("when When wHeN Eur eur close_all") == [
        ("WHEN", "WHEN"),
        ("WHEN", "WHEN"),
        ("WHEN", "WHEN"),
        ("ident", "Eur"),
        ("ident", "eur"),
        ("CLOSE_ALL", "CLOSE_ALL"),
        ("eof", ""),
    ]


def test_both_comment_styles_run_to_the_end_of_the_line() -> None:
    assert kinds("a -- b c\n# d e\nf#g\nh - -i") == [
        ("ident", "a"),
        ("ident", "f"),
        ("ident", "h"),
        ("-", "-"),
        ("-", "-"),
        ("ident", "i"),
        ("eof", ""),
    ]


def test_bad_characters_and_unterminated_strings_are_diagnostics() -> None:
    tokens, diags = tokenize('a @ b\nLOG "open\né')
    assert [(d.code, d.line, d.column) for d in diags] == [
        ("bad-character", 1, 3),
        ("unterminated-string", 2, 5),
        ("bad-character", 3, 1),
    ]
    assert [(t[0], t[1]) for t in tokens] == [
        ("ident", "a"),
        ("ident", "b"),
        ("LOG", "LOG"),
        ("str", "open"),
        ("eof", ""),
    ]
