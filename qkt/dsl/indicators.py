"""The names the language knows: indicators with their signatures, and the fields of streams,
positions and the account."""

from __future__ import annotations

from dataclasses import dataclass

FIELDS = ("open", "high", "low", "close", "volume")
POSITION_FIELDS = ("entry_price", "pnl", "unrealized_pnl")
ACCOUNT_FIELDS = ("equity", "balance", "realized_pnl", "unrealized_pnl")

# Argument roles: `value` (a number per bar; a bare stream alias means its close), `stream` (a
# stream alias), `period`/`fast`/`slow`/`signal` (a positive whole number of bars known before the
# run), `k` (a positive number known before the run).
PERIOD_ROLES = frozenset({"period", "fast", "slow", "signal"})
MAX_PERIOD = 100_000
BOLLINGER_K = 2


@dataclass(frozen=True, slots=True)
class Indicator:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def roles(self) -> tuple[str, ...]:
        return (*self.required, *self.optional)

    def accepts(self, count: int) -> bool:
        return len(self.required) <= count <= len(self.required) + len(self.optional)

    def arity(self) -> str:
        """``2 arguments (value, period)`` or ``2 or 3 arguments (value, period[, k])``."""
        count = str(len(self.required))
        if self.optional:
            count += f" or {len(self.required) + len(self.optional)}"
        inner = ", ".join(self.required) + "".join(f"[, {o}]" for o in self.optional)
        noun = "argument" if count == "1" else "arguments"
        return f"{count} {noun} ({inner})"


def _table() -> dict[str, Indicator]:
    one = ("value", "period")
    macd = ("value", "fast", "slow", "signal")
    specs = [
        *(Indicator(n, one) for n in ("sma", "ema", "wma", "rsi", "stdev", "highest", "lowest")),
        Indicator("atr", ("stream", "period")),
        *(Indicator(n, macd) for n in ("macd", "macd_signal", "macd_hist")),
        *(
            Indicator(n, one, ("k",))
            for n in ("bollinger_upper", "bollinger_middle", "bollinger_lower")
        ),
    ]
    return {spec.name: spec for spec in specs}


INDICATORS = _table()
