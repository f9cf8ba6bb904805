"""The bounds of an order qkt sends, and how numbers are shown in the reasons that cite them.

``qkt validate`` holds order sizes and bracket legs known before the run to these bounds; the order
manager holds every order to them when it is made, before any arithmetic on its numbers. They are
far beyond any real order (documented in docs/language.md, "Limits"), so they only catch mistakes:
a misplaced PARAM, a division by a tiny price, a runaway expression.
"""

from __future__ import annotations

from decimal import Context, Decimal

MAX_QUANTITY = Decimal(1_000_000_000)  # units of the venue (lots, coins) in one order
MIN_QUANTITY = Decimal("0.00000001")  # the finest step sizes from notionals are rounded to
MAX_PRICE = Decimal(1_000_000_000_000)  # an entry, a bracket level or a bracket distance
MAX_NOTIONAL = Decimal(1_000_000_000_000)  # SIZING n USD
MAX_PERCENT = Decimal(10_000)  # SIZING n PCT OF EQUITY|BALANCE, TAKE_PROFIT BY n PCT
_SHORT = 20


def shown(value: Decimal) -> str:
    """A decimal as a user wrote it: plain digits, no trailing zeros, and a short exponent form
    for numbers longer than 20 characters (``1e+400``). NaN and infinities by their names."""
    if not value.is_finite():
        return str(value)
    if not value.is_zero() and not -_SHORT <= value.adjusted() <= _SHORT:
        return format(value, ".6g")  # never the billion digits of 1e999999999 written out
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if len(text) > _SHORT:
        return format(value, ".6g")
    return "0" if text == "-0" else text


def amount(limit: Decimal) -> str:
    """A limit with thousands separators: ``1,000,000,000``."""
    return f"{int(limit):,}"


def to_places(value: Decimal, places: Decimal) -> Decimal:
    """``value`` rounded to the exponent of ``places`` (``Decimal("0.00000001")``), however large
    it is: the default context's 28 digits cannot hold a figure of more than 20 integer digits
    at 8 places, and quantizing one raises InvalidOperation."""
    exponent = places.as_tuple().exponent
    if not value.is_finite() or not isinstance(exponent, int):
        return value
    digits = max(value.adjusted(), 0) - exponent + 2
    return value.quantize(places, context=Context(prec=max(28, digits)))
