"""What every part of the Bybit simulator shares: the refusal a handler raises (a retCode and its
message, answered in an HTTP 200 envelope), Bybit's decimal strings, and parameter readers."""

from __future__ import annotations

import re
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

ZERO = Decimal(0)
LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
MAX_LINK_ID = 36
CATEGORIES = ("linear", "spot")
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


class Refused(Exception):
    """A request Bybit answers with ``retCode`` (non-zero) and ``retMsg``; nothing was done."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


def params_error(text: str) -> Refused:
    return Refused(10001, text)


def places(step: Decimal) -> int:
    """Decimals of a step as Bybit writes it (``0.10`` has two)."""
    exponent = step.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def fmt(value: Decimal, step: Decimal) -> str:
    """``value`` written with the decimals of ``step`` (a price on ``tickSize``, a qty on
    ``qtyStep``)."""
    return format(value.quantize(Decimal(1).scaleb(-places(step))), "f")


def num(value: Decimal) -> str:
    """A computed amount (value, fee, balance, PnL) without trailing zeros; ``0`` for zero."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def on_grid(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def to_step(value: Decimal, step: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    """``value`` rounded to a multiple of ``step`` (``rounding`` as :mod:`decimal` names it)."""
    steps = (value / step).to_integral_value(rounding=rounding)
    return (steps * step).quantize(Decimal(1).scaleb(-places(step)))


def round_down(value: Decimal, step: Decimal) -> Decimal:
    return to_step(value, step, ROUND_FLOOR)


def decimal_param(value: Any, name: str) -> Decimal:
    """A number sent as a string (the documented type) or a JSON number; 10001 otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise params_error(f"params error: {name} invalid")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise params_error(f"params error: {name} invalid") from None
    if not number.is_finite():
        raise params_error(f"params error: {name} invalid")
    return number


def level_param(body: dict[str, Any], name: str) -> Decimal | None:
    """An optional price level of a body: absent, ``""`` or ``"0"`` mean none."""
    value = body.get(name)
    if value is None or value == "":
        return None
    number = decimal_param(value, name)
    if number < 0:
        raise params_error(f"params error: {name} invalid")
    return number or None


def bool_param(value: Any, name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise params_error(f"params error: {name} invalid")


def int_param(value: str | None, name: str, default: int, low: int, high: int) -> int:
    """A query integer within ``low..high``; ``default`` when absent; 10001 otherwise."""
    if value is None or value == "":
        return default
    if not value.strip().lstrip("-").isdigit():
        raise params_error(f"params error: {name} invalid")
    number = int(value)
    if not low <= number <= high:
        raise params_error(f"params error: {name} must be between {low} and {high}")
    return number


def category_param(value: Any, allowed: tuple[str, ...] = CATEGORIES) -> str:
    if value in (None, ""):
        raise params_error("params error: category is required")
    if value not in allowed:
        raise params_error("Illegal category")
    return str(value)


def page(rows: list[dict[str, Any]], cursor: str | None, limit: int) -> tuple[list[Any], str]:
    """One page of ``rows`` and the next cursor. Cursors look like Bybit's, already
    percent-encoded (``page_args%3D20``): sent back verbatim they arrive decoded, re-encoded by
    a client (``page_args%253D20``) they arrive encoded once; both are read."""
    start = 0
    if cursor:
        text = cursor.replace("%3D", "=").replace("%3d", "=")
        if not text.startswith("page_args=") or not text[10:].isdigit():
            raise params_error("params error: cursor invalid")
        start = int(text[10:])
    end = start + limit
    rest = f"page_args%3D{end}" if end < len(rows) else ""
    return rows[start:end], rest
