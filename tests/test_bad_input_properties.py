"""Properties of everything ``qkt run`` reads: whatever a strategy, a PARAM override, a replay file,
a configuration or a portfolio holds, qkt answers with diagnostics or events, in bounded time,
never an exception. Random text through the parser is tests/dsl/test_fuzz.py; random YAML through
the configuration loader is tests/config/test_fuzz.py. ``scripts/fuzz.py`` mutates the same
inputs for longer."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from qkt.brokers.registry import BrokerRegistry
from qkt.config import load_config
from qkt.diagnostics import Diagnostic
from qkt.dsl import parse_strategy
from qkt.dsl.ast import Strategy
from qkt.engine.events import OrderFilled, OrderRejected
from qkt.errors import ConfigError, QktError
from qkt.feeds.replay import ReplayError, ReplaySource
from qkt.feeds.replaycheck import check_replay
from qkt.params import Override, apply_params, cli_override
from qkt.session import LiveSession
from qkt.validation import Validator
from tests.config.test_fuzz import tree
from tests.conftest import ROOT, SEED
from tests.dsl.test_parser import EVERYTHING

# A run takes tens of milliseconds: five seconds is a hang even on a busy machine.
BOUNDED = settings(
    max_examples=60,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
EXAMPLES = {
    p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").glob("*.qkt"))
}
STRATEGIES = [SEED, EVERYTHING, *EXAMPLES.values()]
WITH_PARAMS = [t for t in STRATEGIES if "PARAM" in t]
EURUSD = ROOT / "examples" / "data" / "eurusd-1m.csv"
NUMBER = re.compile(r"(?<![A-Za-z_0-9.])[0-9]+(?:\.[0-9]+)?(?![A-Za-z_0-9])")
NUMBERS = st.one_of(
    st.sampled_from(["0", "-1", "0.00000001", "1000000000", "9" * 40, "(1/0)", "2.5", ".5"]),
    st.integers(-(10**13), 10**13).map(str),
    st.decimals(min_value=-(10**9), max_value=10**9, places=6).map(lambda d: format(d, "f")),
)


@pytest.fixture(scope="module")
def registry() -> BrokerRegistry:
    config = load_config(ROOT / "qkt.config.yaml", env={"QKT_NO_CACHE": "1"}, cwd=ROOT)
    return BrokerRegistry.from_config(config)


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with EURUSD.open(encoding="utf-8") as fh:
        rows = "".join(next(fh) for _ in range(301))
    path = tmp_path_factory.mktemp("replay") / "eurusd.csv"
    path.write_text(rows, encoding="utf-8")
    return path


def clean(diags: Any) -> list[str]:
    """Diagnostics a user can read: a code and a message, never an internal error."""
    codes = []
    for d in diags:
        assert isinstance(d, Diagnostic)
        assert d.code and d.message
        assert d.code != "internal-error", d.message
        assert d.line is None or d.line >= 1
        codes.append(d.code)
    return codes


def run_session(
    strategy: Strategy, registry: BrokerRegistry, replay: Path, params: Any = None
) -> None:
    """A paper session over ``replay``: refused with diagnostics, or events the summary counts."""
    events: list[Any] = []
    try:
        session = LiveSession(
            strategy, registry, params=params, paper_only=True, on_event=events.append
        )
    except QktError as exc:
        assert clean(exc.diagnostics)
        event("session refused")
        return
    summary = session.run(ReplaySource(replay))
    event("session traded" if summary.fills else "session ran")
    assert summary.fills == sum(isinstance(e, OrderFilled) for e in events)
    assert summary.rejected == sum(isinstance(e, OrderRejected) for e in events)
    assert summary.final_equity.is_finite() and summary.realized_pnl.is_finite()


# ------------------------------------------------------------ qkt run on mutated strategies


@BOUNDED
@given(st.sampled_from(STRATEGIES), st.data())
def test_a_mutated_strategy_runs_or_is_refused_with_diagnostics(
    registry: BrokerRegistry, replay: Path, text: str, data: st.DataObject
) -> None:
    spans = [m.span() for m in NUMBER.finditer(text)]
    for _ in range(data.draw(st.integers(1, 4))):
        a, b = data.draw(st.sampled_from(spans))
        text = text[:a] + data.draw(NUMBERS) + text[b:]
        spans = [m.span() for m in NUMBER.finditer(text)]
    lines = text.splitlines(keepends=True)
    if data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[data.draw(st.integers(0, len(lines) - 1))])
    parsed = parse_strategy("".join(lines), "m.qkt")
    clean(parsed.diagnostics)
    if parsed.ok and parsed.strategy is not None:
        run_session(parsed.strategy, registry, replay)


# ------------------------------------------------------------ parameter overrides

VALUES = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@BOUNDED
@given(st.sampled_from(WITH_PARAMS), st.data())
def test_param_overrides_are_checked_where_they_enter(
    registry: BrokerRegistry, replay: Path, text: str, data: st.DataObject
) -> None:
    parsed = parse_strategy(text, "p.qkt")
    assert parsed.strategy is not None
    declared = [p.name for p in parsed.strategy.params]
    names = st.one_of(st.sampled_from(declared), st.text(max_size=8))
    overrides = [
        Override(name, value, "p.yaml:3", "p.yaml", 3, 7)
        for name, value in data.draw(st.lists(st.tuples(names, VALUES), max_size=3))
    ]
    for item in data.draw(st.lists(st.text(max_size=16), max_size=2)):
        override = cli_override(item)
        if override is not None:  # a malformed item is the command line's error (exit 2)
            overrides.append(override)
    params, problems = apply_params(parsed.strategy, overrides, path="p.qkt")
    codes = clean(problems)
    assert all(d.severity == "error" for d in problems)
    if overrides and {o.name for o in overrides} - set(declared):
        assert "unknown-param" in codes
    if not problems:
        run_session(parsed.strategy, registry, replay, params)


# ------------------------------------------------------------ replay files

HEADERS = [
    "time,open,high,low,close,volume",
    "time,open,high,low,close",
    "time,open,high,low,close,volume,symbol",
    "time,bid,ask",
    "time,bid,ask,volume,symbol",
    "time,open,high,low,close,open",
    "close,time,low,open,high",
]
TIMES = st.one_of(
    st.datetimes().map(lambda t: t.isoformat()),
    st.integers(-(10**16), 10**16).map(str),
    st.sampled_from(["2026-03-02T00:00:00Z", "1772409600", "", "9" * 30, "x"]),
)
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(min_value=0, max_value=10**6, places=5).map(str),
    st.sampled_from(["EURUSD", "XAUUSD", "", "1,2", '"1"', " 1 "]),
    st.text(max_size=5),
)


@st.composite
def replay_text(draw: st.DrawFn) -> str:
    """Random rows under a random header, or real rows with a few cells changed."""
    if draw(st.booleans()):
        header = draw(st.sampled_from(HEADERS))
        rows = draw(
            st.lists(st.tuples(TIMES, st.lists(CELLS, min_size=1, max_size=7)), max_size=12)
        )
        lines = [header, *(",".join([when, *cells]) for when, cells in rows)]
    else:
        lines = EURUSD.read_text(encoding="utf-8").splitlines()[: draw(st.integers(2, 80))]
        for _ in range(draw(st.integers(0, 3))):
            i = draw(st.integers(0, len(lines) - 1))
            cells = lines[i].split(",")
            j = draw(st.integers(0, len(cells) - 1))
            cells[j] = draw(TIMES if j == 0 else CELLS)
            lines[i] = ",".join(cells)
    return ("\ufeff" if draw(st.booleans()) else "") + "".join(f"{line}\n" for line in lines)


@BOUNDED
@given(replay_text())
def test_a_replay_is_judged_whole_before_its_first_row(
    registry: BrokerRegistry, tmp_path: Path, text: str
) -> None:
    path = tmp_path / "r.csv"
    path.write_text(text, encoding="utf-8")
    report = check_replay(path, ["EURUSD"])
    clean(report.diagnostics)
    for d in report.diagnostics:
        if d.is_error:
            assert d.path == str(path) and d.line is not None
    read: list[Any] = []
    try:
        for row in ReplaySource(path):
            read.append(row)
    except ReplayError as exc:
        assert not report.ok  # a file the check passed replays to its end
        assert read == []  # a file with a mistake anywhere gives no row at all
        clean(exc.diagnostics)
    else:
        assert report.ok, [d.format() for d in report.diagnostics]
        parsed = parse_strategy(SEED, "s.qkt")
        assert parsed.strategy is not None
        run_session(parsed.strategy, registry, path)


@BOUNDED
@given(st.text(max_size=200))
def test_any_text_as_a_replay_is_judged(tmp_path: Path, text: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    report = check_replay(path, ["EURUSD"])
    clean(report.diagnostics)
    try:
        ReplaySource(path).check(["EURUSD"])
    except ReplayError as exc:
        clean(exc.diagnostics)


# ------------------------------------------------------------ configuration YAML, into a run

PAPER_NUMBERS = st.one_of(
    st.decimals(min_value=0, max_value=10**5, places=3).map(str),
    st.integers(-5, 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1e300", "1e-300", "0", "-1", "x", "${RATE}", "100000"]),
)


@BOUNDED
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "slippage_bps": PAPER_NUMBERS,
            "commission_bps": PAPER_NUMBERS,
            "starting_balance": PAPER_NUMBERS,
            "contract_sizes": st.dictionaries(st.sampled_from(["EURUSD", "X"]), PAPER_NUMBERS),
            "quotes_from": st.sampled_from(["exness", "sim", "nope", ""]),
        },
    ),
    st.one_of(PAPER_NUMBERS, st.none()),
)
def test_a_paper_profile_of_any_numbers_loads_or_is_refused_and_trades(
    tmp_path: Path, replay: Path, fields: dict[str, Any], balance: Any
) -> None:
    doc: dict[str, Any] = {"brokers": {"sim": {"type": "paper", **fields}}}
    if balance is not None:
        doc["paper"] = {"starting_balance": balance}
    path = tmp_path / "qkt.config.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    try:
        config = load_config(path, env={"QKT_NO_CACHE": "1", "RATE": "2"}, cwd=tmp_path)
    except ConfigError as exc:
        assert clean(exc.diagnostics)
        return
    parsed = parse_strategy(SEED.replace("EXNESS:", "SIM:"), "s.qkt")
    assert parsed.strategy is not None
    run_session(parsed.strategy, BrokerRegistry.from_config(config), replay)


# ------------------------------------------------------------ portfolio YAML

ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "file": st.one_of(st.sampled_from(sorted(EXAMPLES)), st.text(max_size=8), tree),
        "as": st.one_of(st.sampled_from(["a", "b-1", "Bad", ""]), tree),
        "params": st.one_of(
            st.dictionaries(st.sampled_from(["lookback", "lots", "x"]), tree), tree
        ),
        "colour": tree,
    },
)


@BOUNDED
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(st.sampled_from(["book", "Book", ""]), tree),
            "strict_brokers": tree,
            "allow_shared_symbols": tree,
            "strategies": st.one_of(st.lists(ENTRY, max_size=4), tree),
        },
    )
)
def test_any_portfolio_document_validates_to_diagnostics(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    for name, text in EXAMPLES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    config = load_config(ROOT / "qkt.config.yaml", env={"QKT_NO_CACHE": "1"}, cwd=ROOT)
    report = Validator(config, env={}).portfolio(path)
    clean(report.all_diagnostics())
    report.to_json()
    for d in report.diagnostics:
        if d.is_error:
            assert d.path == str(path), d.format()


def test_the_replay_these_properties_use_trades(registry: BrokerRegistry, replay: Path) -> None:
    # the runs above trade: the bundled example fills orders over these 300 rows
    parsed = parse_strategy(EXAMPLES["momentum.qkt"], "momentum.qkt")
    assert parsed.strategy is not None
    summary = LiveSession(parsed.strategy, registry, paper_only=True).run(ReplaySource(replay))
    assert summary.fills > 0 and summary.final_equity > Decimal(0)
