"""The `.qkt` tokenizer: one compiled master regex, positions for every token.

Tokens are plain tuples ``(kind, text, line, column, offset)`` to keep the hot loop cheap. Kinds:
``kw`` (a keyword; ``text`` is upper-cased), ``ident``, ``num``, ``tf`` (timeframe such as ``15m``),
``str`` (the unquoted text), ``op`` (punctuation and operators), ``eof``. Bad characters and
unterminated strings become diagnostics, never exceptions.
"""

from __future__ import annotations

import re

from qkt.diagnostics import Diagnostic, error

Token = tuple[str, str, int, int, int]

_KEYWORD_TEXT = """STRATEGY VERSION SYMBOLS PARAM LET RULES WHEN THEN BUY SELL CLOSE CLOSE_ALL
    FLATTEN LOG SIZING PCT OF EQUITY BALANCE USD BRACKET STOP_LOSS TAKE_PROFIT BY AT EVERY WARMUP
    BARS AND OR NOT CROSSES ABOVE BELOW BETWEEN IN TRUE FALSE POSITION ACCOUNT"""
KEYWORDS = frozenset(_KEYWORD_TEXT.split())
_KW_LOOKUP = {k.lower(): k for k in KEYWORDS}

_MASTER = re.compile(
    r"""[ \t\r\f\v]*(?:
      (?P<nl>\n)
    | (?P<comment>(?:--|\#)[^\n]*)
    | (?P<tf>\d+[smhdSMHD](?![A-Za-z0-9_]))
    | (?P<num>\d+(?:\.\d+)?|\.\d+)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<str>"[^"\n]*"|'[^'\n]*')
    | (?P<ustr>["'][^\n]*)
    | (?P<op><=|>=|==|!=|<>|[-+*/%<>=(),;:.{}\[\]])
    | (?P<bad>[^\s])
    | (?P<end>\Z)
    )""",
    re.VERBOSE,
)


def tokenize(text: str, path: str | None = None) -> tuple[list[Token], list[Diagnostic]]:
    """Split ``text`` into tokens; the list always ends with an ``eof`` token."""
    tokens: list[Token] = []
    diags: list[Diagnostic] = []
    append = tokens.append
    line = 1
    line_start = 0
    kw_lookup = _KW_LOOKUP
    for m in _MASTER.finditer(text):
        kind = m.lastgroup
        if kind == "nl":
            line += 1
            line_start = m.end()
            continue
        if kind == "comment":
            continue
        if kind is None or kind == "end":
            if m.end() >= len(text):
                break
            continue
        start = m.start(kind)
        value = m.group(kind)
        column = start - line_start + 1
        if kind == "ident":
            keyword = kw_lookup.get(value.lower())
            if keyword is not None:
                append(("kw", keyword, line, column, start))
            else:
                append(("ident", value, line, column, start))
        elif kind == "str":
            append(("str", value[1:-1], line, column, start))
        elif kind == "ustr":
            diags.append(
                error(
                    "unterminated-string",
                    "string is not closed before the end of the line",
                    path=path,
                    line=line,
                    column=column,
                )
            )
            append(("str", value[1:], line, column, start))
        elif kind == "bad":
            shown = value if value.isprintable() else repr(value)
            diags.append(
                error(
                    "bad-character",
                    f"unexpected character `{shown}`",
                    path=path,
                    line=line,
                    column=column,
                )
            )
        else:
            append((kind, value, line, column, start))
    end = len(text)
    tokens.append(("eof", "", line, end - line_start + 1, end))
    return tokens, diags


def describe(token: Token) -> str:
    """How a token is named in an error message."""
    kind, text = token[0], token[1]
    if kind == "eof":
        return "end of file"
    if kind == "str":
        return f'string "{text}"'
    if kind == "kw":
        return f"keyword `{text}`"
    return f"`{text}`"
