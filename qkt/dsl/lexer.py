"""The `.qkt` tokenizer: one compiled master regex, one ``findall`` call, positions for every token.

A token is a plain tuple ``(type, text, line, column, offset)`` so the hot loop stays cheap:

* ``type`` is the upper-cased keyword for keywords (``"WHEN"``), the punctuation itself for operators
  (``"("``, ``"<="``), or one of ``"ident"``, ``"num"``, ``"tf"`` (a timeframe such as ``15m``),
  ``"str"`` and ``"eof"``;
* ``text`` is the keyword (upper-cased), the identifier or number as written, or a string's content;
* ``line`` and ``column`` are 1-based, ``offset`` is the 0-based index into the source text.

Bad characters and unterminated strings become diagnostics, never exceptions.
"""

from __future__ import annotations

import re

from qkt.diagnostics import Diagnostic, error

Token = tuple[str, str, int, int, int]

_KEYWORD_TEXT = """STRATEGY VERSION SYMBOLS PARAM LET RULES WHEN THEN BUY SELL CLOSE CLOSE_ALL
    FLATTEN LOG SIZING PCT OF EQUITY BALANCE USD BRACKET STOP_LOSS TAKE_PROFIT BY AT EVERY WARMUP
    BARS AND OR NOT CROSSES ABOVE BELOW BETWEEN IN TRUE FALSE POSITION ACCOUNT"""
_OPERATOR_TEXT = "<= >= == != <> - + * / % < > = ( ) , ; : . { } [ ]"
KEYWORDS = frozenset(_KEYWORD_TEXT.split())
OPERATORS = frozenset(_OPERATOR_TEXT.split())
MAX_LEX_DIAGNOSTICS = 50

# One match is one token with the blanks before it. Every non-blank character starts a match (the
# last alternative takes any character), so matches are contiguous and the running offset is exact.
_TOKEN = re.compile(
    r"""[ \t\r\f\v]*+(?:
      [A-Za-z_][A-Za-z0-9_]*+
    | \.[0-9]++
    | [(),.;=<>*/+%{}\[\]:](?![=>])
    | \n
    | [0-9]++(?:[smhdSMHD](?![A-Za-z0-9_])|(?:\.[0-9]++)?)
    | --[^\n]*+ | \#[^\n]*+
    | "[^"\n]*+"? | '[^'\n]*+'?
    | <=|>=|==|!=|<>
    | .
    )""",
    re.VERBOSE,
)
_BLANKS = " \t\r\f\v"

# Types the loop below handles itself (never passed to the parser as such).
_NL, _COMMENT, _UNTERMINATED, _BAD = "\n", "#comment", "#unterminated", "#bad"
_SPECIAL = frozenset({_NL, _COMMENT, _UNTERMINATED, _BAD})
_KEYWORD_OF = {k.lower(): k for k in KEYWORDS}
_DIGITS = frozenset("0123456789.")
_TF_UNITS = frozenset("smhdSMHD")

# Raw match (blanks + token) -> (type, text, number of leading blanks). Identifiers, keywords,
# operators and common numbers repeat across files, so each distinct match is classified once and
# the per-token work is a dict lookup.
Classified = tuple[str, str, int]
_CACHE: dict[str, Classified] = {}
_CACHE_LIMIT = 50_000


def _classify(raw: str) -> Classified:
    tok = raw.lstrip(_BLANKS)
    lead = len(raw) - len(tok)
    first = tok[0]
    if first.isascii() and (first.isalpha() or first == "_"):
        keyword = _KEYWORD_OF.get(tok.lower())
        hit = (keyword, keyword, lead) if keyword is not None else ("ident", tok, lead)
    elif first in _DIGITS and len(tok) > (first == "."):
        hit = ("tf" if tok[-1] in _TF_UNITS else "num", tok, lead)
    elif first == '"' or first == "'":
        if len(tok) < 2 or tok[-1] != first:
            return (_UNTERMINATED, tok, lead)
        hit = ("str", tok[1:-1], lead)
    elif first == "\n":
        hit = (_NL, tok, lead)
    elif tok.startswith(("--", "#")):
        return (_COMMENT, tok, lead)
    elif tok in OPERATORS:
        hit = (tok, tok, lead)
    else:
        return (_BAD, tok, lead)
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    _CACHE[raw] = hit
    return hit


def tokenize(text: str, path: str | None = None) -> tuple[list[Token], list[Diagnostic]]:
    """Split ``text`` into tokens; the list always ends with an ``eof`` token."""
    tokens: list[Token] = []
    diags: list[Diagnostic] = []
    append = tokens.append
    cache_get = _CACHE.get
    special = _SPECIAL
    line = 1
    line_start = 0  # offset of the current line's first character
    pos = 0  # offset of the current match
    # Blanks at the very end match no token: findall would retry them at every offset (time
    # quadratic in their length), so they are left out; eof is placed after them.
    for raw in _TOKEN.findall(text.rstrip(_BLANKS)):
        hit = cache_get(raw) or _classify(raw)
        kind = hit[0]
        if kind in special:
            if kind is _NL:
                line += 1
                line_start = pos + len(raw)
            elif kind is not _COMMENT:
                start = pos + hit[2]
                if len(diags) < MAX_LEX_DIAGNOSTICS:
                    diags.append(_lex_error(kind, hit[1], path, line, start - line_start + 1))
                if kind is _UNTERMINATED:
                    append(("str", hit[1][1:], line, start - line_start + 1, start))
        else:
            start = pos + hit[2]
            append((kind, hit[1], line, start - line_start + 1, start))
        pos += len(raw)
    end = len(text)
    append(("eof", "", line, end - line_start + 1, end))
    return tokens, diags


def _lex_error(kind: str, tok: str, path: str | None, line: int, column: int) -> Diagnostic:
    if kind is _UNTERMINATED:
        return error(
            "unterminated-string",
            "string is not closed before the end of the line",
            path=path,
            line=line,
            column=column,
            hint=f"add the closing {tok[0]}",
        )
    shown = tok if tok.isprintable() else repr(tok)
    return error(
        "bad-character", f"unexpected character `{shown}`", path=path, line=line, column=column
    )


def describe(token: Token) -> str:
    """How a token is named in an error message."""
    kind, text = token[0], token[1]
    if len(text) > 40:
        text = text[:37] + "..."
    if kind == "eof":
        return "end of file"
    if kind == "str":
        return f'string "{text}"'
    if kind == "tf":
        return f"timeframe `{text}`"
    if kind in KEYWORDS:
        return f"keyword `{text}`"
    return f"`{text}`"
