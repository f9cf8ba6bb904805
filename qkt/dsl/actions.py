"""Parsing of a rule's actions: orders with sizing and brackets, CLOSE, CLOSE_ALL/FLATTEN, LOG."""

from __future__ import annotations

from typing import Literal, NoReturn

from qkt.diagnostics import did_you_mean
from qkt.dsl import ast
from qkt.dsl.expressions import ExpressionParser
from qkt.dsl.lexer import KEYWORDS, Token, describe

ACTION_KEYWORDS = frozenset({"BUY", "SELL", "CLOSE", "CLOSE_ALL", "FLATTEN", "LOG"})
LOG_LEVELS = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
}
# Tokens that can start a value: anything else after SIZING means the value is missing.
_VALUE_START = frozenset({"ident", "num", "str", "-", "(", "TRUE", "FALSE", "POSITION", "ACCOUNT"})
_LEGS = ["STOP_LOSS", "TAKE_PROFIT"]


class ActionParser(ExpressionParser):
    def action(self) -> ast.Action:
        tok = self.toks[self.i]
        kind = tok[0]
        if kind == "BUY" or kind == "SELL":
            self.i += 1
            alias = self.take_ident("the stream alias to trade (as in `BUY eur`)")
            sizing = bracket = None
            while True:  # SIZING and BRACKET, each at most once, in either order
                nxt = self.toks[self.i][0]
                if nxt == "SIZING" and sizing is None:
                    sizing = self.sizing()
                elif nxt == "BRACKET" and bracket is None:
                    bracket = self.bracket()
                else:
                    break
            side: Literal["buy", "sell"] = "buy" if kind == "BUY" else "sell"
            return ast.OrderAction(side, alias[1], sizing, bracket, tok[2], tok[3], alias[3])
        if kind == "CLOSE":
            self.i += 1
            if self.toks[self.i][0] != "ident":
                self.expected(
                    "the stream alias to close (as in `CLOSE eur`)",
                    hint="use CLOSE_ALL to close every position",
                )
            alias = self.take_ident("a stream alias")
            return ast.Close(alias[1], tok[2], tok[3], alias[3])
        if kind == "CLOSE_ALL" or kind == "FLATTEN":
            self.i += 1
            return ast.CloseAll(tok[2], tok[3])
        if kind == "LOG":
            return self.log(tok)
        self.not_an_action(tok)

    def not_an_action(self, tok: Token) -> NoReturn:
        hint = None
        if tok[0] == "ident" or tok[0] in KEYWORDS:
            hint = did_you_mean(tok[1], sorted(ACTION_KEYWORDS))
        self.fail(
            "syntax",
            "expected an action (BUY, SELL, CLOSE, CLOSE_ALL, FLATTEN or LOG), "
            f"found {describe(tok)}",
            tok,
            hint,
        )

    def log(self, tok: Token) -> ast.Log:
        self.i += 1
        toks = self.toks
        level = "info"
        nxt = toks[self.i]
        if nxt[0] == "ident" and toks[self.i + 1][0] == "str":
            known = LOG_LEVELS.get(nxt[1].lower())
            if known is None:
                self.fail(
                    "bad-log-level",
                    f"unknown LOG level `{nxt[1]}` (levels: debug, info, warning, error)",
                    nxt,
                    did_you_mean(nxt[1], list(LOG_LEVELS)),
                )
            level = known
            self.i += 1
        msg = toks[self.i]
        if msg[0] != "str":
            self.expected('a quoted message (as in `LOG "entered long"`)')
        self.i += 1
        return ast.Log(level, msg[1], tok[2], tok[3])

    def sizing(self) -> ast.Sizing:
        tok = self.toks[self.i]
        self.i += 1
        nxt = self.toks[self.i]
        if nxt[0] not in _VALUE_START:
            self.fail(
                "missing-sizing-value",
                f"`SIZING` needs a value, found {describe(nxt)}",
                tok,
                "write e.g. `SIZING 0.1`, `SIZING 2 PCT OF EQUITY` or `SIZING 500 USD`",
            )
        value = self.arith(1)
        kind: Literal["qty", "pct_equity", "pct_balance", "usd"] = "qty"
        after = self.toks[self.i][0]
        if after == "PCT":
            self.i += 1
            self.take("OF", "`OF EQUITY` or `OF BALANCE` after PCT")
            base = self.toks[self.i][0]
            if base == "EQUITY":
                kind = "pct_equity"
            elif base == "BALANCE":
                kind = "pct_balance"
            else:
                self.expected("`EQUITY` or `BALANCE`", ["EQUITY", "BALANCE"])
            self.i += 1
        elif after == "USD":
            self.i += 1
            kind = "usd"
        return ast.Sizing(kind, value, tok[2], tok[3])

    def bracket(self) -> ast.Bracket:
        tok = self.toks[self.i]
        self.i += 1
        braced = self.toks[self.i][0] == "{"
        if braced:
            self.i += 1
        legs = [self.leg()]
        if self.toks[self.i][0] == ",":
            self.i += 1
        if self.toks[self.i][0] in ("STOP_LOSS", "TAKE_PROFIT"):
            legs.append(self.leg())
        if braced:
            self.take("}", "`}` closing the BRACKET")
        stop = take = None
        for leg in legs:
            if leg.kind == "stop_loss":
                if stop is not None:
                    self.duplicate_leg(leg, "STOP_LOSS")
                stop = leg
            else:
                if take is not None:
                    self.duplicate_leg(leg, "TAKE_PROFIT")
                take = leg
        return ast.Bracket(stop, take, tok[2], tok[3])

    def duplicate_leg(self, leg: ast.Leg, name: str) -> None:
        where = ("kw", name, leg.line, leg.column, 0)
        self.report("duplicate-leg", f"the bracket has two {name} legs", where)

    def leg(self) -> ast.Leg:
        tok = self.toks[self.i]
        if tok[0] != "STOP_LOSS" and tok[0] != "TAKE_PROFIT":
            self.expected("`STOP_LOSS` or `TAKE_PROFIT`", _LEGS)
        self.i += 1
        kind: Literal["stop_loss", "take_profit"] = (
            "stop_loss" if tok[0] == "STOP_LOSS" else "take_profit"
        )
        mode = self.toks[self.i][0]
        if mode == "BY":
            self.i += 1
            value = self.arith(1)
            if self.toks[self.i][0] == "PCT":
                self.i += 1
                return ast.Leg(kind, "by_pct", value, tok[2], tok[3])
            return ast.Leg(kind, "by", value, tok[2], tok[3])
        if mode == "AT":
            self.i += 1
            return ast.Leg(kind, "at", self.arith(1), tok[2], tok[3])
        self.expected(f"`BY` or `AT` after {tok[0]}", ["BY", "AT"])
