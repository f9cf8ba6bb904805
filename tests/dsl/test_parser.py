"""Parsing every construct of the language reference into the AST users' tools rely on."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from qkt.dsl import ast, order_actions, parse_strategy, parse_strategy_file
from tests.conftest import ROOT, SEED

EVERYTHING = """-- every construct of the reference
# hash comments too
strategy Kitchen_Sink version 3
symbols
  eur = EXNESS-PERSONAL:EURUSD every 15M warmup 200 bars
gold = exness_2:XAUUSD EVERY 4h
btc = Bybit:BTCUSDT EVERY 1s
PARAM fast = 9
PARAM ratio = -0.5
PARAM verbose = TRUE
PARAM note = 'hello'
LET spread = eur.high - eur.low
LET mid = (eur.high + eur.low) / 2
RULES
WHEN ema(eur, fast) CROSSES ABOVE sma(eur.close, 21)
  AND NOT rsi(eur, 14) > 70 OR eur.close BETWEEN 1.0 AND 1.5
THEN BUY eur SIZING 2 PCT OF EQUITY BRACKET { STOP_LOSS BY 1.5 PCT, TAKE_PROFIT AT mid * 1.01 };
     LOG warning "long eur"
when macd(gold, 12, 26, 9) crosses below macd_signal(gold, 12, 26, 9) then
  sell gold sizing 1000 usd bracket stop_loss by 2 take_profit by 4
WHEN POSITION.gold.entry_price > 0 AND POSITION.gold != 0 AND ACCOUNT.equity >= ACCOUNT.balance
THEN CLOSE gold
WHEN gold.volume IN [1, 2, 3 + 1] AND atr(gold, 14) % 2 <> 1 AND -spread < 0 AND btc == btc
THEN CLOSE_ALL; FLATTEN
WHEN bollinger_upper(btc, 20, 2) - bollinger_lower(btc, 20) > stdev(btc, 20) * wma(btc, 5)
  AND highest(btc.high, 10) > lowest(btc.low, 10) AND macd_hist(btc, 3, 10, 4) > 0
  AND verbose = TRUE
THEN BUY btc SIZING 5 PCT OF BALANCE; SELL btc SIZING ratio * -1; LOG "done";
WHEN note IN ['hello', "bye"] AND POSITION.eur.pnl + POSITION.eur.unrealized_pnl > .5
  AND ACCOUNT.realized_pnl + ACCOUNT.unrealized_pnl > -100 AND bollinger_middle(eur, 20) > 0
THEN BUY eur BRACKET TAKE_PROFIT BY 3 STOP_LOSS AT eur.low SIZING 0.01; LOG DEBUG 'dbg';
     LOG warn "w"; LOG error "e"; LOG Info "i"
