"""``qkt validate --probe``: ask each routed venue, read-only, whether it can take the plan.

MT5 gateways are asked here; Bybit profiles by :mod:`qkt.brokers.bybit.probe`, with the same codes.

Only profiles some route uses are probed, each once, all side by side. A probe looks at
``/health/ready`` once (it does not wait ``ready_timeout_ms``), then reads ``/account`` and
``/symbol_info/{broker_symbol}`` of every routed symbol at once. Nothing is ever sent.

- an unreachable or not-ready gateway is a strict-sensitive warning (an error in strict mode):
  ``gateway-unreachable``;
- always errors: a refused api_key (``gateway-auth-refused``), an account other than the profile's
  ``expected_*`` fields (``account-mismatch``), a routed symbol the gateway does not have
  (``symbol-not-found``) or does not trade (``symbol-not-tradable``: ``trade_mode`` 0 disabled or
  3 close-only; a gateway that omits ``trade_mode`` trades it), and a strategy's constant order size
  outside the symbol's live ``volume_min``/``volume_step``/``volume_max``
  (``venue-volume-below-min``, ``venue-volume-off-step``, ``venue-volume-above-max``), positioned
  at the SIZING value in the strategy file.

In JSON, volumes are decimal strings (``"0.01"``), exactly as qkt read them; ``digits`` is an
integer; a value qkt could not read is ``null``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from qkt.brokers.volumes import volume_problems, volume_text
from qkt.diagnostics import Diagnostic, apply_strict, error, sort_key, warning
from qkt.routing import Route

if TYPE_CHECKING:
    from qkt.brokers.mt5.client import GatewayClient, SymbolInfo
    from qkt.brokers.registry import BrokerRegistry
    from qkt.validation import FileReport, ValidationReport

NOT_TRADABLE = {0: "disabled", 3: "close-only"}
"""MT5 ``SYMBOL_TRADE_MODE`` values that refuse new positions (1 long-only, 2 short-only and
4 full still open positions)."""

Status = Literal["ready", "refused", "unreachable", "not-ready"]


@dataclass(frozen=True, slots=True)
class ProbedAccount:
    login: int
    server: str
    trade_mode: str  # demo | contest | real
    margin_mode: str  # netting | hedging

    def to_json(self) -> dict[str, Any]:
        return {
            "login": self.login,
            "server": self.server,
            "trade_mode": self.trade_mode,
            "margin_mode": self.margin_mode,
        }


@dataclass(frozen=True, slots=True)
class ProbedSymbol:
    """One routed symbol as the venue describes it; ``tradable`` is None when it was not asked
    (the gateway was not ready)."""

    symbol: str
    broker_symbol: str
    tradable: bool | None = None
    min_volume: Decimal | None = None
    volume_step: Decimal | None = None
    max_volume: Decimal | None = None
    digits: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "broker_symbol": self.broker_symbol,
            "tradable": self.tradable,
            "min_volume": _text(self.min_volume),
            "volume_step": _text(self.volume_step),
            "max_volume": _text(self.max_volume),
            "digits": self.digits,
        }


@dataclass(frozen=True, slots=True)
class Probe:
    """What one profile's venue answered."""

    profile: str
    type: str
    target: str
    status: Status
    account: ProbedAccount | None = None
    symbols: tuple[ProbedSymbol, ...] = ()
    problem: str | None = None
    refusal: str | None = None  # "refused the api_key (HTTP 401)" when status is refused

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def status_text(self) -> str:
        """The STATUS cell of the text table."""
        if self.status == "refused":
            return self.refusal or "refused the api_key"
        return {"ready": "ready", "unreachable": "UNREACHABLE", "not-ready": "NOT READY"}[
            self.status
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "type": self.type,
            "target": self.target,
            "ready": self.ready,
            "account": None if self.account is None else self.account.to_json(),
            "symbols": [s.to_json() for s in self.symbols],
            "problem": self.problem,
        }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass
class _Target:
    """One profile to probe: its routes' symbols, in the order the plan first names them."""

    route: Route
    profile: Any  # qkt.config.ResolvedProfile
    symbols: dict[str, str] = field(default_factory=dict)  # broker symbol -> qkt symbol


@dataclass
class _Answer:
    probe: Probe
    diagnostics: list[Diagnostic]
    info: dict[str, Any]  # broker symbol -> its volume limits (SymbolInfo, Limits), if tradable


def probe_report(report: ValidationReport, registry: BrokerRegistry) -> None:
    """Probe every MT5 profile ``report`` routes to; add the probes and their diagnostics to it
    (order sizes against live volume limits to the strategy file they are written in)."""
    files = [c for f in report.files for c in (f, *f.children)]
    probes, diags = probe_routes((r for f in files for r in f.routes), registry, files)
    report.probes = probes
    report.probed = True
    report.diagnostics.extend(apply_strict(diags, report.strict.on))
    report.diagnostics.sort(key=sort_key)


def probe_routes(
    routes: Iterable[Route],
    registry: BrokerRegistry,
    files: Sequence[FileReport] = (),
) -> tuple[list[Probe], list[Diagnostic]]:
    """Probe every routed MT5 profile once, the gateways side by side. Diagnostics about a
    file's order sizes go into that file's report; the others are returned."""
    targets: dict[str, _Target] = {}
    for route in routes:
        entry = registry.resolve(route.profile)
        if route.type not in ("mt5", "bybit") or entry is None:
            continue
        target = targets.setdefault(route.profile, _Target(route, entry.profile))
        target.symbols.setdefault(route.broker_symbol, route.symbol)
    if not targets:
        return [], []

    async def probe_all() -> list[_Answer]:
        return list(await asyncio.gather(*(_probe(t) for t in targets.values())))

    answers = {a.probe.profile: a for a in asyncio.run(probe_all())}
    for report in files:
        found = _volume_checks(report, answers)
        if found:
            report.diagnostics.extend(found)
            report.diagnostics.sort(key=sort_key)
    return [a.probe for a in answers.values()], [d for a in answers.values() for d in a.diagnostics]


