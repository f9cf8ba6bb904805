"""What the daemon decides before a deploy starts anything (SPEC §5.4, §6.1).

Each child is planned again here, with the daemon's own registry (the one it built at start):
the source is parsed, its params go through :func:`qkt.params.apply_params` (the one parameter
check), and a :class:`~qkt.session.LiveSession` is built — which calls
:func:`~qkt.routing.plan_routes`, the resolver ``qkt validate`` uses, and refuses a plan with
errors in strict mode. Strictness, highest first: the daemon's ``--strict-brokers``, the
deploy's ``--strict-brokers/--no-strict-brokers`` (or the client's ``$QKT_STRICT_BROKERS``), the
portfolio's ``strict_brokers``, the daemon's configuration.

Then, across the daemon:

- **netting conflicts**: a route that sends a symbol to the same account (profile) as a running
  deployment of another portfolio is a warning (an error in strict mode): the venue nets their
  positions into one. Accounts known to hedge (``margin_mode`` 2) are not concerned;
- **no quotes**: under ``market_data.source: venue``, a stream without a quote source (a paper
  route) receives no bars: a warning ``no-quotes`` (an error in strict mode);
- **profile differences**: the client sends its resolution of each profile its routes use (no
  secret: a secret field is ``***`` when set); the fields that differ here are named.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qkt.config.resolved import ResolvedConfig
from qkt.daemon.models import ChildIn, DeployIn
from qkt.daemon.statedir import DEPLOYMENT_NAME
from qkt.daemon.wire import jsonable, profile_fields
from qkt.diagnostics import Diagnostic, apply_strict, error, has_errors, warning
from qkt.dsl import parse_strategy
from qkt.dsl.ast import Strategy
from qkt.errors import QktError
from qkt.params import Override, ParamValue, apply_params
from qkt.routing import Route

SessionFactory = Callable[[Strategy, Mapping[str, ParamValue], bool], Any]
"""Builds the child's session: (strategy, params, strict) -> LiveSession; raises QktError."""


@dataclass
class Planned:
    """One child as the daemon plans it."""

    child: ChildIn
    strict: bool
    strategy: Strategy | None = None
    params: dict[str, ParamValue] = field(default_factory=dict)
    """Every PARAM's value (defaults with the overrides applied)."""
    overrides: dict[str, ParamValue] = field(default_factory=dict)
    """The overrides as bound: what the journal keeps and a restart applies again."""
    session: Any = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.child.name

    @property
    def ok(self) -> bool:
        return self.session is not None and not has_errors(self.diagnostics)

    @property
    def routes(self) -> list[Route]:
        return list(self.session.plan.routes) if self.session is not None else []


def strictness(daemon: bool, flag: bool | None, portfolio: bool | None, config: bool) -> bool:
    if daemon:
        return True
    if flag is not None:
        return flag
    return portfolio if portfolio is not None else config


def plan_child(
    child: ChildIn, request: DeployIn, daemon_strict: bool, config: ResolvedConfig,
    make_session: SessionFactory,
) -> Planned:  # fmt: skip
    strict = strictness(daemon_strict, request.strict, child.strict, config.strict_brokers)
    planned = Planned(child, strict)
    diags = planned.diagnostics
    diags.extend(_name_problems(child))
    parsed = parse_strategy(child.source, child.file)
    diags.extend(parsed.diagnostics)
    if parsed.strategy is None or has_errors(parsed.diagnostics) or has_errors(diags):
        return planned
    strategy = parsed.strategy
    overrides = [Override(str(k), v, f"param {k}") for k, v in child.params.items()]
    values, problems = apply_params(strategy, overrides, path=child.file)
    diags.extend(problems)
    if problems:
        return planned
    planned.strategy = strategy
    planned.params = values
    planned.overrides = {k: values[k] for k in child.params if k in values}
    try:
        planned.session = make_session(strategy, values, strict)
    except QktError as exc:
        diags.extend(exc.diagnostics)
        return planned
    diags.extend(planned.session.warnings)
    return planned


