"""The single resolver: strategy streams -> routes (SPEC §4).

``validate``, ``deploy``, ``run`` and every daemon session call :func:`plan_routes`; the preview a user
sees is the plan a session executes. Nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from qkt.brokers.mt5.symbols import to_broker_symbol
from qkt.brokers.registry import PAPER_LABELS, BrokerRegistry, RegistryEntry
from qkt.brokers.volumes import volume_problems, volume_text
from qkt.diagnostics import Diagnostic, apply_strict, did_you_mean, error, has_errors, warning
from qkt.dsl import order_actions, static_quantity
from qkt.dsl.ast import Strategy, Stream

RouteStatus = Literal["ok", "fallback", "error"]
FALLBACK_PROFILE = "paper"
GATEWAY_MAX_ORDER_VOLUME = Decimal(100)
"""The largest order an mt5-gateway takes (its ``MAX_ORDER_VOLUME``, 100 lots unless configured)."""
_TRUTHY = frozenset({"1", "true", "yes", "on"})
_FALSY = frozenset({"0", "false", "no", "off"})
STRICT_ENV = "QKT_STRICT_BROKERS"
UNDECIDED = "undecided"
"""The source of a strictness nothing decided: the configuration or the environment is wrong."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where one stream's orders go."""

    alias: str
    label: str
    symbol: str
    timeframe: str
    profile: str
    type: str
    target: str
    broker_symbol: str
    magic: int | None
    fallback: bool
    status: RouteStatus

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "label": self.label,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "profile": self.profile,
            "type": self.type,
            "target": self.target,
            "broker_symbol": self.broker_symbol,
            "magic": self.magic,
            "fallback": self.fallback,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """One route per stream, plus what the resolver had to say about them."""

    strategy: str
    routes: tuple[Route, ...]
    diagnostics: tuple[Diagnostic, ...]
    strict: bool

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    @property
    def profiles(self) -> tuple[str, ...]:
        """The profiles a session must build brokers for, each once, in stream order."""
        return tuple(dict.fromkeys(r.profile for r in self.routes))

    def route(self, alias: str) -> Route | None:
        return next((r for r in self.routes if r.alias == alias), None)


@dataclass(frozen=True, slots=True)
class StrictMode:
    on: bool
    source: str  # "--strict-brokers", "env:QKT_STRICT_BROKERS", "portfolio:<file>", "config:...", "default"


def resolve_strict(
    flag: bool | None,
    env: Mapping[str, str],
    config_value: bool,
    config_source: str = "default",
    portfolio_value: bool | None = None,
    portfolio_source: str = "portfolio",
) -> StrictMode:
    """Strictness by precedence: flag > ``$QKT_STRICT_BROKERS`` > portfolio file > config file.

    An empty (or blank) ``$QKT_STRICT_BROKERS`` is unset. A value that is not a boolean raises
    ConfigError (``env-bad-strict``), whatever the flag: guessing would one day trade under
    rules the user did not ask for."""
    env_value = _strict_env(env)
    if flag is not None:
        return StrictMode(flag, "--strict-brokers" if flag else "--no-strict-brokers")
    if env_value is not None:
        return StrictMode(env_value, f"env:{STRICT_ENV}")
    if portfolio_value is not None:
        return StrictMode(portfolio_value, portfolio_source)
    return StrictMode(config_value, config_source)


@dataclass(frozen=True, slots=True)
class StrictSummary:
    """What decided strictness over several files: ``on`` only when every file was checked
    strictly; ``source`` and ``text`` name each deciding source (and its files, where files
    were decided differently, such as a portfolio's ``strict_brokers``)."""

    on: bool
    source: str
    text: str


