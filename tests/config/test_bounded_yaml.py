"""Config and portfolio YAML cannot make qkt do unbounded work: aliases, nesting, extends chains."""

from __future__ import annotations

from pathlib import Path

import pytest

from qkt.portfolio import load_portfolio
from qkt.yamlsrc import MAX_DEPTH, MAX_VALUES, load_yaml
from tests.config.conftest import Loader, Raiser

LAUGHS = """a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.timeout(20)
def test_billion_laughs_in_a_config_is_a_positioned_error(raises: Raiser) -> None:
    (d,) = raises("paper: {starting_balance: 10}\n" + LAUGHS)
    assert (d.code, d.path, d.line, d.column) == ("yaml-too-large", "qkt.config.yaml", 7, 8)
    assert "`*e`" in d.message and f"{MAX_VALUES:,}" in d.message


@pytest.mark.timeout(20)
def test_billion_laughs_in_a_portfolio_is_a_positioned_error(tmp_path: Path) -> None:
    path = tmp_path / "book.yaml"
    path.write_text("name: book\nstrategies:\n  - file: a.qkt\n" + LAUGHS.replace("a:", "x:", 1))
    portfolio, diags = load_portfolio(path)
    assert portfolio is None
    assert [(d.code, d.path, d.line, d.column) for d in diags] == [
        ("yaml-too-large", str(path), 9, 8)
    ]


@pytest.mark.timeout(20)
def test_merge_keys_of_a_repeated_mapping_are_bounded_too() -> None:
    text = "base: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}\n"
    for n in range(1, 12):
        text += f"m{n}: &m{n} {{x: [*m{n - 1}, *m{n - 1}, *m{n - 1}], <<: *m{n - 1}}}\n"
    doc, diags = load_yaml(text, "m.yaml")
    assert doc is None
    assert [d.code for d in diags] == ["yaml-too-large"]
    assert diags[0].line is not None


def test_an_alias_that_contains_itself_is_refused() -> None:
    doc, diags = load_yaml("a: &a [1, *a]\n", "r.yaml")
    assert doc is None
    assert [(d.code, d.line, d.column) for d in diags] == [("yaml-recursive-alias", 1, 11)]


def test_aliases_within_the_budget_still_work(load: Loader) -> None:
    config = load(
        "brokers:\n"
        "  lab: &lab\n    type: mt5\n    gateway_url: http://localhost:5009\n    magic: 7\n"
        "  lab2:\n    <<: *lab\n    magic: 8\n"
    )
    assert (config.profiles["lab2"].values["magic"], config.profiles["lab"].values["magic"]) == (
        8,
        7,
    )


@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_nesting_10000_deep_is_a_positioned_error(opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    inner = "1" if opening != "[" else ""
    doc, diags = load_yaml("top:\n  x: " + opening * 10_000 + inner + closing * 10_000, "n.yaml")
    assert doc is None
    (d,) = diags
    assert (d.code, d.path, d.line) == ("yaml-too-deep", "n.yaml", 2)
    assert d.column is not None and f"{MAX_DEPTH}" in d.message


def test_nesting_within_the_limit_is_read() -> None:
    doc, diags = load_yaml("x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1), "n.yaml")
    assert diags == [] and doc is not None


def test_a_collection_as_a_key_is_a_positioned_error() -> None:
    _, diags = load_yaml("? [" + "[" * 50 + "]" * 50 + "]\n: 1\n", "k.yaml")
    assert [(d.code, d.line) for d in diags] == [("yaml-bad-key", 1)]
    _, diags = load_yaml("? [" + "[" * 5000 + "]" * 5000 + "]\n: 1\n", "k.yaml")
    assert [(d.code, d.line) for d in diags] == [("yaml-too-deep", 1)]


# ------------------------------------------------------------ extends chains
def chain(n: int, last: str = "exness") -> str:
    lines = ["brokers:"]
    for i in range(n):
        parent = f"p{i + 1}" if i + 1 < n else last
        lines.append(f"  p{i}:\n    extends: {parent}\n    magic: {1000 + i}")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(60)
def test_an_extends_chain_5000_deep_is_refused_at_the_limit(raises: Raiser) -> None:
    from qkt.config.resolve import MAX_EXTENDS

    diags = raises(chain(5000))
    assert [(d.code, d.path) for d in diags] == [("extends-too-deep", "qkt.config.yaml")]
    (d,) = diags
    too_deep = 5000 - MAX_EXTENDS - 1  # the first profile more than MAX_EXTENDS extends deep
    assert d.line == 3 * too_deep + 3
    assert f"`p{too_deep}`" in d.message and str(MAX_EXTENDS) in d.message


def test_an_extends_chain_at_the_limit_resolves(load: Loader) -> None:
    from qkt.config.resolve import MAX_EXTENDS

    config = load(chain(MAX_EXTENDS))
    assert config.profiles["p0"].values["gateway_url"] == "http://localhost:5001"
    assert config.profiles["p0"].sources["gateway_url"] == "extends:exness"
    assert config.profiles["p0"].values["magic"] == 1000


def test_a_long_extends_cycle_is_named_without_recursion(raises: Raiser) -> None:
    diags = raises(chain(3000, last="p0"))
    assert [d.code for d in diags] == ["extends-cycle"]
    assert diags[0].message.startswith("`extends` loops: p0 -> p1 -> p2 -> ")
