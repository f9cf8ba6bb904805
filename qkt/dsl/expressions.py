"""Expression parsing (precedence climbing) and the helpers every part of the parser shares.

Precedence, loosest first: ``OR``; ``AND``; ``NOT``; comparisons, ``CROSSES``, ``BETWEEN``, ``IN``
(not chainable); ``+ -``; ``* / %``; unary ``-``. Nesting (parentheses, call arguments, ``IN``
lists) is capped at :data:`MAX_DEPTH` levels and one statement at :data:`MAX_NODES` operators, so the
syntax tree stays shallow enough for every recursive consumer, and no input can exhaust the stack.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, NoReturn

from qkt.diagnostics import Diagnostic, did_you_mean, error
from qkt.dsl import ast
from qkt.dsl.lexer import KEYWORDS, Token, describe

MAX_DEPTH = 32
MAX_NODES = 200

_CMP = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "=", "==": "=", "!=": "!=", "<>": "!="}
_ARITH = {"+": 1, "-": 1, "*": 2, "/": 2, "%": 2}
_CLOSERS = frozenset({",", ")", "]"})
_AFTER_VALUE = ["THEN", "AND", "OR", "CROSSES", "BETWEEN", "IN", "NOT"]


class ParseFailure(Exception):
    """Unwinds to the nearest recovery point after a syntax error has been recorded."""


class ExpressionParser:
    """Token cursor, diagnostics and the expression grammar."""

    def __init__(self, text: str, tokens: list[Token], path: str | None) -> None:
        self.text = text
        self.toks = tokens
        self.i = 0
        self.path = path
        self.diags: list[Diagnostic] = []
        self.depth = 0
        self.nodes = 0

    # ------------------------------------------------------------ diagnostics and cursor
    def report(
        self, code: str, message: str, tok: Token | None = None, hint: str | None = None
    ) -> None:
        t = tok or self.toks[self.i]
        self.diags.append(error(code, message, path=self.path, line=t[2], column=t[3], hint=hint))

    def fail(
        self, code: str, message: str, tok: Token | None = None, hint: str | None = None
    ) -> NoReturn:
        self.report(code, message, tok, hint)
        raise ParseFailure

    def expected(
        self, what: str, keywords: list[str] | None = None, hint: str | None = None
    ) -> NoReturn:
        tok = self.toks[self.i]
        if keywords and hint is None and (tok[0] == "ident" or tok[0] in KEYWORDS):
            hint = did_you_mean(tok[1], keywords)
        self.fail("syntax", f"expected {what}, found {describe(tok)}", tok, hint)

    def take(self, kind: str, what: str | None = None) -> Token:
        """The current token if its type is ``kind`` (a keyword or an operator), else an error."""
        tok = self.toks[self.i]
        if tok[0] == kind:
            self.i += 1
            return tok
        self.expected(what or f"`{kind}`", [kind] if kind in KEYWORDS else None)

    def take_ident(self, what: str) -> Token:
        tok = self.toks[self.i]
        if tok[0] == "ident":
            self.i += 1
            return tok
        if tok[0] in KEYWORDS:
            self.fail(
                "syntax",
                f"expected {what}, found `{tok[1]}`, a reserved word",
                tok,
                f"choose another name than `{tok[1].lower()}`",
            )
        self.expected(what)

    def grow(self) -> None:
        """Count one operator node of the current statement against :data:`MAX_NODES`."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.fail(
                "too-deep",
                f"expression has more than {MAX_NODES} operators",
                hint="split it into LETs",
            )

    # ------------------------------------------------------------ expressions
    def expr(self) -> ast.Expr:
        toks = self.toks
        i = self.i
        tok = toks[i]
        kind = tok[0]
        # Fast path: a lone name or number, as most call arguments are (never the last token).
        if (kind == "ident" or kind == "num") and toks[i + 1][0] in _CLOSERS:
            self.i = i + 1
            if kind == "ident":
                return ast.Name(tok[1], tok[2], tok[3])
            return ast.Number(Decimal(tok[1]), tok[2], tok[3])
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail("too-deep", f"expression nested deeper than {MAX_DEPTH} levels")
        left = self.conjunction()
        while toks[self.i][0] == "OR":
            tok = toks[self.i]
            self.i += 1
            self.grow()
            left = ast.Binary("or", left, self.conjunction(), tok[2], tok[3])
        self.depth -= 1
        return left

    def conjunction(self) -> ast.Expr:
        toks = self.toks
        left = self.negation()
        while toks[self.i][0] == "AND":
            tok = toks[self.i]
            self.i += 1
            self.grow()
            left = ast.Binary("and", left, self.negation(), tok[2], tok[3])
        return left

    def negation(self) -> ast.Expr:
        toks = self.toks
        if toks[self.i][0] != "NOT":
            return self.comparison()
        nots: list[Token] = []
        while toks[self.i][0] == "NOT":
            nots.append(toks[self.i])
            self.i += 1
        result = self.comparison()
        for tok in reversed(nots):
            self.grow()
            result = ast.Not(result, tok[2], tok[3])
        return result

    def comparison(self) -> ast.Expr:
        left = self.arith(1)
        tok = self.toks[self.i]
        kind = tok[0]
        op = _CMP.get(kind)
        if op is not None:
            self.i += 1
            result: ast.Expr = ast.Binary(op, left, self.arith(1), tok[2], tok[3])
        elif kind == "CROSSES":
            self.i += 1
            way = self.toks[self.i][0]
            if way != "ABOVE" and way != "BELOW":
                self.expected("`ABOVE` or `BELOW` after CROSSES", ["ABOVE", "BELOW"])
            self.i += 1
            direction: Literal["above", "below"] = "above" if way == "ABOVE" else "below"
            result = ast.Crosses(left, direction, self.arith(1), tok[2], tok[3])
        elif kind == "BETWEEN":
            self.i += 1
            low = self.arith(1)
            self.take("AND", "`AND` (as in `x BETWEEN 30 AND 70`)")
            result = ast.Between(left, low, self.arith(1), tok[2], tok[3])
        elif kind == "IN":
            self.i += 1
            self.take("[", "`[` (as in `x IN [1, 2]`)")
            options = [self.expr()]
            while self.toks[self.i][0] == ",":
                self.i += 1
                options.append(self.expr())
            self.take("]", "`,` or `]`")
            result = ast.In(left, tuple(options), tok[2], tok[3])
        else:
            return left
        self.grow()
        nxt = self.toks[self.i]
        if nxt[0] in _CMP or nxt[0] in ("CROSSES", "BETWEEN", "IN"):
            self.fail(
                "syntax",
                f"comparisons cannot be chained: unexpected {describe(nxt)}",
                nxt,
                "join them with AND, e.g. `a < b AND b < c`",
            )
        return result

    def arith(self, min_prec: int) -> ast.Expr:
        toks = self.toks
        left = self.atom()
        while True:
            tok = toks[self.i]
            prec = _ARITH.get(tok[0])
            if prec is None or prec < min_prec:
                return left
            self.i += 1
            self.grow()
            left = ast.Binary(tok[0], left, self.arith(prec + 1), tok[2], tok[3])

    def atom(self) -> ast.Expr:
        toks = self.toks
        i = self.i
        tok = toks[i]
        kind = tok[0]
        if kind == "ident":
            nxt = toks[i + 1][0]
            if nxt == "(":
                return self.call(tok)
            if nxt == ".":
                self.i = i + 2
                field = self.field_name("a field such as `close`")
                return ast.Field(tok[1], field[1], tok[2], tok[3], field[3])
            self.i = i + 1
            return ast.Name(tok[1], tok[2], tok[3])
        if kind == "num":
            self.i = i + 1
            return ast.Number(Decimal(tok[1]), tok[2], tok[3])
        if kind == "-":
            return self.negative(tok)
        if kind == "(":
            self.i = i + 1
            inner = self.expr()
            self.take(")", "`)`")
            return inner
        if kind == "TRUE" or kind == "FALSE":
            self.i = i + 1
            return ast.Bool(kind == "TRUE", tok[2], tok[3])
        if kind == "str":
            self.i = i + 1
            return ast.String(tok[1], tok[2], tok[3])
        if kind == "POSITION":
            self.i = i + 1
            self.take(".", "`.` (as in `POSITION.eur`)")
            alias = self.field_name("a stream alias (as in `POSITION.eur`)", lower=False)
            pfield = None
            if toks[self.i][0] == ".":
                self.i += 1
                pfield = self.field_name("a position field such as `entry_price`")[1]
            return ast.PositionRef(alias[1], pfield, tok[2], tok[3], alias[3])
        if kind == "ACCOUNT":
            self.i = i + 1
            self.take(".", "`.` (as in `ACCOUNT.equity`)")
            field = self.field_name("an account field such as `equity`")
            return ast.AccountRef(field[1], tok[2], tok[3], field[3])
        hint = None
        if kind == "THEN" and i > 0 and toks[i - 1][0] == "WHEN":
            hint = "the condition is missing"
        self.fail("syntax", f"expected a value, found {describe(tok)}", tok, hint)

    def negative(self, first: Token) -> ast.Expr:
        """One or more unary minus signs; a negated number literal folds into the number."""
        toks = self.toks
        signs: list[Token] = []
        while toks[self.i][0] == "-":
            signs.append(toks[self.i])
            self.i += 1
        operand = self.atom()
        for tok in reversed(signs):
            if isinstance(operand, ast.Number):
                operand = ast.Number(-operand.value, tok[2], tok[3])
            else:
                self.grow()
                operand = ast.Unary("-", operand, tok[2], tok[3])
        return operand

    def field_name(self, what: str, lower: bool = True) -> Token:
        """The name after a `.`: an identifier or a keyword (``close``), lower-cased if ``lower``."""
        tok = self.toks[self.i]
        kind = tok[0]
        if kind == "ident" or kind in KEYWORDS:
            self.i += 1
            if lower or kind != "ident":
                return (kind, tok[1].lower(), tok[2], tok[3], tok[4])
            return tok
        self.expected(what)

    def call(self, name: Token) -> ast.Call:
        self.i += 2  # the name and '('
        toks = self.toks
        args: list[ast.Expr] = []
        if toks[self.i][0] != ")":
            args.append(self.expr())
            while toks[self.i][0] == ",":
                self.i += 1
                args.append(self.expr())
        self.take(")", "`,` or `)`")
        self.grow()
        return ast.Call(name[1].lower(), tuple(args), name[2], name[3])

    def hint_after_value(self, tok: Token) -> str | None:
        """A did-you-mean for a misspelt keyword where an operator or `THEN` could follow."""
        if tok[0] == "ident" or tok[0] in KEYWORDS:
            return did_you_mean(tok[1], _AFTER_VALUE)
        return None
