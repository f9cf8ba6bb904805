"""Parsing every construct of the language reference into the AST users' tools rely on."""

from __future__ import annotations

from decimal import Decimal

from qkt.dsl import ast, order_actions, parse_strategy, static_quantity
from tests.conftest import SEED

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
"""


def parse(text: str) -> ast.Strategy:
    parsed = parse_strategy(text, "t.qkt")
    assert parsed.diagnostics == (), [d.format() for d in parsed.diagnostics]
    assert parsed.strategy is not None
    return parsed.strategy


def test_seed_parses_to_the_expected_tree() -> None:
    s = parse(SEED)
    assert (s.name, s.version) == ("momentum", 1)
    (stream,) = s.streams
    assert (stream.alias, stream.label, stream.symbol, stream.timeframe) == (
        "eur",
        "EXNESS",
        "EURUSD",
        "1m",
    )
    assert (stream.line, stream.label_column, stream.timeframe_seconds) == (3, 7, 60)
    (rule,) = s.rules
    assert isinstance(rule.condition, ast.Crosses)
    assert rule.condition.direction == "above"
    assert isinstance(rule.condition.left, ast.Call)
    assert rule.condition.left.name == "ema"
    (action,) = rule.actions
    assert isinstance(action, ast.OrderAction)
    assert (action.side, action.alias) == ("buy", "eur")
    assert action.sizing is not None and action.sizing.kind == "qty"
    assert action.sizing.value == ast.Number(Decimal("0.1"), 6, 21)
    assert action.bracket is not None
    sl, tp = action.bracket.stop_loss, action.bracket.take_profit
    assert sl is not None and (sl.mode, sl.value.value) == ("by_pct", Decimal(50))  # type: ignore[union-attr]
    assert tp is not None and (tp.mode, tp.value.value) == ("by_pct", Decimal(100))  # type: ignore[union-attr]


def test_every_construct_of_the_reference_parses() -> None:
    s = parse(EVERYTHING)
    assert s.name == "Kitchen_Sink" and s.version == 3
    assert [(x.alias, x.label, x.timeframe, x.warmup) for x in s.streams] == [
        ("eur", "EXNESS-PERSONAL", "15m", 200),
        ("gold", "exness_2", "4h", None),
        ("btc", "Bybit", "1s", None),
    ]
    assert [(p.name, p.value, p.kind) for p in s.params] == [
        ("fast", Decimal(9), "number"),
        ("ratio", Decimal("-0.5"), "number"),
        ("verbose", True, "bool"),
        ("note", "hello", "string"),
    ]
    assert [let.name for let in s.lets] == ["spread", "mid"]
    assert len(s.rules) == 5
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
    assert [type(a).__name__ for a in s.rules[3].actions] == ["CloseAll", "CloseAll"]
    cond = s.rules[3].condition
    assert isinstance(cond, ast.Binary)
    last = s.rules[4].actions
    assert [type(a).__name__ for a in last] == ["OrderAction", "OrderAction", "Log"]


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    s = parse(
        "STRATEGY p VERSION 1\nSYMBOLS\ne = X:Y EVERY 1m\nRULES\n"
        "WHEN e > 1 OR NOT e > 2 AND e > 3 THEN CLOSE e\n"
    )
    cond = s.rules[0].condition
    assert isinstance(cond, ast.Binary) and cond.op == "or"
    assert isinstance(cond.right, ast.Binary) and cond.right.op == "and"
    assert isinstance(cond.right.left, ast.Not)


def test_arithmetic_precedence_and_unary_minus() -> None:
    s = parse(
        "STRATEGY p VERSION 1\nSYMBOLS\ne = X:Y EVERY 1m\nRULES\n"
        "WHEN e.close - 2 * 3 > -e.open THEN CLOSE e\n"
    )
    cond = s.rules[0].condition
    assert isinstance(cond, ast.Binary) and cond.op == ">"
    assert isinstance(cond.left, ast.Binary) and cond.left.op == "-"
    assert isinstance(cond.left.right, ast.Binary) and cond.left.right.op == "*"
    assert isinstance(cond.right, ast.Unary)


def test_keywords_are_case_insensitive_and_identifiers_are_not() -> None:
    upper = parse(SEED)
    lower = parse(
        SEED.replace("STRATEGY", "strategy").replace("THEN", "Then").replace("PCT", "pct")
    )
    assert upper == lower
    parsed = parse_strategy(SEED.replace("BUY eur", "BUY EUR"), "t.qkt")
    assert [d.code for d in parsed.diagnostics] == ["unknown-alias"]


def test_both_bracket_forms_give_the_same_legs() -> None:
    braced = parse(
        SEED.replace(
            "BRACKET STOP_LOSS BY 50 PCT TAKE_PROFIT BY 100 PCT",
            "BRACKET { TAKE_PROFIT BY 100 PCT, STOP_LOSS BY 50 PCT }",
        )
    )
    bare = parse(SEED)
    a = order_actions(braced)[0].bracket
    b = order_actions(bare)[0].bracket
    assert a is not None and b is not None
    assert a.stop_loss is not None and a.take_profit is not None
    assert b.stop_loss is not None and b.take_profit is not None
    legs_a = (a.stop_loss.mode, a.stop_loss.value, a.take_profit.mode, a.take_profit.value)
    legs_b = (b.stop_loss.mode, b.stop_loss.value, b.take_profit.mode, b.take_profit.value)
    assert [getattr(x, "value", x) for x in legs_a] == [getattr(x, "value", x) for x in legs_b]


def test_a_rule_may_span_lines_and_comments() -> None:
    s = parse(
        "STRATEGY p VERSION 1 -- header\nSYMBOLS\ne = X:Y EVERY 1d # daily\nRULES\n"
        "WHEN\n  e.close\n  > 1 -- still the rule\nTHEN\n  CLOSE e\n"
    )
    assert s.streams[0].timeframe_seconds == 86400
    assert s.rules[0].line == 5


def test_static_quantity() -> None:
    s = parse(
        "STRATEGY q VERSION 1\nSYMBOLS\ne = X:Y EVERY 1m\nPARAM lots = 0.2\nRULES\n"
        "WHEN e > 1 THEN BUY e SIZING lots * 2; SELL e SIZING 0.3; BUY e SIZING 1 PCT OF EQUITY;"
        " SELL e SIZING e.close; BUY e\n"
    )
    actions = order_actions(s)
    assert [static_quantity(s, a) for a in actions] == [
        Decimal("0.4"),
        Decimal("0.3"),
        None,
        None,
        None,
    ]
    assert static_quantity(s, actions[0], {"lots": Decimal("0.05")}) == Decimal("0.10")
