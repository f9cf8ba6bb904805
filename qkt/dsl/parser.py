"""Recursive-descent parser for `.qkt` files, with error recovery.

On a syntax error the parser records a diagnostic and resumes at the next statement (``WHEN``,
``PARAM``, ``LET``, ``RULES``, ``SYMBOLS``, or a stream line ``alias =`` inside SYMBOLS); inside a
rule's actions it resumes after the next ``;``. One run therefore reports every independent mistake.
Expressions are parsed by :class:`~qkt.dsl.expressions.ExpressionParser`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import NoReturn

from qkt.diagnostics import did_you_mean
from qkt.dsl import ast
from qkt.dsl.actions import ACTION_KEYWORDS, ActionParser
from qkt.dsl.expressions import ParseFailure
from qkt.dsl.lexer import KEYWORDS, Token, describe

MAX_DIAGNOSTICS = 50
STATEMENT_KEYWORDS = ["STRATEGY", "SYMBOLS", "PARAM", "LET", "RULES", "WHEN"]
_SYNC = frozenset({"STRATEGY", "SYMBOLS", "PARAM", "LET", "RULES", "WHEN", "eof"})
_LABEL_SYMBOL = re.compile(r"([A-Za-z0-9_-]+)[ \t]*:[ \t]*([A-Za-z0-9._-]+)")
_TF_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_DIGITS = 9  # VERSION, WARMUP and timeframe counts: keeps int() cheap and bounded


class Parser(ActionParser):
    def __init__(self, text: str, tokens: list[Token], path: str | None) -> None:
        super().__init__(text, tokens, path)
        self.in_symbols = False
        # Names whose declaration has a syntax error: the checker treats them as declared, so one
        # mistake in a stream line does not also make every use of its alias an error.
        self.broken: set[str] = set()

    def sync(self) -> None:
        """Skip to the next token that can start a statement."""
        toks = self.toks
        in_symbols = self.in_symbols
        while True:
            kind = toks[self.i][0]
            if kind in _SYNC or (in_symbols and kind == "ident" and toks[self.i + 1][0] == "="):
                return
            self.i += 1

    def at_statement(self) -> bool:
        return self.toks[self.i][0] in _SYNC

    # ------------------------------------------------------------ file
    def parse(self) -> ast.Strategy | None:
        header = self.header()
        streams: list[ast.Stream] = []
        params: list[ast.Param] = []
        lets: list[ast.Let] = []
        rules: list[ast.Rule] = []
        seen_rules = False
        toks = self.toks
        while toks[self.i][0] != "eof" and len(self.diags) < MAX_DIAGNOSTICS:
            tok = toks[self.i]
            kind = tok[0]
            start = self.i
            self.depth = self.nodes = 0
            try:
                if kind == "WHEN":
                    self.in_symbols = False
                    if not seen_rules:
                        self.report("missing-rules", "`WHEN` before `RULES`: write RULES first")
                        seen_rules = True
                    rule = self.rule()
                    if rule is not None:
                        rules.append(rule)
                elif kind == "ident" and toks[self.i + 1][0] == "=":
                    stream = self.stray_stream(tok) if not self.in_symbols else self.stream()
                    streams.append(stream)
                elif kind == "PARAM":
                    self.in_symbols = False
                    params.append(self.param())
                elif kind == "LET":
                    self.in_symbols = False
                    lets.append(self.let())
                elif kind == "SYMBOLS":
                    self.i += 1
                    self.in_symbols = True
                elif kind == "RULES":
                    self.i += 1
                    self.in_symbols = False
                    seen_rules = True
                else:
                    self.unexpected(tok)
            except ParseFailure:
                if self.i == start:
                    self.i += 1  # always make progress past the token that failed
                self.sync()
        if not seen_rules and len(self.diags) < MAX_DIAGNOSTICS:
            self.report("missing-rules", "the strategy has no `RULES` section", toks[-1])
        if header is None:
            if not streams and not rules:
                return None
            header = ("", 0, 1, 1)
        name, version, line, column = header
        return ast.Strategy(
            name, version, tuple(streams), tuple(params), tuple(lets), tuple(rules), line, column
        )

    def unexpected(self, tok: Token) -> NoReturn:
        kind = tok[0]
        if kind == "STRATEGY":
            self.fail("unexpected-token", "a file holds one strategy: a second `STRATEGY`", tok)
        if kind in KEYWORDS and self.toks[self.i + 1][0] == "=":
            self.fail(
                "syntax",
                f"`{tok[1].lower()}` is a reserved word and cannot be declared",
                tok,
                "choose another name",
            )
        hint = None
        if kind == "ident" or kind in KEYWORDS:
            hint = did_you_mean(tok[1], [*STATEMENT_KEYWORDS, "THEN"])
        self.fail("unexpected-token", f"unexpected {describe(tok)}", tok, hint)

    def header(self) -> tuple[str, int, int, int] | None:
        tok = self.toks[self.i]
        try:
            if tok[0] != "STRATEGY":
                hint = None
                if tok[0] == "ident" or tok[0] in KEYWORDS:
                    hint = did_you_mean(tok[1], ["STRATEGY"])
                self.fail(
                    "missing-header",
                    f"a strategy starts with `STRATEGY name VERSION n`, found {describe(tok)}",
                    tok,
                    hint,
                )
            self.i += 1
            name = self.take_ident("the strategy name")
            self.take("VERSION")
            vtok = self.toks[self.i]
            digits = vtok[1]
            if vtok[0] != "num" or not digits.isdigit() or len(digits) > _MAX_DIGITS:
                self.fail(
                    "bad-version",
                    f"VERSION must be a whole number from 1 to 999999999, found {describe(vtok)}",
                    vtok,
                )
            self.i += 1
            if int(digits) < 1:
                self.report("bad-version", "VERSION must be 1 or more", vtok)
            return name[1], int(digits), tok[2], tok[3]
        except ParseFailure:
            if self.toks[self.i][0] == "STRATEGY":
                self.i += 1
            self.sync()
            return None

    # ------------------------------------------------------------ declarations
    def stray_stream(self, tok: Token) -> ast.Stream:
        """``alias = ...`` outside SYMBOLS: a stream without its section, or a missing keyword."""
        if _LABEL_SYMBOL.match(self.text, self.toks[self.i + 2][4]) is not None:
            self.report("missing-symbols", "stream declared outside a `SYMBOLS` section", tok)
            self.in_symbols = True
            return self.stream()
        self.fail(
            "unexpected-token",
            f"unexpected `{tok[1]}`",
            tok,
            f"declare it with `PARAM {tok[1]} = <literal>` or `LET {tok[1]} = <expression>`",
        )

    def stream(self) -> ast.Stream:
        alias = self.toks[self.i]
        self.broken.add(alias[1])
        self.i += 2  # alias '='
        start = self.toks[self.i]
        m = _LABEL_SYMBOL.match(self.text, start[4]) if start[0] != "eof" else None
        if m is None:
            hint = "write e.g. `eur = EXNESS:EURUSD EVERY 1m`"
            if start[0] in ("num", "str", "TRUE", "FALSE"):
                hint = f"for a value, write `PARAM {alias[1]} = {start[1]}`"
            self.fail(
                "syntax",
                f"expected `LABEL:SYMBOL` after `{alias[1]} =`, found {describe(start)}",
                start,
                hint,
            )
        end = m.end()
        toks = self.toks
        while toks[self.i][4] < end and toks[self.i][0] != "eof":
            self.i += 1
        self.take("EVERY", "`EVERY` and a timeframe (as in `EVERY 1m`)")
        tf = toks[self.i]
        if tf[0] != "tf" or len(tf[1]) > _MAX_DIGITS + 1:
            found = describe(tf)
            glued = toks[self.i + 1] if tf[0] == "num" else tf
            if glued[0] == "ident" and glued[4] == tf[4] + len(tf[1]):
                found = f"`{tf[1]}{glued[1]}`"  # `15min`, `1x`: show what was written
            self.fail(
                "bad-timeframe",
                f"expected a timeframe, found {found}",
                tf,
                "a timeframe is a number and a unit s, m, h or d: 1s, 1m, 15m, 4h, 1d",
            )
        self.i += 1
        count, unit = int(tf[1][:-1]), tf[1][-1].lower()
        if count <= 0:
            self.report("bad-timeframe", f"timeframe `{tf[1]}` must be longer than zero", tf)
        warmup = None
        if toks[self.i][0] == "WARMUP":
            self.i += 1
            wtok = toks[self.i]
            if wtok[0] != "num" or not wtok[1].isdigit() or len(wtok[1]) > _MAX_DIGITS:
                self.fail(
                    "syntax",
                    f"WARMUP takes a whole number of bars, found {describe(wtok)}",
                    wtok,
                    "write e.g. `WARMUP 50 BARS`",
                )
            self.i += 1
            warmup = int(wtok[1])
            self.take("BARS", "`BARS` (as in `WARMUP 50 BARS`)")
        self.broken.discard(alias[1])
        return ast.Stream(
            alias[1],
            m.group(1),
            m.group(2),
            f"{count}{unit}",
            warmup,
            start[2],
            alias[3],
            start[3],
            count * _TF_SECONDS[unit],
        )

    def param(self) -> ast.Param:
        self.i += 1
        name = self.take_ident("a PARAM name")
        self.broken.add(name[1])
        self.take("=")
        toks = self.toks
        tok = toks[self.i]
        sign = ""
        if tok[0] == "-" and toks[self.i + 1][0] == "num":
            sign = "-"
            self.i += 1
            tok = toks[self.i]
        kind = tok[0]
        if kind in ("num", "TRUE", "FALSE", "str"):
            self.broken.discard(name[1])
        if kind == "num":
            self.i += 1
            return ast.Param(name[1], Decimal(sign + tok[1]), "number", name[2], name[3])
        if kind == "TRUE" or kind == "FALSE":
            self.i += 1
            return ast.Param(name[1], kind == "TRUE", "bool", name[2], name[3])
        if kind == "str":
            self.i += 1
            return ast.Param(name[1], tok[1], "string", name[2], name[3])
        self.fail(
            "syntax",
            f"PARAM takes a literal (a number, TRUE/FALSE or a string), found {describe(tok)}",
            tok,
            "use LET for a computed value",
        )

    def let(self) -> ast.Let:
        self.i += 1
        name = self.take_ident("a LET name")
        self.broken.add(name[1])
        self.take("=")
        let = ast.Let(name[1], self.expr(), name[2], name[3])
        self.broken.discard(name[1])
        return let

    # ------------------------------------------------------------ rules
    def rule(self) -> ast.Rule | None:
        when = self.toks[self.i]
        self.i += 1
        try:
            condition: ast.Expr | None = self.expr()
            self.then()
        except ParseFailure:
            # Resume at THEN, if the rule has one, so its actions are still parsed.
            condition = None
            self.depth = 0
            toks = self.toks
            while toks[self.i][0] != "THEN" and not self.at_statement():
                self.i += 1
            if toks[self.i][0] != "THEN":
                return None
            self.i += 1
        actions = self.actions()
        if condition is None:
            return None
        return ast.Rule(condition, tuple(actions), when[2], when[3])

    def then(self) -> None:
        tok = self.toks[self.i]
        if tok[0] == "THEN":
            self.i += 1
            return
        message = f"expected `THEN` or an operator after the condition, found {describe(tok)}"
        if tok[0] in ACTION_KEYWORDS:
            # `WHEN cond BUY eur`: report the missing THEN and read the actions anyway.
            self.report("syntax", message, tok, "add `THEN` before the first action")
            return
        self.fail("syntax", message, tok, self.hint_after_value(tok))

    def actions(self) -> list[ast.Action]:
        actions: list[ast.Action] = []
        toks = self.toks
        while True:
            try:
                actions.append(self.action())
            except ParseFailure:
                self.depth = 0
                self.skip_action()
            while True:  # what follows an action: `;`, the next statement, or a mistake
                tok = toks[self.i]
                kind = tok[0]
                if kind == ";":
                    self.i += 1
                    if self.at_statement():
                        return actions  # a trailing `;`
                    break
                if kind in _SYNC:
                    return actions
                if kind in ACTION_KEYWORDS:
                    self.report(
                        "syntax",
                        f"expected `;` between actions, found {describe(tok)}",
                        tok,
                        "separate actions with `;`",
                    )
                    break
                self.report("unexpected-token", f"unexpected {describe(tok)} after an action", tok)
                self.i += 1
                self.skip_action()

    def skip_action(self) -> None:
        """Skip to the `;` ending the current action or the next statement."""
        toks = self.toks
        while toks[self.i][0] != ";" and not self.at_statement():
            self.i += 1


__all__ = ["MAX_DIAGNOSTICS", "Parser"]
