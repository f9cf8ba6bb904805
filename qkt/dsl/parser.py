"""Recursive-descent parser for `.qkt` with error recovery.

On a syntax error the parser records a diagnostic and skips to the start of the next statement
(``WHEN``, ``PARAM``, ``LET``, ``RULES``, ``SYMBOLS`` or a stream line), so one run reports every
independent mistake in a file. Expressions use precedence climbing; nesting is capped so no input
can exhaust the Python stack.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal, NoReturn

from qkt.diagnostics import Diagnostic, did_you_mean, error
from qkt.dsl import ast
from qkt.dsl.lexer import KEYWORDS, Token, describe

MAX_DIAGNOSTICS = 50
MAX_DEPTH = 64
STATEMENT_KEYWORDS = ("STRATEGY", "SYMBOLS", "PARAM", "LET", "RULES", "WHEN")
ACTION_KEYWORDS = ("BUY", "SELL", "CLOSE", "CLOSE_ALL", "FLATTEN", "LOG")
LOG_LEVELS = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
}
_SYNC = frozenset({"SYMBOLS", "PARAM", "LET", "RULES", "WHEN"})
_STREAM_RE = re.compile(r"([A-Za-z0-9_-]+)[ \t]*:[ \t]*([A-Za-z0-9._-]+)")
_TF_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CMP_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "=", "==": "=", "!=": "!=", "<>": "!="}


class _Fail(Exception):
    """Unwinds to the statement loop after a syntax error has been recorded."""


class Parser:
    def __init__(self, text: str, tokens: list[Token], path: str | None) -> None:
        self.text = text
        self.toks = tokens
        self.i = 0
        self.path = path
        self.diags: list[Diagnostic] = []
        self.depth = 0
        self.in_symbols = False

    # ------------------------------------------------------------ helpers
    def fail(
        self, code: str, message: str, tok: Token | None = None, hint: str | None = None
    ) -> NoReturn:
        self.report(code, message, tok, hint)
        raise _Fail

    def report(
        self, code: str, message: str, tok: Token | None = None, hint: str | None = None
    ) -> None:
        t = tok or self.toks[self.i]
        self.diags.append(error(code, message, path=self.path, line=t[2], column=t[3], hint=hint))

    def expected(self, what: str, keyword: str | None = None) -> NoReturn:
        tok = self.toks[self.i]
        hint = None
        if keyword is not None and tok[0] in ("ident", "kw"):
            hint = did_you_mean(tok[1], [keyword])
        self.fail("syntax", f"expected {what}, found {describe(tok)}", tok, hint)

    def at_kw(self, keyword: str) -> bool:
        tok = self.toks[self.i]
        return tok[0] == "kw" and tok[1] == keyword

    def at_op(self, op: str) -> bool:
        tok = self.toks[self.i]
        return tok[0] == "op" and tok[1] == op

    def take_kw(self, keyword: str, what: str | None = None) -> Token:
        tok = self.toks[self.i]
        if tok[0] == "kw" and tok[1] == keyword:
            self.i += 1
            return tok
        self.expected(what or f"`{keyword}`", keyword)

    def take_op(self, op: str) -> Token:
        tok = self.toks[self.i]
        if tok[0] == "op" and tok[1] == op:
            self.i += 1
            return tok
        self.expected(f"`{op}`")

    def take_ident(self, what: str) -> Token:
        tok = self.toks[self.i]
        if tok[0] == "ident":
            self.i += 1
            return tok
        if tok[0] == "kw":
            self.fail("syntax", f"expected {what}, found keyword `{tok[1]}` (a reserved word)", tok)
        self.expected(what)

    def sync(self) -> None:
        """Skip to the next token that can start a statement."""
        toks = self.toks
        while True:
            tok = toks[self.i]
            if tok[0] == "eof" or (tok[0] == "kw" and tok[1] in _SYNC):
                return
            if tok[0] == "ident" and toks[self.i + 1][0:2] == ("op", "=") and self.in_symbols:
                return
            self.i += 1

    # ------------------------------------------------------------ file
    def parse(self) -> ast.Strategy | None:
        self.in_symbols = False
        name, version, line, column = "", 0, 1, 1
        streams: list[ast.Stream] = []
        params: list[ast.Param] = []
        lets: list[ast.Let] = []
        rules: list[ast.Rule] = []
        seen_rules = False
        try:
            name, version, line, column = self.header()
        except _Fail:
            self.sync()
        toks = self.toks
        while toks[self.i][0] != "eof" and len(self.diags) < MAX_DIAGNOSTICS:
            tok = toks[self.i]
            start = self.i
            try:
                if tok[0] == "kw":
                    word = tok[1]
                    if word == "SYMBOLS":
                        self.i += 1
                        self.in_symbols = True
                    elif word == "PARAM":
                        self.in_symbols = False
                        params.append(self.param())
                    elif word == "LET":
                        self.in_symbols = False
                        lets.append(self.let())
                    elif word == "RULES":
                        self.i += 1
                        self.in_symbols = False
                        seen_rules = True
                    elif word == "WHEN":
                        self.in_symbols = False
                        if not seen_rules:
                            self.report(
                                "missing-rules", "`WHEN` before `RULES`: rules follow RULES"
                            )
                            seen_rules = True
                        rules.append(self.rule())
                    else:
                        self.unexpected(tok)
                elif self.in_symbols and tok[0] == "ident" and toks[self.i + 1][0:2] == ("op", "="):
                    streams.append(self.stream())
                else:
                    self.unexpected(tok)
            except _Fail:
                if self.i == start:
                    self.i += 1  # always make progress past the token that failed
                self.sync()
        if not seen_rules and len(self.diags) < MAX_DIAGNOSTICS:
            eof = toks[-1]
            self.report("missing-rules", "the strategy has no `RULES` section", eof)
        if not name and not streams and not rules:
            return None
        return ast.Strategy(
            name, version, tuple(streams), tuple(params), tuple(lets), tuple(rules), line, column
        )

    def unexpected(self, tok: Token) -> NoReturn:
        hint = None
        if tok[0] in ("ident", "kw"):
            hint = did_you_mean(tok[1], [*STATEMENT_KEYWORDS, "THEN", *ACTION_KEYWORDS])
        if self.in_symbols and tok[0] == "ident":
            self.fail(
                "syntax",
                f"expected a stream `alias = LABEL:SYMBOL EVERY 1m`, found `{tok[1]}`",
                tok,
                hint,
            )
        self.fail("unexpected-token", f"unexpected {describe(tok)}", tok, hint)

    def header(self) -> tuple[str, int, int, int]:
        tok = self.toks[self.i]
        if not (tok[0] == "kw" and tok[1] == "STRATEGY"):
            hint = did_you_mean(tok[1], ["STRATEGY"]) if tok[0] in ("ident", "kw") else None
            self.fail(
                "missing-header",
                f"a strategy starts with `STRATEGY name VERSION n`, found {describe(tok)}",
                tok,
                hint,
            )
        self.i += 1
        name = self.take_ident("the strategy name")
        self.take_kw("VERSION")
        vtok = self.toks[self.i]
        if vtok[0] != "num" or not vtok[1].isdigit() or int(vtok[1]) < 1:
            self.fail(
                "bad-version", f"VERSION must be a positive integer, found {describe(vtok)}", vtok
            )
        self.i += 1
        return name[1], int(vtok[1]), tok[2], tok[3]

    # ------------------------------------------------------------ statements
    def stream(self) -> ast.Stream:
        alias = self.toks[self.i]
        self.i += 2  # alias '='
        start = self.toks[self.i]
        m = _STREAM_RE.match(self.text, start[4])
        if m is None or start[0] == "eof":
            self.fail("syntax", "expected `LABEL:SYMBOL` (e.g. EXNESS:EURUSD)", start)
        end = m.end()
        while self.toks[self.i][4] < end and self.toks[self.i][0] != "eof":
            self.i += 1
        label_col = start[3]
        self.take_kw("EVERY")
        tf = self.toks[self.i]
        if tf[0] != "tf":
            hint = "timeframes are a number and a unit: 1s, 1m, 15m, 4h, 1d"
            self.fail("bad-timeframe", f"expected a timeframe, found {describe(tf)}", tf, hint)
        self.i += 1
        count, unit = int(tf[1][:-1]), tf[1][-1].lower()
        if count <= 0:
            self.report("bad-timeframe", f"timeframe `{tf[1]}` must be positive", tf)
        warmup = None
        if self.at_kw("WARMUP"):
            self.i += 1
            wtok = self.toks[self.i]
            if wtok[0] != "num" or not wtok[1].isdigit():
                self.fail(
                    "syntax", f"WARMUP takes a whole number of bars, found {describe(wtok)}", wtok
                )
            self.i += 1
            warmup = int(wtok[1])
            self.take_kw("BARS")
        return ast.Stream(
            alias[1],
            m.group(1),
            m.group(2),
            f"{count}{unit}",
            warmup,
            start[2],
            alias[3],
            label_col,
            count * _TF_UNITS[unit],
        )

    def param(self) -> ast.Param:
        self.i += 1
        name = self.take_ident("a PARAM name")
        self.take_op("=")
        tok = self.toks[self.i]
        negative = False
        if tok[0] == "op" and tok[1] == "-" and self.toks[self.i + 1][0] == "num":
            negative = True
            self.i += 1
            tok = self.toks[self.i]
        self.i += 1
        if tok[0] == "num":
            value = Decimal(tok[1])
            return ast.Param(name[1], -value if negative else value, "number", name[2], name[3])
        if tok[0] == "kw" and tok[1] in ("TRUE", "FALSE"):
            return ast.Param(name[1], tok[1] == "TRUE", "bool", name[2], name[3])
        if tok[0] == "str":
            return ast.Param(name[1], tok[1], "string", name[2], name[3])
        self.i -= 1
        self.fail(
            "syntax",
            f"PARAM takes a literal (number, TRUE/FALSE or a string), found {describe(tok)}",
            tok,
        )

    def let(self) -> ast.Let:
        self.i += 1
        name = self.take_ident("a LET name")
        self.take_op("=")
        return ast.Let(name[1], self.expr(), name[2], name[3])

    def rule(self) -> ast.Rule:
        when = self.toks[self.i]
        self.i += 1
        condition = self.expr()
        actions: list[ast.Action] = []
        try:
            self.take_kw("THEN")
            actions.append(self.action())
            while self.at_op(";"):
                self.i += 1
                if self.at_rule_end():
                    break  # a trailing `;`
                actions.append(self.action())
        except _Fail:
            # Keep what parsed so the condition and earlier actions are still checked.
            if not self.at_rule_end():
                self.i += 1
            self.sync()
            return ast.Rule(condition, tuple(actions), when[2], when[3])
        tok = self.toks[self.i]
        if not self.at_rule_end():
            hint = (
                "separate actions with `;`"
                if tok[0] == "kw" and tok[1] in ACTION_KEYWORDS
                else None
            )
            self.report(
                "unexpected-token",
                f"unexpected {describe(tok)} after the rule's actions",
                tok,
                hint,
            )
            self.i += 1
            self.sync()
        return ast.Rule(condition, tuple(actions), when[2], when[3])

    def at_rule_end(self) -> bool:
        tok = self.toks[self.i]
        return tok[0] == "eof" or (tok[0] == "kw" and tok[1] in _SYNC)

    # ------------------------------------------------------------ actions
    def action(self) -> ast.Action:
        tok = self.toks[self.i]
        word = tok[1] if tok[0] == "kw" else ""
        if word in ("BUY", "SELL"):
            self.i += 1
            alias = self.take_ident("a stream alias")
            sizing = self.sizing() if self.at_kw("SIZING") else None
            bracket = self.bracket() if self.at_kw("BRACKET") else None
            if sizing is None and self.at_kw("SIZING"):
                sizing = self.sizing()
            side: Literal["buy", "sell"] = "buy" if word == "BUY" else "sell"
            return ast.OrderAction(side, alias[1], sizing, bracket, tok[2], tok[3], alias[3])
        if word == "CLOSE":
            self.i += 1
            alias = self.take_ident("a stream alias")
            return ast.Close(alias[1], tok[2], tok[3], alias[3])
        if word in ("CLOSE_ALL", "FLATTEN"):
            self.i += 1
            return ast.CloseAll(tok[2], tok[3])
        if word == "LOG":
            self.i += 1
            level = "info"
            nxt = self.toks[self.i]
            if nxt[0] == "ident" and self.toks[self.i + 1][0] == "str":
                if nxt[1].lower() not in LOG_LEVELS:
                    hint = did_you_mean(nxt[1], list(LOG_LEVELS))
                    self.fail("syntax", f"unknown LOG level `{nxt[1]}`", nxt, hint)
                level = LOG_LEVELS[nxt[1].lower()]
                self.i += 1
            msg = self.toks[self.i]
            if msg[0] != "str":
                self.expected('a quoted message, e.g. LOG "entered long"')
            self.i += 1
            return ast.Log(level, msg[1], tok[2], tok[3])
        hint = did_you_mean(tok[1], list(ACTION_KEYWORDS)) if tok[0] in ("ident", "kw") else None
        self.fail(
            "syntax",
            "expected an action (BUY, SELL, CLOSE, CLOSE_ALL, FLATTEN, LOG), "
            f"found {describe(tok)}",
            tok,
            hint,
        )

    def sizing(self) -> ast.Sizing:
        tok = self.toks[self.i]
        self.i += 1
        nxt = self.toks[self.i]
        if (
            nxt[0] == "eof"
            or (nxt[0] == "op" and nxt[1] == ";")
            or (nxt[0] == "kw" and nxt[1] in ("BRACKET", "PCT", "USD", *_SYNC))
        ):
            self.fail(
                "missing-sizing-value",
                "`SIZING` needs a value: a quantity, `N PCT OF EQUITY|BALANCE` or `N USD`",
                nxt,
            )
        value = self.sum()
        kind: Literal["qty", "pct_equity", "pct_balance", "usd"] = "qty"
        if self.at_kw("PCT"):
            self.i += 1
            self.take_kw("OF", "`OF` (as in `2 PCT OF EQUITY`)")
            if self.at_kw("EQUITY"):
                kind = "pct_equity"
            elif self.at_kw("BALANCE"):
                kind = "pct_balance"
            else:
                bad = self.toks[self.i]
                hint = (
                    did_you_mean(bad[1], ["EQUITY", "BALANCE"])
                    if bad[0] in ("ident", "kw")
                    else None
                )
                self.fail(
                    "syntax", f"expected `EQUITY` or `BALANCE`, found {describe(bad)}", bad, hint
                )
            self.i += 1
        elif self.at_kw("USD"):
            self.i += 1
            kind = "usd"
        return ast.Sizing(kind, value, tok[2], tok[3])

    def bracket(self) -> ast.Bracket:
        tok = self.toks[self.i]
        self.i += 1
        braced = self.at_op("{")
        if braced:
            self.i += 1
        legs = [self.leg()]
        if self.at_op(","):
            self.i += 1
        nxt = self.toks[self.i]
        if nxt[0] == "kw" and nxt[1] in ("STOP_LOSS", "TAKE_PROFIT"):
            legs.append(self.leg())
        if braced:
            self.take_op("}")
        stop = take = None
        for leg in legs:
            if leg.kind == "stop_loss":
                if stop is not None:
                    self.report("duplicate-leg", "the bracket has two STOP_LOSS legs", None)
                stop = leg
            else:
                if take is not None:
                    self.report("duplicate-leg", "the bracket has two TAKE_PROFIT legs", None)
                take = leg
        return ast.Bracket(stop, take, tok[2], tok[3])

    def leg(self) -> ast.Leg:
        tok = self.toks[self.i]
        if not (tok[0] == "kw" and tok[1] in ("STOP_LOSS", "TAKE_PROFIT")):
            hint = (
                did_you_mean(tok[1], ["STOP_LOSS", "TAKE_PROFIT"])
                if tok[0] in ("ident", "kw")
                else None
            )
            self.fail(
                "syntax", f"expected `STOP_LOSS` or `TAKE_PROFIT`, found {describe(tok)}", tok, hint
            )
        self.i += 1
        kind: Literal["stop_loss", "take_profit"] = (
            "stop_loss" if tok[1] == "STOP_LOSS" else "take_profit"
        )
        if self.at_kw("BY"):
            self.i += 1
            value = self.sum()
            if self.at_kw("PCT"):
                self.i += 1
                return ast.Leg(kind, "by_pct", value, tok[2], tok[3])
            return ast.Leg(kind, "by", value, tok[2], tok[3])
        if self.at_kw("AT"):
            self.i += 1
            return ast.Leg(kind, "at", self.sum(), tok[2], tok[3])
        self.expected("`BY` or `AT`", "BY")

    # ------------------------------------------------------------ expressions
    def expr(self) -> ast.Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail("too-deep", f"expression nested deeper than {MAX_DEPTH} levels")
        try:
            return self.or_()
        finally:
            self.depth -= 1

    def or_(self) -> ast.Expr:
        left = self.and_()
        while self.at_kw("OR"):
            tok = self.toks[self.i]
            self.i += 1
            left = ast.Binary("or", left, self.and_(), tok[2], tok[3])
        return left

    def and_(self) -> ast.Expr:
        left = self.not_()
        while self.at_kw("AND"):
            tok = self.toks[self.i]
            self.i += 1
            left = ast.Binary("and", left, self.not_(), tok[2], tok[3])
        return left

    def not_(self) -> ast.Expr:
        nots: list[Token] = []
        while self.at_kw("NOT"):  # a loop, not recursion: NOT NOT ... cannot exhaust the stack
            nots.append(self.toks[self.i])
            self.i += 1
        expr = self.cmp()
        for tok in reversed(nots):
            expr = ast.Not(expr, tok[2], tok[3])
        return expr

    def cmp(self) -> ast.Expr:
        left = self.sum()
        tok = self.toks[self.i]
        kind, text = tok[0], tok[1]
        if kind == "op" and text in _CMP_OPS:
            self.i += 1
            return ast.Binary(_CMP_OPS[text], left, self.sum(), tok[2], tok[3])
        if kind != "kw":
            return left
        if text == "CROSSES":
            self.i += 1
            if self.at_kw("ABOVE"):
                direction: Literal["above", "below"] = "above"
            elif self.at_kw("BELOW"):
                direction = "below"
            else:
                self.expected("`ABOVE` or `BELOW` after CROSSES", "ABOVE")
            self.i += 1
            return ast.Crosses(left, direction, self.sum(), tok[2], tok[3])
        if text == "BETWEEN":
            self.i += 1
            low = self.sum()
            self.take_kw("AND", "`AND` (as in `x BETWEEN 30 AND 70`)")
            return ast.Between(left, low, self.sum(), tok[2], tok[3])
        if text == "IN":
            self.i += 1
            self.take_op("[")
            options = [self.expr()]
            while self.at_op(","):
                self.i += 1
                options.append(self.expr())
            self.take_op("]")
            return ast.In(left, tuple(options), tok[2], tok[3])
        return left

    def sum(self) -> ast.Expr:
        left = self.term()
        toks = self.toks
        while True:
            tok = toks[self.i]
            if tok[0] == "op" and (tok[1] == "+" or tok[1] == "-"):
                self.i += 1
                left = ast.Binary(tok[1], left, self.term(), tok[2], tok[3])
            else:
                return left

    def term(self) -> ast.Expr:
        left = self.unary()
        toks = self.toks
        while True:
            tok = toks[self.i]
            if tok[0] == "op" and tok[1] in ("*", "/", "%"):
                self.i += 1
                left = ast.Binary(tok[1], left, self.unary(), tok[2], tok[3])
            else:
                return left

    def unary(self) -> ast.Expr:
        signs: list[Token] = []
        while self.at_op("-"):
            signs.append(self.toks[self.i])
            self.i += 1
        expr = self.atom()
        for tok in reversed(signs):
            if isinstance(expr, ast.Number):
                expr = ast.Number(-expr.value, tok[2], tok[3])
            else:
                expr = ast.Unary("-", expr, tok[2], tok[3])
        return expr

    def atom(self) -> ast.Expr:
        tok = self.toks[self.i]
        kind, text = tok[0], tok[1]
        self.i += 1
        if kind == "num":
            return ast.Number(Decimal(text), tok[2], tok[3])
        if kind == "ident":
            nxt = self.toks[self.i]
            if nxt[0] == "op":
                if nxt[1] == "(":
                    return self.call(tok)
                if nxt[1] == ".":
                    self.i += 1
                    field = self.field_name()
                    return ast.Field(text, field[1], tok[2], tok[3], field[3])
            return ast.Name(text, tok[2], tok[3])
        if kind == "op" and text == "(":
            inner = self.expr()
            self.take_op(")")
            return inner
        if kind == "kw":
            if text in ("TRUE", "FALSE"):
                return ast.Bool(text == "TRUE", tok[2], tok[3])
            if text == "POSITION":
                self.take_op(".")
                alias = self.field_name()
                pfield = None
                if self.at_op("."):
                    self.i += 1
                    pfield = self.field_name()[1]
                return ast.PositionRef(alias[1], pfield, tok[2], tok[3], alias[3])
            if text == "ACCOUNT":
                self.take_op(".")
                field = self.field_name()
                return ast.AccountRef(field[1].lower(), tok[2], tok[3], field[3])
        if kind == "str":
            return ast.String(text, tok[2], tok[3])
        self.i -= 1
        hint = None
        if kind == "kw" and text in ("THEN",):
            hint = "the condition is missing"
        self.fail("syntax", f"expected a value, found {describe(tok)}", tok, hint)

    def field_name(self) -> Token:
        tok = self.toks[self.i]
        if tok[0] in ("ident", "kw"):
            self.i += 1
            return tok[0], tok[1] if tok[0] == "ident" else tok[1].lower(), tok[2], tok[3], tok[4]
        self.expected("a field name after `.`")

    def call(self, name: Token) -> ast.Call:
        self.i += 1  # '('
        args: list[ast.Expr] = []
        if not self.at_op(")"):
            args.append(self.expr())
            while self.at_op(","):
                self.i += 1
                args.append(self.expr())
        self.take_op(")")
        return ast.Call(name[1].lower(), tuple(args), name[2], name[3])


__all__ = ["KEYWORDS", "Parser"]