async def _probe(target: _Target) -> _Answer:
    from qkt.brokers.mt5.client import GatewayClient

    if target.profile.type == "bybit":
        from qkt.brokers.bybit.probe import probe

        answer: _Answer = await probe(target)
        return answer

    values = target.profile.values
    client = GatewayClient(
        target.route.target,
        api_key=target.profile.secret("api_key"),
        timeout_ms=int(values.get("http_timeout_ms") or 5000),
        retry_attempts=int(values.get("retry_attempts") or 1),
    )
    try:
        return await _ask(client, target)
    finally:
        await client.aclose()


async def _ask(client: GatewayClient, target: _Target) -> _Answer:
    from qkt.brokers.mt5.checks import HEDGING, account_mismatches, trade_mode
    from qkt.brokers.mt5.client import GatewayError

    name, url = target.route.profile, target.route.target
    unasked = tuple(ProbedSymbol(s, b) for b, s in target.symbols.items())
    state, reason = await client.readiness_state()
    if state == "refused":
        return _Answer(
            Probe(name, "mt5", url, "refused", symbols=unasked, problem=reason, refusal=reason),
            [
                error(
                    "gateway-auth-refused",
                    f"profile `{name}`: gateway {url} {reason}",
                    hint="check the profile's api_key",
                )
            ],
            {},
        )
    if state != "ready":
        status: Status = "unreachable" if reason.startswith("is unreachable") else "not-ready"
        return _Answer(
            Probe(name, "mt5", url, status, symbols=unasked, problem=reason),
            [
                warning(
                    "gateway-unreachable", f"profile `{name}`: gateway {url} {reason}", strict=True
                )
            ],
            {},
        )

    async def symbol(broker_symbol: str) -> SymbolInfo | GatewayError:
        try:
            return await client.symbol_info(broker_symbol)
        except GatewayError as exc:
            return exc

    async def account() -> Any:
        try:
            return await client.account()
        except GatewayError as exc:
            return exc

    got = await asyncio.gather(account(), *(symbol(b) for b in target.symbols))
    diags: list[Diagnostic] = []
    problems: list[str] = []
    probed_account: ProbedAccount | None = None
    if isinstance(got[0], GatewayError):
        message = got[0].diagnostics[0].message
        diags.append(warning("gateway-unreachable", f"profile `{name}`: {message}", strict=True))
        problems.append(f"/account could not be read ({message})")
    else:
        acct = got[0]
        positions = "hedging" if acct.margin_mode == HEDGING else "netting"
        probed_account = ProbedAccount(acct.login, acct.server, trade_mode(acct), positions)
        for mismatch in account_mismatches(name, url, target.profile.values, acct):
            diags.append(mismatch)
            problems.append(mismatch.message.split(f"{url} ", 1)[-1])
    symbols: list[ProbedSymbol] = []
    info: dict[str, SymbolInfo] = {}
    for (broker_symbol, qkt_symbol), answer in zip(target.symbols.items(), got[1:], strict=True):
        if isinstance(answer, GatewayError):
            text = answer.diagnostics[0].message.split(": ", 1)[-1]
            symbols.append(ProbedSymbol(qkt_symbol, broker_symbol, tradable=False))
            diags.append(
                error(
                    "symbol-not-found",
                    f"profile `{name}`: gateway {url} has no symbol {broker_symbol} "
                    f"(for {qkt_symbol}): {text}",
                    hint="check the profile's symbol_suffix and aliases",
                )
            )
            problems.append(f"{broker_symbol} is not on the gateway")
            continue
        closed = NOT_TRADABLE.get(answer.trade_mode) if answer.trade_mode is not None else None
        symbols.append(
            ProbedSymbol(
                qkt_symbol,
                broker_symbol,
                tradable=closed is None,
                min_volume=answer.volume_min,
                volume_step=answer.volume_step,
                max_volume=answer.volume_max,
                digits=answer.digits,
            )
        )
        if closed is not None:
            diags.append(
                error(
                    "symbol-not-tradable",
                    f"profile `{name}`: {broker_symbol} (for {qkt_symbol}) is {closed} on "
                    f"gateway {url} (trade_mode {answer.trade_mode}): no position can be opened",
                )
            )
            problems.append(f"{broker_symbol} is {closed}")
        else:
            info[broker_symbol] = answer
    probe = Probe(
        name,
        "mt5",
        url,
        "ready",
        account=probed_account,
        symbols=tuple(symbols),
        problem="; ".join(problems) or None,
    )
    return _Answer(probe, diags, info)


def _volume_checks(report: FileReport, answers: dict[str, _Answer]) -> list[Diagnostic]:
    """The file's constant order sizes against the live limits of the symbols they go to."""
    routes = {r.alias: r for r in report.routes}
    found: list[Diagnostic] = []
    for size in report.orders:
        route = routes.get(size.alias)
        answer = answers.get(route.profile) if route is not None else None
        if route is None or answer is None or route.broker_symbol not in answer.info:
            continue
        live = answer.info[route.broker_symbol]
        for problem, limit in volume_problems(
            size.quantity, live.volume_min, live.volume_step, live.volume_max
        ):
            found.append(
                error(
                    f"venue-volume-{problem}",
                    f"order size {size.quantity} of stream `{size.alias}` "
                    f"{volume_text(problem, limit)} of {route.broker_symbol} on `{route.profile}` "
                    f"(live, from gateway {route.target})",
                    path=report.path,
                    line=size.line,
                    column=size.column,
                )
            )
    return found
