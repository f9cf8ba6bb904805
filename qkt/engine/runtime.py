"""A checked strategy compiled into closures: streams, shared indicators, edge-triggered rules.

Semantics (docs/language.md): a rule is evaluated when a bar closes on a stream its condition refers
to, in file order, and fires when its condition turns from false to true. Indicators are null until
warmed up; arithmetic with null is null; comparisons, BETWEEN, IN and crosses with null are false.
Identical indicator calls share one instance. An indicator updates when a bar closes on the first
stream its input refers to.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from qkt.dsl import ast
from qkt.dsl.static import constant_value, names_in, walk
from qkt.engine import indicators as ind
from qkt.engine.events import Bar
from qkt.engine.explain import Explainer
from qkt.engine.intents import (
    CloseIntent,
    Intent,
    LogIntent,
    OrderIntent,
    Portfolio,
    Rule,
    StreamState,
)
from qkt.engine.prices import to_decimal

Value = float | bool | str | None
Fn = Callable[[], Value]


_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
    "!=": operator.ne,
}


def _canon(expr: ast.Expr, aliases: Mapping[str, Any]) -> Any:
    """A position-free key of an expression, so identical calls share one indicator.

    A bare stream alias is its close: ``ema(eur, 9)`` and ``ema(eur.close, 9)`` are one indicator.
    """
    if isinstance(expr, ast.Number):
        return float(expr.value)
    if isinstance(expr, ast.Name):
        if expr.name in aliases:
            return ("field", expr.name, "close")
        return ("name", expr.name)
    if isinstance(expr, ast.Field):
        return ("field", expr.alias, expr.field.lower())
    if isinstance(expr, ast.Call):
        return ("call", expr.name.lower(), tuple(_canon(a, aliases) for a in expr.args))
    if isinstance(expr, ast.Unary):
        return ("neg", _canon(expr.operand, aliases))
    if isinstance(expr, ast.Binary):
        return ("bin", expr.op, _canon(expr.left, aliases), _canon(expr.right, aliases))
    return ("other", id(expr))


class _LetSlot:
    """One LET's value for the current bar: computed on first use, then shared."""

    __slots__ = ("body", "deps", "stamp", "value")

    def __init__(self, body: Fn) -> None:
        self.body = body
        self.deps: list[_LetSlot] = []
        self.stamp = -1
        self.value: Value = None

    def refresh(self, now: int) -> Value:
        """Compute this LET for bar ``now``, the LETs it reads first, deepest first: a chain of
        any length is evaluated without recursion, each LET once."""
        stack = [self]
        while stack:
            slot = stack[-1]
            if slot.stamp == now:
                stack.pop()
                continue
            stale = [d for d in slot.deps if d.stamp != now]
            if stale:
                stack.extend(stale)
                continue
            slot.value = slot.body()
            slot.stamp = now
            stack.pop()
        return self.value


