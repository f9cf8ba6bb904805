"""The syntax tree of a `.qkt` strategy: immutable, positioned (1-based line and column) nodes."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Number:
    value: Decimal
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class String:
    value: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Name:
    """A PARAM, a LET, or a bare stream alias (meaning its last close)."""

    name: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Field:
    """``alias.close`` and friends."""

    alias: str
    field: str
    line: int
    column: int
    field_column: int


@dataclass(frozen=True, slots=True)
class PositionRef:
    """``POSITION.alias`` (signed quantity) or ``POSITION.alias.entry_price``."""

    alias: str
    field: str | None
    line: int
    column: int
    alias_column: int


@dataclass(frozen=True, slots=True)
class AccountRef:
    field: str
    line: int
    column: int
    field_column: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # lower-cased indicator name
    args: tuple[Expr, ...]
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: Literal["-"]
    operand: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Binary:
    """Arithmetic (``+ - * / %``), comparison (``< <= > >= = !=``) or logic (``AND OR``)."""

    op: str
    left: Expr
    right: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Crosses:
    left: Expr
    direction: Literal["above", "below"]
    right: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Between:
    value: Expr
    low: Expr
    high: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class In:
    value: Expr
    options: tuple[Expr, ...]
    line: int
    column: int


Expr = (
    Number
    | Bool
    | String
    | Name
    | Field
    | PositionRef
    | AccountRef
    | Call
    | Unary
    | Binary
    | Not
    | Crosses
    | Between
    | In
)

ARITHMETIC = frozenset({"+", "-", "*", "/", "%"})
COMPARISON = frozenset({"<", "<=", ">", ">=", "=", "!="})
LOGIC = frozenset({"and", "or"})

# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Sizing:
    kind: Literal["qty", "pct_equity", "pct_balance", "usd"]
    value: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Leg:
    kind: Literal["stop_loss", "take_profit"]
    mode: Literal["by", "by_pct", "at"]
    value: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Bracket:
    stop_loss: Leg | None
    take_profit: Leg | None
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class OrderAction:
    side: Literal["buy", "sell"]
    alias: str
    sizing: Sizing | None
    bracket: Bracket | None
    line: int
    column: int
    alias_column: int


@dataclass(frozen=True, slots=True)
class Close:
    alias: str
    line: int
    column: int
    alias_column: int


@dataclass(frozen=True, slots=True)
class CloseAll:
    """``CLOSE_ALL`` or ``FLATTEN``: every position of the strategy."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Log:
    level: str
    message: str
    line: int
    column: int


Action = OrderAction | Close | CloseAll | Log

# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Stream:
    alias: str
    label: str
    symbol: str
    timeframe: str
    warmup: int | None
    line: int
    column: int
    label_column: int
    timeframe_seconds: int


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    value: Decimal | bool | str
    kind: Literal["number", "bool", "string"]
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Let:
    name: str
    expr: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Rule:
    condition: Expr
    actions: tuple[Action, ...]
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    version: int
    streams: tuple[Stream, ...]
    params: tuple[Param, ...]
    lets: tuple[Let, ...]
    rules: tuple[Rule, ...]
    line: int
    column: int

    def stream(self, alias: str) -> Stream | None:
        return next((s for s in self.streams if s.alias == alias), None)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)
