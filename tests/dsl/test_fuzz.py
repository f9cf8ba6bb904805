"""No input makes the parser raise: random text, bytes, truncations and mutations give diagnostics."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.corpus import strategy as corpus_strategy
from qkt.dsl import order_actions, parse_strategy, static_quantity
from qkt.dsl.lexer import tokenize
from tests.conftest import ROOT, SEED
from tests.dsl.test_parser import EVERYTHING

EXAMPLES = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").glob("*.qkt"))]
VALID = [SEED, EVERYTHING, *EXAMPLES, *(corpus_strategy(i) for i in range(20))]
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(text: str) -> None:
    parsed = parse_strategy(text, "fuzz.qkt")
    lines = text.count("\n") + 1
    for d in parsed.diagnostics:
        assert d.code != "internal-error", d.message
        assert d.severity == "error" or d.code == "too-many-errors"
        assert d.path == "fuzz.qkt"
        if d.line is not None:
            assert 1 <= d.line <= lines
            assert d.column is not None and d.column >= 1
    if parsed.ok:
        assert parsed.strategy is not None
    if parsed.strategy is not None:  # what routing does with any strategy that parsed
        for action in order_actions(parsed.strategy):
            static_quantity(parsed.strategy, action)


@FAST
@given(st.text())
def test_random_text(text: str) -> None:
    check(text)


@FAST
@given(st.binary())
def test_random_bytes(data: bytes) -> None:
    check(data.decode("utf-8", errors="replace"))


def test_truncations_at_every_offset() -> None:
    for text in (SEED, EVERYTHING, *EXAMPLES, corpus_strategy(7)):
        for cut in range(len(text) + 1):
            check(text[:cut])


@FAST
@given(st.sampled_from(VALID), st.data())
def test_truncations_and_splices(text: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(text)))
    other = data.draw(st.sampled_from(VALID))
    check(text[:cut])
    check(text[:cut] + other[data.draw(st.integers(0, len(other))) :])


KEYWORDISH = [
    "WHEN",
    "THEN",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ";",
    ".",
    "-",
    "BRACKET",
    "SIZING",
    "PCT",
    "NOT",
    "AND",
    "CROSSES",
    "BETWEEN",
    "IN",
    "=",
    "RULES",
    "SYMBOLS",
    ":",
    '"',
    "1m",
]


@FAST
@given(st.sampled_from(VALID), st.data())
def test_token_mutations(text: str, data: st.DataObject) -> None:
    tokens, _ = tokenize(text)
    pieces = [text[t[4] : t[4] + max(1, len(t[1]))] for t in tokens[:-1]]
    for _ in range(data.draw(st.integers(1, 4))):
        if not pieces:
            break
        i = data.draw(st.integers(0, len(pieces) - 1))
        op = data.draw(st.sampled_from(["drop", "dup", "swap", "insert"]))
        if op == "drop":
            pieces.pop(i)
        elif op == "dup":
            pieces.insert(i, pieces[i])
        elif op == "swap" and i + 1 < len(pieces):
            pieces[i], pieces[i + 1] = pieces[i + 1], pieces[i]
        else:
            pieces.insert(i, data.draw(st.sampled_from(KEYWORDISH)))
    check(" ".join(pieces))


def test_deep_nesting_is_a_diagnostic_not_a_crash() -> None:
    deep = "STRATEGY d VERSION 1\nSYMBOLS\ne = X:Y EVERY 1m\nRULES\nWHEN " + "(" * 5000 + "e"
    parsed = parse_strategy(deep + ")" * 5000 + " > 1 THEN CLOSE e\n", "deep.qkt")
    assert "too-deep" in [d.code for d in parsed.diagnostics]
    signs = deep.replace("(" * 5000, "NOT " * 5000 + "- " * 5000)
    parsed = parse_strategy(signs + " > 1 THEN CLOSE e\n", "n.qkt")
    assert [d.code for d in parsed.diagnostics] == ["too-deep"]
    chain = deep.replace("(" * 5000, "e + " * 20000)
    parsed = parse_strategy(chain + " > 1 THEN CLOSE e\n", "c.qkt")
    assert [d.code for d in parsed.diagnostics] == ["too-deep"]


def test_corpus_is_valid() -> None:
    for i in range(200):
        parsed = parse_strategy(corpus_strategy(i), f"gen_{i}.qkt")
        assert parsed.ok, [d.format() for d in parsed.diagnostics]