class Runtime:
    """One strategy's evaluation state. ``on_bar`` feeds a closed bar and returns fired intents."""

    def __init__(
        self,
        strategy: ast.Strategy,
        portfolio: Portfolio,
        params: Mapping[str, Decimal | bool | str] | None = None,
    ) -> None:
        self.strategy = strategy
        self.portfolio = portfolio
        self.params: dict[str, Decimal | bool | str] = {p.name: p.value for p in strategy.params}
        if params:
            self.params.update(params)
        self.lets = {let.name: let.expr for let in strategy.lets}
        self.streams = {
            s.alias: StreamState(s.alias, s.label, s.symbol, s.timeframe_seconds)
            for s in strategy.streams
        }
        self._indicators: dict[Any, Any] = {}
        self._let_fns: dict[str, Fn] = {}
        self._let_slots: dict[str, _LetSlot] = {}
        self._let_streams: dict[str, list[str]] = {}
        self._let_history: dict[str, int] = {}
        self._compiling: set[str] = set()
        # Every closed bar (live or history) starts a new evaluation: each LET is computed at
        # most once per bar, however many rules, indicators and other LETs use it.
        self._clock = [0]
        if self.lets:
            clock = self._clock

            def tick(_bar: Bar) -> None:
                clock[0] += 1

            for state in self.streams.values():
                state.updaters.append(tick)
        self._declared_warmup = {s.alias: s.warmup for s in strategy.streams}
        # WARMUP N BARS holds the stream's rules until N of its bars have closed (history from
        # the venue counts): alias -> bars still to close. Empty once every stream is warm.
        self._holding = {alias: n for alias, n in self._declared_warmup.items() if n}
        self._lookback: dict[str, int] = {}  # alias -> longest indicator chain on it (bars)
        self.rules = [self._rule(rule) for rule in strategy.rules]
        self._by_stream: dict[str, list[Rule]] = {alias: [] for alias in self.streams}
        for rule in self.rules:
            for alias in rule.streams:
                self._by_stream[alias].append(rule)

    # ------------------------------------------------------------ running
    def on_bar(self, alias: str, bar: Bar) -> list[Intent]:
        state = self.streams[alias]
        state.bar = bar
        for update in state.updaters:
            update(bar)
        if self._holding:
            held = self._count(alias)
            if held:
                return self._held(alias, held)
        fired: list[Intent] = []
        for rule in self._by_stream[alias]:
            now = rule.condition()
            if now and not rule.previous:
                for action in rule.actions:
                    intent = action()
                    if intent is not None:
                        fired.append(intent)
            rule.previous = now
        return fired

    def warm(self, alias: str, bar: Bar) -> None:
        """Feed a bar of history: the stream's indicators update and its rules' conditions are
        evaluated (crosses remember their sides, each rule its edge-trigger state), but no action
        runs and nothing is returned."""
        state = self.streams[alias]
        state.bar = bar
        for update in state.updaters:
            update(bar)
        if self._holding:
            self._count(alias)
        for rule in self._by_stream[alias]:
            rule.previous = rule.condition()

    def _count(self, alias: str) -> frozenset[str]:
        """Count a closed bar of ``alias`` towards its WARMUP; returns the streams whose warm-up
        had not ended before this bar (this bar is the last one held when it ends it)."""
        held = frozenset(self._holding)
        left = self._holding.get(alias)
        if left is not None:
            if left > 1:
                self._holding[alias] = left - 1
            else:
                del self._holding[alias]
        return held

    def _held(self, alias: str, held: frozenset[str]) -> list[Intent]:
        """Rules on a stream still warming up see the bar as history: their conditions are
        evaluated (edges and crosses remembered) but nothing acts."""
        fired: list[Intent] = []
        for rule in self._by_stream[alias]:
            now = rule.condition()
            if now and not rule.previous and not (rule.streams & held):
                for action in rule.actions:
                    intent = action()
                    if intent is not None:
                        fired.append(intent)
            rule.previous = now
        return fired

    def warmup_bars(self, alias: str) -> int:
        """Bars of history ``alias`` needs before live bars count: its ``WARMUP N BARS``, else the
        longest indicator period the rules use on it (an indicator of an indicator adds up both
        periods; ``macd`` needs its slow and signal periods)."""
        declared = self._declared_warmup.get(alias)
        return declared if declared is not None else self._lookback.get(alias, 0)

    # ------------------------------------------------------------ compiling
    def _streams_of(self, expr: ast.Expr) -> list[str]:
        """The streams ``expr`` reads, through LETs (each LET's streams are computed once)."""
        found: list[str] = []
        for node in walk(expr):
            alias = None
            if isinstance(node, ast.Field | ast.PositionRef):
                alias = node.alias
            elif isinstance(node, ast.Name):
                if node.name in self.streams:
                    alias = node.name
                elif self._is_let(node.name):
                    self._let(node.name)
                    found += self._let_streams.get(node.name, ())
            if alias is not None and alias in self.streams:
                found.append(alias)
        return list(dict.fromkeys(found))

    def _rule(self, rule: ast.Rule) -> Rule:
        cond = self.compile(rule.condition)

        def condition() -> bool:
            return cond() is True

        actions = [self._action(a) for a in rule.actions]
        return Rule(condition, actions, frozenset(self._streams_of(rule.condition)), rule.line)

    def _number(self, expr: ast.Expr) -> Callable[[], Decimal | None]:
        fn = self.compile(expr)

        def value() -> Decimal | None:
            v = fn()
            if v is None or isinstance(v, bool | str):
                return None
            return to_decimal(v)  # 0.1 * 3 is 0.3: no float noise reaches an order

        return value

    def _action(self, action: ast.Action) -> Callable[[], Intent | None]:
        if isinstance(action, ast.OrderAction):
            return self._order(action)
        if isinstance(action, ast.Close):
            intent: Intent = CloseIntent(action.alias, action.line)
        elif isinstance(action, ast.CloseAll):
            intent = CloseIntent(None, action.line)
        else:
            intent = LogIntent(action.level, action.message, action.line)
        return lambda: intent

    def _order(self, action: ast.OrderAction) -> Callable[[], Intent | None]:
        """An order is made whole or not at all: when its size or a declared bracket leg has no
        finite value as it fires, the intent carries why, and the order manager refuses it."""
        sizing_kind = action.sizing.kind if action.sizing else "qty"
        size = self._number(action.sizing.value) if action.sizing else (lambda: Decimal(1))
        legs: list[tuple[str, str, Callable[[], Decimal | None], ast.Expr]] = []
        if action.bracket is not None:
            for leg in (action.bracket.stop_loss, action.bracket.take_profit):
                if leg is not None:
                    legs.append((leg.kind, leg.mode, self._number(leg.value), leg.value))
        explain = Explainer(self.compile, self.lets, self.streams).why

        def fire() -> Intent | None:
            value = size()
            problem = None
            if (value is None or not value.is_finite()) and action.sizing is not None:
                problem = f"SIZING has no value ({explain(action.sizing.value)})"
            stop = take = None
            for kind, mode, fn, expr in legs:
                leg_value = fn()
                if problem is None and (leg_value is None or not leg_value.is_finite()):
                    name = "STOP_LOSS" if kind == "stop_loss" else "TAKE_PROFIT"
                    problem = f"{name} has no value ({explain(expr)})"
                if leg_value is None:
                    continue
                if kind == "stop_loss":
                    stop = (mode, leg_value)
                else:
                    take = (mode, leg_value)
            return OrderIntent(
                action.alias, action.side, sizing_kind, value, stop, take, action.line, problem
            )

        return fire

    def compile(self, expr: ast.Expr) -> Fn:
        if isinstance(expr, ast.Number):
            constant = float(expr.value)
            return lambda: constant
        if isinstance(expr, ast.Bool | ast.String):
            literal: Value = expr.value
            return lambda: literal
        if isinstance(expr, ast.Name):
            return self._name(expr.name)
        if isinstance(expr, ast.Field):
            state = self.streams[expr.alias]
            attr = expr.field.lower()

            def bar_field() -> Value:
                bar = state.bar
                return None if bar is None else float(getattr(bar, attr))

            return bar_field
        if isinstance(expr, ast.PositionRef):
            portfolio, alias, pfield = self.portfolio, expr.alias, expr.field
            return lambda: portfolio.position(alias, pfield)
        if isinstance(expr, ast.AccountRef):
            portfolio, afield = self.portfolio, expr.field.lower()
            return lambda: portfolio.account(afield)
        if isinstance(expr, ast.Unary):
            inner = self.compile(expr.operand)

            def negate() -> Value:
                v = inner()
                return -v if isinstance(v, float) else None

            return negate
        if isinstance(expr, ast.Not):
            operand = self.compile(expr.operand)
            return lambda: operand() is not True
        if isinstance(expr, ast.Binary):
            return self._binary(expr)
        if isinstance(expr, ast.Crosses):
            return self._crosses(expr)
        if isinstance(expr, ast.Between):
            v, lo, hi = (self.compile(e) for e in (expr.value, expr.low, expr.high))

            def between() -> Value:
                x, a, b = v(), lo(), hi()
                if not all(isinstance(t, float) for t in (x, a, b)):
                    return False
                return a <= x <= b  # type: ignore[operator]

            return between
        if isinstance(expr, ast.In):
            v = self.compile(expr.value)
            options = [self.compile(o) for o in expr.options]

            def within() -> Value:
                x = v()
                return x is not None and any(x == o() for o in options)

            return within
        if isinstance(expr, ast.Call):
            return self._call(expr)
        raise TypeError(f"cannot compile {type(expr).__name__}")  # pragma: no cover

    def _name(self, name: str) -> Fn:
        if name in self.streams:
            state = self.streams[name]
            return lambda: None if state.bar is None else float(state.bar.close)
        if name in self.params:
            value = self.params[name]
            constant: Value = float(value) if isinstance(value, Decimal) else value
            return lambda: constant
        return self._let(name)

    # ------------------------------------------------------------ LETs
    def _let(self, name: str) -> Fn:
        """A LET's shared value: compiled once, evaluated at most once per bar.

        Its dependencies are compiled first, deepest first and without recursion, so a chain of
        any length compiles; a LET in a cycle (refused by the checker) stays null.
        """
        fn = self._let_fns.get(name)
        if fn is not None:
            return fn
        if name in self._compiling:
            return lambda: None
        order = self._let_order(name)
        self._compiling.update(order)
        for let in order:
            self._let_fns[let] = self._let_slot(let)
        return self._let_fns[name]

    def _is_let(self, name: str) -> bool:
        """Whether ``name`` means a LET (stream aliases and PARAMs are looked up first)."""
        return name in self.lets and name not in self.streams and name not in self.params

    def _let_deps(self, name: str) -> list[str]:
        return [n for n in dict.fromkeys(names_in(self.lets[name])) if self._is_let(n)]

    def _let_order(self, root: str) -> list[str]:
        """``root`` and the LETs it needs that are not compiled yet, dependencies first."""
        order: list[str] = []
        entered = {root}
        stack = [(root, iter(self._let_deps(root)))]
        while stack:
            name, deps = stack[-1]
            for dep in deps:
                if dep not in entered and dep not in self._let_fns:
                    entered.add(dep)
                    stack.append((dep, iter(self._let_deps(dep))))
                    break
            else:
                stack.pop()
                order.append(name)
        return order

    def _let_slot(self, name: str) -> Fn:
        expr = self.lets[name]
        slot = _LetSlot(self.compile(expr))
        # The LETs compiled before this one that it reads (those in a cycle read as null).
        slot.deps = [self._let_slots[d] for d in self._let_deps(name) if d in self._let_slots]
        self._let_slots[name] = slot
        self._let_streams[name] = self._streams_of(expr)
        self._let_history[name] = self._history(expr)
        clock = self._clock

        def let_value() -> Value:
            if slot.stamp == clock[0]:
                return slot.value
            return slot.refresh(clock[0])

        return let_value

    def _binary(self, expr: ast.Binary) -> Fn:
        left, right = self.compile(expr.left), self.compile(expr.right)
        op = expr.op
        if op == "and":
            return lambda: (left() is True) & (right() is True)
        if op == "or":
            return lambda: (left() is True) | (right() is True)
        if op in _CMP:
            compare = _CMP[op]
            equality = op in ("=", "!=")

            def comparison() -> Value:
                a, b = left(), right()
                if a is None or b is None:
                    return False
                if not equality and not (isinstance(a, float) and isinstance(b, float)):
                    return False
                return compare(a, b)

            return comparison
        if op in _ARITH:
            arith = _ARITH[op]

            def arithmetic() -> Value:
                a, b = left(), right()
                if isinstance(a, float) and isinstance(b, float):
                    return arith(a, b)
                return None

            return arithmetic
        is_div = op == "/"

        def divide() -> Value:
            a, b = left(), right()
            if isinstance(a, float) and isinstance(b, float) and b != 0.0:
                return a / b if is_div else a % b
            return None

        return divide

    def _crosses(self, expr: ast.Crosses) -> Fn:
        left, right = self.compile(expr.left), self.compile(expr.right)
        above = expr.direction == "above"
        previous: list[Value] = [None, None]

        def crosses() -> Value:
            a, b = left(), right()
            pa, pb = previous
            previous[0], previous[1] = a, b
            if a is None or b is None or pa is None or pb is None:
                return False
            if above:
                return pa <= pb and a > b  # type: ignore[operator]
            return pa > pb and a <= b  # type: ignore[operator]

        return crosses

    # ------------------------------------------------------------ indicators
    def _constant(self, expr: ast.Expr) -> float:
        value = constant_value(expr, self.params, self.lets)
        if value is None:  # the checker guarantees constants; keep the engine total anyway
            raise ValueError("indicator periods must be constants")
        return float(value)

    def _history(self, expr: ast.Expr) -> int:
        """The longest indicator chain in ``expr`` (through LETs, each computed once), in bars."""
        longest = 0
        for node in walk(expr):
            if isinstance(node, ast.Call):
                longest = max(longest, self._chain(node))
            elif isinstance(node, ast.Name) and self._is_let(node.name):
                self._let(node.name)
                longest = max(longest, self._let_history.get(node.name, 0))
        return longest

    def _chain(self, expr: ast.Call) -> int:
        """Bars an indicator call needs: its period plus what its input needs."""
        name = expr.name.lower()
        count = 3 if name.startswith("macd") else 1  # not Bollinger's k, which may be 1e400
        periods = [int(self._constant(a)) for a in expr.args[1 : 1 + count]]
        if name == "atr":
            return periods[0]
        own = periods[1] + periods[2] if name.startswith("macd") else periods[0]
        return own + self._history(expr.args[0])

    def _needs(self, aliases: list[str], expr: ast.Call) -> None:
        bars = self._chain(expr)
        for alias in aliases:
            if alias in self.streams and bars > self._lookback.get(alias, 0):
                self._lookback[alias] = bars

    def _call(self, expr: ast.Call) -> Fn:
        name = expr.name.lower()
        args = expr.args
        if name == "atr":
            alias = args[0].name if isinstance(args[0], ast.Name) else ""
            self._needs([alias], expr)
            key: Any = ("atr", alias, self._constant(args[1]))
            atr: ind.Atr | None = self._indicators.get(key)
            if atr is None:
                atr = ind.Atr(int(key[2]))
                self._indicators[key] = atr
                true_range = atr

                def update_atr(bar: Bar) -> None:
                    true_range.update_bar(bar.high, bar.low, bar.close)

                self.streams[alias].updaters.append(update_atr)
            found = atr
            return lambda: found.value
        source = self.compile(args[0])
        driver = self._streams_of(args[0])
        self._needs(driver, expr)
        constants = tuple(self._constant(a) for a in args[1:])
        if name.startswith("macd"):
            key = ("macd", _canon(args[0], self.streams), constants)
            attr = {"macd": "value", "macd_signal": "signal", "macd_hist": "hist"}[name]
            make: Callable[[], Any] = lambda: ind.Macd(*(int(c) for c in constants))  # noqa: E731
        elif name.startswith("bollinger"):
            k = constants[1] if len(constants) > 1 else 2.0
            key = ("bollinger", _canon(args[0], self.streams), constants[0], k)
            attr = {"bollinger_upper": "upper", "bollinger_middle": "middle"}.get(name, "lower")
            make = lambda: ind.Bollinger(int(constants[0]), k)  # noqa: E731
        else:
            cls = {
                "sma": ind.Sma,
                "ema": ind.Ema,
                "wma": ind.Wma,
                "rsi": ind.Rsi,
                "stdev": ind.Stdev,
                "highest": ind.Highest,
                "lowest": ind.Lowest,
            }[name]
            key = (name, _canon(args[0], self.streams), constants)
            attr = "value"
            make = lambda: cls(int(constants[0]))  # noqa: E731
        instance = self._indicators.get(key)
        if instance is None:
            instance = make()
            self._indicators[key] = instance
            if driver:

                def update(_bar: Bar, i: Any = instance) -> None:
                    x = source()
                    if isinstance(x, float):
                        i.update(x)

                self.streams[driver[0]].updaters.append(update)
        shared = instance
        return lambda: getattr(shared, attr)