def summarize_strict(
    default: StrictMode, files: Sequence[tuple[str, StrictMode]] = ()
) -> StrictSummary:
    """``default`` decided every file not listed otherwise in ``files`` (path, mode)."""
    groups: dict[StrictMode, list[str]] = {}
    for path, mode in files:
        groups.setdefault(mode, []).append(path)
    if not groups:
        groups[default] = []

    def word(mode: StrictMode) -> str:
        return "on" if mode.on else "off"

    if len(groups) == 1:
        (mode,) = groups
        if mode.source == UNDECIDED:
            return StrictSummary(False, UNDECIDED, "undecided (see the errors)")
        return StrictSummary(mode.on, mode.source, f"{word(mode)} ({mode.source})")
    texts, sources = [], []
    for mode, paths in groups.items():
        if mode == default:
            texts.append(f"{word(mode)} ({mode.source})")
            sources.append(mode.source)
        else:
            texts.append(f"{word(mode)} for {', '.join(paths)} ({mode.source})")
            sources.append(f"{mode.source} for {', '.join(paths)}")
    if default in groups:  # the default first: it decided everything not named
        first = list(groups).index(default)
        texts.insert(0, texts.pop(first))
        sources.insert(0, sources.pop(first))
    return StrictSummary(all(m.on for m in groups), "; ".join(sources), ", ".join(texts))


def _strict_env(env: Mapping[str, str]) -> bool | None:
    """``$QKT_STRICT_BROKERS`` as a boolean; None when unset or empty."""
    raw = env.get(STRICT_ENV)
    word = "" if raw is None else raw.strip().lower()
    if not word:
        return None
    if word in _TRUTHY or word in _FALSY:
        return word in _TRUTHY
    from qkt.errors import ConfigError

    raise ConfigError(strict_env_diagnostics(env))


def strict_env_diagnostics(env: Mapping[str, str]) -> list[Diagnostic]:
    """The error of a ``$QKT_STRICT_BROKERS`` that is neither a boolean nor empty."""
    raw = env.get(STRICT_ENV)
    word = "" if raw is None else raw.strip().lower()
    if not word or word in _TRUTHY or word in _FALSY:
        return []
    shown = raw if raw is None or len(raw) <= 40 else raw[:37] + "..."
    return [
        error(
            "env-bad-strict",
            f"{STRICT_ENV}={shown!r} is not a boolean "
            "(1/0, true/false, yes/no, on/off; empty means unset)",
        )
    ]


def _paper_route(stream: Stream, *, fallback: bool, status: RouteStatus) -> Route:
    return Route(
        alias=stream.alias,
        label=stream.label,
        symbol=stream.symbol,
        timeframe=stream.timeframe,
        profile=FALLBACK_PROFILE,
        type="paper",
        target="paper",
        broker_symbol=stream.symbol,
        magic=None,
        fallback=fallback,
        status=status,
    )


def _profile_route(stream: Stream, entry: RegistryEntry) -> Route:
    profile = entry.profile
    broker_symbol = stream.symbol
    if profile.type == "mt5":
        broker_symbol = to_broker_symbol(stream.symbol, profile.aliases, profile.symbol_suffix)
    return Route(
        alias=stream.alias,
        label=stream.label,
        symbol=stream.symbol,
        timeframe=stream.timeframe,
        profile=profile.name,
        type=profile.type,
        target=profile.target,
        broker_symbol=broker_symbol,
        magic=profile.magic,
        fallback=False,
        status="ok",
    )


def plan_routes(
    strategy: Strategy,
    registry: BrokerRegistry,
    strict: bool,
    *,
    path: str | None = None,
    params: Mapping[str, Decimal | bool | str] | None = None,
) -> RoutePlan:
    """Resolve every stream of ``strategy`` to a route; strict mode refuses paper fallbacks."""
    diags: list[Diagnostic] = []
    routes: list[Route] = []
    labels = sorted(label.upper() for label in registry)
    for stream in strategy.streams:
        entry = registry.resolve(stream.label)
        if entry is not None:
            routes.append(_profile_route(stream, entry))
            continue
        if stream.label.lower() in PAPER_LABELS:
            # BACKTEST / PAPER route to paper explicitly, even with an empty registry.
            routes.append(_paper_route(stream, fallback=False, status="ok"))
            continue
        routes.append(_paper_route(stream, fallback=True, status="error" if strict else "fallback"))
        diags.append(
            Diagnostic(
                "warning",
                "unknown-label",
                f"label `{stream.label}` has no broker profile (stream `{stream.alias}` "
                "would fall back to paper trading)",
                path=path,
                line=stream.line,
                column=stream.label_column,
                hint=did_you_mean(stream.label, labels),
                strict=True,
            )
        )
    by_alias = {r.alias: r for r in routes}
    diags.extend(_volume_checks(strategy, registry, by_alias, path, params))
    return RoutePlan(strategy.name, tuple(routes), tuple(apply_strict(diags, strict)), strict)