"""


def parse(text: str) -> ast.Strategy:
    parsed = parse_strategy(text, "t.qkt")
    assert parsed.diagnostics == (), [d.format() for d in parsed.diagnostics]
    assert parsed.ok and parsed.strategy is not None
    return parsed.strategy


def test_seed_parses_to_the_expected_tree() -> None:
    s = parse(SEED)
    assert (s.name, s.version, s.line, s.column) == ("momentum", 1, 1, 1)
    (stream,) = s.streams
    assert stream == ast.Stream("eur", "EXNESS", "EURUSD", "1m", None, 3, 1, 7, 60)
    assert s.stream("eur") is stream and s.stream("usd") is None
    (rule,) = s.rules
    assert (rule.line, rule.column) == (5, 1)
    cond = rule.condition
    assert isinstance(cond, ast.Crosses) and cond.direction == "above"
    assert cond.left == ast.Call(
        "ema", (ast.Name("eur", 5, 10), ast.Number(Decimal(9), 5, 15)), 5, 6
    )
    assert isinstance(cond.right, ast.Call) and cond.right.args[1] == ast.Number(Decimal(21), 5, 41)
    (action,) = rule.actions
    assert isinstance(action, ast.OrderAction)
    assert (action.side, action.alias, action.line, action.column) == ("buy", "eur", 6, 6)
    assert action.sizing == ast.Sizing("qty", ast.Number(Decimal("0.1"), 6, 21), 6, 14)
    assert action.bracket is not None
    assert action.bracket.stop_loss == ast.Leg(
        "stop_loss", "by_pct", ast.Number(Decimal(50), 6, 46), 6, 33
    )
    assert action.bracket.take_profit == ast.Leg(
        "take_profit", "by_pct", ast.Number(Decimal(100), 6, 68), 6, 53
    )


def test_every_construct_of_the_reference_parses() -> None:
    s = parse(EVERYTHING)
    assert s.name == "Kitchen_Sink" and s.version == 3
    assert [(x.alias, x.label, x.symbol, x.timeframe, x.warmup) for x in s.streams] == [
        ("eur", "EXNESS-PERSONAL", "EURUSD", "15m", 200),
        ("gold", "exness_2", "XAUUSD", "4h", None),
        ("btc", "Bybit", "BTCUSDT", "1s", None),
    ]
    assert [(x.line, x.label_column, x.timeframe_seconds) for x in s.streams] == [
        (5, 9, 900),
        (6, 8, 14400),
        (7, 7, 1),
    ]
    assert [(p.name, p.value, p.kind) for p in s.params] == [
        ("fast", Decimal(9), "number"),
        ("ratio", Decimal("-0.5"), "number"),
        ("verbose", True, "bool"),
        ("note", "hello", "string"),
    ]
    assert [let.name for let in s.lets] == ["spread", "mid"]
    assert len(s.rules) == 6
    first = s.rules[0]
    assert isinstance(first.condition, ast.Binary) and first.condition.op == "or"
    buy, log = first.actions
    assert isinstance(buy, ast.OrderAction) and buy.sizing is not None
    assert buy.sizing.kind == "pct_equity"
    assert buy.bracket is not None and buy.bracket.take_profit is not None
    assert buy.bracket.take_profit.mode == "at"
    assert log == ast.Log("warning", "long eur", 18, 6)
    sell = s.rules[1].actions[0]
    assert isinstance(sell, ast.OrderAction) and sell.sizing is not None
    assert (sell.side, sell.sizing.kind) == ("sell", "usd")
    assert sell.bracket is not None and sell.bracket.stop_loss is not None
    assert sell.bracket.stop_loss.mode == "by"
    assert s.rules[2].actions == (ast.Close("gold", 22, 6, 12),)
    assert [type(a).__name__ for a in s.rules[3].actions] == ["CloseAll", "CloseAll"]
    last = s.rules[4].actions
    assert [type(a).__name__ for a in last] == ["OrderAction", "OrderAction", "Log"]
    buy2 = s.rules[5].actions[0]
    assert isinstance(buy2, ast.OrderAction) and buy2.bracket is not None
    assert buy2.sizing is not None and buy2.sizing.value == ast.Number(Decimal("0.01"), 31, 67)
    assert (buy2.bracket.take_profit and buy2.bracket.take_profit.mode) == "by"
    assert (buy2.bracket.stop_loss and buy2.bracket.stop_loss.mode) == "at"
    levels = [a.level for a in s.rules[5].actions if isinstance(a, ast.Log)]
    assert levels == ["debug", "warning", "error", "info"]


def test_operators_are_normalised() -> None:
    s = parse(EVERYTHING)
    # gold.volume IN [...] AND atr(gold, 14) % 2 <> 1 AND -spread < 0 AND btc == btc
    cond = s.rules[3].condition
    assert isinstance(cond, ast.Binary) and cond.op == "and"
    assert isinstance(cond.right, ast.Binary) and cond.right.op == "="
    assert isinstance(cond.left, ast.Binary) and isinstance(cond.left.left, ast.Binary)
    lt = cond.left.right
    assert isinstance(lt, ast.Binary) and lt.op == "<" and isinstance(lt.left, ast.Unary)
    ne = cond.left.left.right
    assert isinstance(ne, ast.Binary) and ne.op == "!="
    assert isinstance(ne.left, ast.Binary) and ne.left.op == "%"
    members = cond.left.left.left
    assert isinstance(members, ast.In) and len(members.options) == 3
    assert isinstance(members.value, ast.Field) and members.value.field == "volume"


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    s = parse(
        "STRATEGY p VERSION 1\nSYMBOLS\ne = X:Y EVERY 1m\nRULES\n"
        "WHEN e > 1 OR NOT e > 2 AND e > 3 THEN CLOSE e\n"
    )
    cond = s.rules[0].condition
    assert isinstance(cond, ast.Binary) and cond.op == "or"
    assert isinstance(cond.right, ast.Binary) and cond.right.op == "and"
    assert isinstance(cond.right.left, ast.Not)
    assert isinstance(cond.right.left.operand, ast.Binary) and cond.right.left.operand.op == ">"


def test_between_takes_its_and_before_the_logical_and() -> None:
    s = parse(
        "STRATEGY p VERSION 1\nSYMBOLS\ne = X:Y EVERY 1m\nRULES\n"
        "WHEN rsi(e, 14) BETWEEN 30 AND 70 AND e > 1 THEN CLOSE e\n"
    )
    cond = s.rules[0].condition
    assert isinstance(cond, ast.Binary) and cond.op == "and"
    assert isinstance(cond.left, ast.Between)
    assert cond.left.low == ast.Number(Decimal(30), 5, 25)
    assert cond.left.high == ast.Number(Decimal(70), 5, 32)


def test_arithmetic_precedence_and_unary_minus() -> None:
    s = parse(
        "STRATEGY p VERSION 1\nSYMBOLS\ne = X:Y EVERY 1m\nRULES\n"
        "WHEN e.close - 2 * 3 - 1 > -e.open + -2 THEN CLOSE e\n"
    )
    cond = s.rules[0].condition
    assert isinstance(cond, ast.Binary) and cond.op == ">"
    left = cond.left  # (e.close - (2 * 3)) - 1: left-associative
    assert isinstance(left, ast.Binary) and left.op == "-"
    assert left.right == ast.Number(Decimal(1), 5, 24)
    assert isinstance(left.left, ast.Binary) and isinstance(left.left.right, ast.Binary)
    assert left.left.right.op == "*"
    right = cond.right
    assert isinstance(right, ast.Binary) and right.op == "+"
    assert isinstance(right.left, ast.Unary)
    assert right.right == ast.Number(Decimal(-2), 5, 38)  # a negative literal folds


def test_keywords_are_case_insensitive_and_identifiers_are_not() -> None:
    upper = parse(SEED)
    lower = parse(
        SEED.replace("STRATEGY", "strategy")
        .replace("THEN", "Then")
        .replace("PCT", "pct")
        .replace("SYMBOLS", "Symbols")
        .replace("BRACKET", "bracket")
    )
    assert upper == lower
    parsed = parse_strategy(SEED.replace("BUY eur", "BUY EUR"), "t.qkt")
    assert [d.code for d in parsed.diagnostics] == ["unknown-alias"]


def test_indicator_and_field_names_are_case_insensitive() -> None:
    s = parse(
        "STRATEGY p VERSION 1\nSYMBOLS\ne = X:Y EVERY 1m\nRULES\n"
        "WHEN EMA(e, 9) > e.CLOSE AND ACCOUNT.Equity > 0 THEN CLOSE e\n"
    )
    cond = s.rules[0].condition
    assert isinstance(cond, ast.Binary) and isinstance(cond.left, ast.Binary)
    assert isinstance(cond.left.left, ast.Call) and cond.left.left.name == "ema"
    assert isinstance(cond.left.right, ast.Field) and cond.left.right.field == "close"
    assert isinstance(cond.right, ast.Binary) and cond.right.left == ast.AccountRef(
        "equity", 5, 30, 38
    )


def test_both_bracket_forms_give_the_same_legs() -> None:
    braced = parse(
        SEED.replace(
            "BRACKET STOP_LOSS BY 50 PCT TAKE_PROFIT BY 100 PCT",
            "BRACKET { TAKE_PROFIT BY 100 PCT, STOP_LOSS BY 50 PCT }",
        )
    )
    no_comma = parse(SEED.replace("BY 50 PCT TAKE", "BY 50 PCT, TAKE"))
    brackets = [order_actions(s)[0].bracket for s in (parse(SEED), braced, no_comma)]
    legs = []
    for b in brackets:
        assert b is not None and b.stop_loss is not None and b.take_profit is not None
        legs.append((b.stop_loss.mode, b.stop_loss.value, b.take_profit.mode, b.take_profit.value))
    values = [[getattr(x, "value", x) for x in leg] for leg in legs]
    assert values[0] == values[1] == values[2] == ["by_pct", Decimal(50), "by_pct", Decimal(100)]


def test_sizing_after_the_bracket_and_single_legs() -> None:
    s = parse(
        SEED.replace(
            "SIZING 0.1 BRACKET STOP_LOSS BY 50 PCT TAKE_PROFIT BY 100 PCT",
            "BRACKET { STOP_LOSS BY 0.002 } SIZING 0.1",
        )
    )
    (action,) = order_actions(s)
    assert action.sizing is not None and action.sizing.kind == "qty"
    assert action.bracket is not None and action.bracket.take_profit is None
    assert action.bracket.stop_loss is not None and action.bracket.stop_loss.mode == "by"


def test_a_rule_may_span_lines_and_comments() -> None:
    s = parse(
        "STRATEGY p VERSION 1 -- header\nSYMBOLS\ne = X:Y EVERY 1d # daily\nRULES\n"
        "WHEN\n  e.close\n  > 1 -- still the rule\nTHEN\n  CLOSE e\n"
        "# WHEN e > 2 THEN CLOSE e  (commented out)\n"
    )
    assert s.streams[0].timeframe_seconds == 86400
    assert len(s.rules) == 1 and s.rules[0].line == 5


def test_windows_line_endings_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "crlf.qkt"
    path.write_bytes(b"\xef\xbb\xbf" + SEED.replace("\n", "\r\n").encode())
    parsed = parse_strategy_file(path)
    assert parsed.ok, [d.format() for d in parsed.diagnostics]
    assert parsed.strategy == parse(SEED)


def test_declarations_may_follow_the_rules_and_lets_use_later_lets() -> None:
    s = parse(
        "STRATEGY p VERSION 1\nSYMBOLS\ne = X:Y EVERY 1m\nLET a = b * 2\nRULES\n"
        "WHEN a > limit THEN CLOSE e\nLET b = e.close\nPARAM limit = 3\n"
    )
    assert [x.name for x in s.lets] == ["a", "b"] and s.params[0].name == "limit"


@pytest.mark.parametrize(
    ("written", "normalised", "seconds"),
    [("1s", "1s", 1), ("15M", "15m", 900), ("4h", "4h", 14400), ("1D", "1d", 86400)],
)
def test_timeframes(written: str, normalised: str, seconds: int) -> None:
    s = parse(SEED.replace("EVERY 1m", f"EVERY {written}"))
    assert (s.streams[0].timeframe, s.streams[0].timeframe_seconds) == (normalised, seconds)


def test_numbers_are_exact_decimals() -> None:
    s = parse(
        "STRATEGY p VERSION 1\nSYMBOLS\ne = X:Y EVERY 1m\nPARAM tiny = 0.1000000000000000055511\n"
        "RULES\nWHEN e > 0.1 THEN BUY e SIZING 0.3\n"
    )
    assert s.params[0].value == Decimal("0.1000000000000000055511")
    assert order_actions(s)[0].sizing == ast.Sizing("qty", ast.Number(Decimal("0.3"), 6, 32), 6, 25)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.qkt")), ids=lambda p: p.name)
def test_examples_validate_without_diagnostics(path: Path) -> None:
    parsed = parse_strategy_file(path)
    assert parsed.diagnostics == (), [d.format() for d in parsed.diagnostics]
    assert parsed.strategy is not None and parsed.strategy.rules


def test_the_momentum_example_is_the_seed() -> None:
    assert (ROOT / "examples" / "momentum.qkt").read_text(encoding="utf-8") == SEED