def _name_problems(child: ChildIn) -> list[Diagnostic]:
    if DEPLOYMENT_NAME.fullmatch(child.name) is None:
        return [
            error(
                "bad-name",
                f"deployment name `{child.name}` must match [a-z0-9][a-z0-9_-]* "
                "(a portfolio's child: <portfolio>/<as>)",
            )
        ]
    if child.portfolio is not None and not child.name.startswith(f"{child.portfolio}/"):
        return [
            error("bad-name", f"`{child.name}` is not a child of portfolio `{child.portfolio}`")
        ]
    return []


def duplicate_names(children: Iterable[ChildIn]) -> list[Diagnostic]:
    seen: set[str] = set()
    found = []
    for child in children:
        if child.name in seen:
            found.append(error("duplicate-name", f"two children deploy as `{child.name}`"))
        seen.add(child.name)
    return found


@dataclass(frozen=True, slots=True)
class Running:
    """A deployment that holds a venue account: its name, portfolio and routes."""

    name: str
    portfolio: str | None
    routes: tuple[Route, ...]


def netting_conflicts(
    planned: Planned, running: Iterable[Running], hedging: Callable[[str], bool]
) -> list[Diagnostic]:
    """Routes of ``planned`` that send a symbol to the account of a running deployment of
    another portfolio (``hedging(profile)``: the account is known to hedge)."""
    found: list[Diagnostic] = []
    mine = planned.child.portfolio
    for other in running:
        if other.name == planned.name or (mine is not None and other.portfolio == mine):
            continue
        theirs = {(r.profile, r.broker_symbol) for r in other.routes if r.type != "paper"}
        for route in planned.routes:
            key = (route.profile, route.broker_symbol)
            if route.type == "paper" or key not in theirs or hedging(route.profile):
                continue
            found.append(
                warning(
                    "shared-netting-account",
                    f"`{planned.name}` sends {route.broker_symbol} to profile `{route.profile}`, "
                    f"as running deployment `{other.name}` does: the account nets their "
                    "positions into one",
                    path=planned.child.file,
                    hint="deploy them in one portfolio with `allow_shared_symbols: true`, or "
                    "trade on another account",
                    strict=True,
                )
            )
    return apply_strict(found, planned.strict)


def no_quotes(planned: Planned, config: ResolvedConfig) -> list[Diagnostic]:
    """Streams that receive no bars under ``market_data.source: venue``."""
    found: list[Diagnostic] = []
    for route in planned.routes:
        if route.type != "paper":
            continue  # a venue route: its quotes come from its own venue
        profile = config.profiles.get(route.profile)
        source = None if profile is None else profile.values.get("quotes_from")
        where = f"stream `{route.alias}` ({route.label}:{route.symbol} -> {route.profile})"
        if source:
            continue  # paper on the quotes of a venue profile (config checks it names one)
        found.append(
            warning(
                "no-quotes",
                f"{where} has no quote source under market_data.source venue (a paper route "
                "without quotes_from): it receives no bars",
                path=planned.child.file,
                hint="deploy with --replay CSV, or give its paper profile quotes_from",
                strict=True,
            )
        )
    return apply_strict(found, planned.strict)


def profile_differences(
    theirs: Mapping[str, Mapping[str, Any]], profiles: Iterable[str], config: ResolvedConfig
) -> dict[str, list[str]]:
    """For each of ``profiles`` the client resolved, the fields the daemon resolves otherwise."""
    out: dict[str, list[str]] = {}
    for name in dict.fromkeys(profiles):
        given = theirs.get(name)
        if given is None:
            continue
        mine = config.profiles.get(name)
        if mine is None:
            out[name] = ["(the daemon's configuration has no such profile)"]
            continue
        here = profile_fields(mine)
        there = {str(k): jsonable(v) for k, v in given.items()}
        fields = sorted(k for k in set(here) | set(there) if here.get(k) != there.get(k))
        if fields:
            out[name] = fields
    return out


def speed_problem(speed: str) -> Diagnostic | None:
    if speed in ("max", "realtime"):
        return None
    try:
        factor = float(speed)
    except ValueError:
        factor = math.nan
    if math.isfinite(factor) and factor > 0:
        return None
    return error("bad-speed", f"replay speed {speed!r} is not max, realtime or a positive number")


def pace(speed: str) -> str | float:
    return speed if speed in ("max", "realtime") else float(speed)