@dataclass(frozen=True, slots=True)
class OrderSize:
    """A BUY/SELL whose quantity is known before anything runs, and where its SIZING value is."""

    alias: str
    quantity: Decimal
    line: int
    column: int


def order_sizes(
    strategy: Strategy, params: Mapping[str, Decimal | bool | str] | None = None
) -> tuple[OrderSize, ...]:
    """Every order of ``strategy`` with a constant quantity (a literal, a PARAM — ``params``
    override their defaults — or a constant LET), positioned at its SIZING value."""
    sizes = []
    for action in order_actions(strategy):
        qty = static_quantity(strategy, action, params)
        if qty is not None and action.sizing is not None:
            value = action.sizing.value
            sizes.append(OrderSize(action.alias, qty, value.line, value.column))
    return tuple(sizes)


def _decimal(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _volume_checks(
    strategy: Strategy,
    registry: BrokerRegistry,
    routes: Mapping[str, Route],
    path: str | None,
    params: Mapping[str, Decimal | bool | str] | None,
) -> Iterable[Diagnostic]:
    """Order sizes against the instrument overrides the profile knows, and against the
    gateway's own order limit where the overrides give no maximum (SPEC §4.2)."""
    for size in order_sizes(strategy, params):
        route = routes.get(size.alias)
        if route is None or route.type != "mt5":
            continue
        entry = registry.resolve(route.profile)
        if entry is None:
            continue
        spec = entry.profile.instrument(route.symbol, route.broker_symbol) or {}
        min_volume, step, max_volume = (
            _decimal(spec.get(key)) for key in ("min_volume", "volume_step", "max_volume")
        )
        where = {"path": path, "line": size.line, "column": size.column, "strict": True}
        venue = f"{route.broker_symbol} on `{route.profile}`"
        found = volume_problems(size.quantity, min_volume, step, max_volume)
        for problem, limit in found:
            yield warning(
                f"volume-{problem}",
                f"order size {size.quantity} {volume_text(problem, limit)} of {venue}",
                **where,
            )
        if max_volume is None and size.quantity > GATEWAY_MAX_ORDER_VOLUME:
            yield warning(
                "volume-above-gateway-max",
                f"order size {size.quantity} of stream `{size.alias}` is above the "
                f"{GATEWAY_MAX_ORDER_VOLUME}-lot limit of an mt5-gateway's orders: "
                f"{venue} would refuse it",
                hint=f"split the order, or set instrument_overrides.{route.symbol}.max_volume "
                "if this gateway allows more",
                **where,
            )


def check_shared_accounts(
    plans: Sequence[tuple[str, RoutePlan]],
    *,
    allowed: bool,
    path: str | None = None,
    line: int | None = None,
) -> list[Diagnostic]:
    """Two strategies of one deployment sending the same symbol to the same account (SPEC §4.2)."""
    if allowed:
        return []
    owners: dict[tuple[str, str], str] = {}
    diags: list[Diagnostic] = []
    for name, plan in plans:
        for route in plan.routes:
            if route.type == "paper":
                continue  # paper positions are kept per session: nothing nets on an account
            key = (route.profile, route.broker_symbol)
            first = owners.setdefault(key, name)
            if first != name:
                diags.append(
                    warning(
                        "shared-account-symbol",
                        f"`{name}` and `{first}` both send {route.broker_symbol} to profile "
                        f"`{route.profile}`; their positions would net on one account",
                        path=path,
                        line=line,
                        hint="set `allow_shared_symbols: true` in the portfolio if intended",
                        strict=True,
                    )
                )
    return diags
