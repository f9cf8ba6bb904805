"""``qkt run FILE --replay CSV``: one session in the foreground, orders and fills as they happen."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import output
from cli.common import globals_of


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def _speed(value: str) -> str | float:
    """``--speed``: max, realtime or a positive finite multiplier (nan, inf, 0 are refused)."""
    if value in ("max", "realtime"):
        return value
    try:
        factor = float(value)
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and factor > 0):
        raise typer.BadParameter(
            f"{value!r} is not max, realtime or a positive finite multiplier such as 10",
            param_hint="'--speed'",
        )
    return factor


def _params(values: list[str]) -> list[Any]:
    """``--param NAME=VALUE`` items as overrides; a malformed one is a command-line error. Their
    checks against the strategy are :func:`qkt.params.apply_params`, as for a portfolio."""
    from qkt.params import cli_override

    overrides = []
    for item in values:
        override = cli_override(item)
        if override is None:
            raise typer.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="--param")
        overrides.append(override)
    return overrides


def run(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="The .qkt strategy to run.", exists=True, dir_okay=False)
    ],
    replay: Annotated[
        Path | None,
        typer.Option(
            "--replay",
            help="CSV of bars or ticks to replay (default: market_data.replay of the config; "
            "without either, live quotes from the venues the streams route to).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    speed: Annotated[
        str | None,
        typer.Option(
            "--speed",
            help="max, realtime, or a multiplier of real time such as 10 (default: "
            "market_data.replay.speed when replaying the config's file, else max).",
            show_default=False,
        ),
    ] = None,
    strict_brokers: Annotated[
        bool | None,
        typer.Option(
            "--strict-brokers/--no-strict-brokers",
            help="Refuse labels with no broker profile instead of trading them on paper.",
            show_default=False,
        ),
    ] = None,
    paper: Annotated[
        bool,
        typer.Option(
            "--paper", help="Fill every stream on paper, whatever its route (said in the output)."
        ),
    ] = False,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Override a PARAM: NAME=VALUE (repeatable).")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object per line: order, fill, rejected, unknown, recovered, log, "
            "venue, summary.",
        ),
    ] = False,
) -> None:
    """Run one strategy in the foreground, on replayed data or live, and print every order and fill.

    Routing follows the configuration exactly as a daemon session would: MT5 legs go to their
    gateways, `--paper` fills every stream on paper instead. Without --replay (and with
    market_data.source: venue) the streams are priced by the venues they route to, after a
    warm-up on their bar history (WARMUP N BARS, or the longest indicator period). A paper replay
    always prints the same output. A position the venue already holds for this strategy (a
    restart) is announced as `recovered` and is the strategy's from the start. Ctrl-C waits for
    orders in flight, then stops with the summary, open positions included (exit code 130);
    SIGTERM does the same (exit code 143).
    """
    import asyncio

    from qkt.brokers.registry import BrokerRegistry
    from qkt.config import load_config
    from qkt.dsl import parse_strategy_file
    from qkt.errors import StrategyError
    from qkt.feeds.replay import ReplaySource
    from qkt.loop import drive
    from qkt.params import apply_params
    from qkt.routing import resolve_strict
    from qkt.session import LiveSession

    overrides = _params(param or [])
    env = dict(os.environ)
    config = load_config(globals_of(ctx).config, env=env)
    parsed = parse_strategy_file(file)
    if not parsed.ok or parsed.strategy is None:
        raise StrategyError([d for d in parsed.diagnostics if d.severity == "error"])
    params, problems = apply_params(parsed.strategy, overrides, path=str(file))
    if problems:
        raise StrategyError(problems)
    source_path = replay
    pace: str | float = "max" if speed is None else _speed(speed)
    if source_path is None:
        market = config.market_data
        if market.source == "replay" and market.replay is not None:
            source_path = Path(market.replay.path)
            if speed is None:  # the config's replay at the config's speed
                pace = market.replay.speed
    live = source_path is None
    source = ReplaySource(source_path, pace) if source_path is not None else None
    if source is not None:  # the whole file is judged before anything starts
        symbols = [stream.symbol for stream in parsed.strategy.streams]
        output.print_diagnostics(source.check(symbols).raise_for_errors(), err=True)
    if live and config.market_data.source != "venue":
        raise typer.BadParameter(
            f"market_data.source is {config.market_data.source}: pass --replay CSV "
            "(sample data is in examples/data/)",
            param_hint="--replay",
        )
    strict = resolve_strict(
        strict_brokers, env, config.strict_brokers, config.strict_brokers_source
    )
    printer = _Printer(as_json, parsed.strategy.name)
    balance = Decimal(config.paper.starting_balance)
    from qkt.engine.clock import WallClock

    session = LiveSession(
        parsed.strategy,
        BrokerRegistry.from_config(config),
        strict=strict.on,
        params=params,
        path=str(file),
        starting_balance=balance,
        paper_only=paper,
        on_event=printer.event,
        clock=WallClock() if live else None,
    )
    output.print_diagnostics(session.warnings, err=True)
    printer.routes(session, paper)
    interrupted = False
    if source is None and not session.needs_loop:
        raise typer.BadParameter(
            "no stream routes to a venue with quotes (MT5): pass --replay CSV",
            param_hint="--replay",
        )
    terminated: list[int] = []
    running: list[asyncio.Task[Any]] = []  # the session's task, once the loop runs it
    previous = _sigterm_as_ctrl_c(terminated, running)
    try:
        if source is not None and not session.needs_loop:
            for row in source:
                session.on_row(row)
        else:  # venue brokers are asyncio edges
            rows = source if source is not None else _venue_rows(session)

            async def main() -> Any:
                running.append(asyncio.current_task())  # type: ignore[arg-type]
                return await drive(session, rows, warm=source is None)  # live: warm first

            asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    try:
        _sigterm_noted(terminated)  # the summary is printed whole, whatever arrives now
        printer.summary(session.finish(), interrupted, strict)
    finally:
        _restore_sigterm(previous)
    if interrupted:
        raise typer.Exit(143 if terminated else 130)


def _sigterm_as_ctrl_c(terminated: list[int], running: list[Any]) -> Any:
    """SIGTERM (``kill``, ``docker stop``, systemd) stops the run exactly as Ctrl-C does: it is
    handed to whatever handles SIGINT now (asyncio's runner cancels the session's task, which
    waits for orders in flight and closes its connections; without a loop, KeyboardInterrupt).
    Where SIGINT is ignored (a background job of a shell), nobody handles it: the session's task
    in ``running`` is cancelled the same way. Returns the handler it replaced (None when signals
    cannot be handled here)."""
    import signal

    def on_sigterm(signum: int, frame: Any) -> None:
        terminated.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        elif running and not running[0].done():
            task = running[0]
            task.cancel()
            task.get_loop().call_soon_threadsafe(lambda: None)  # wake the loop up
        else:
            raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread
        return None


def _sigterm_noted(terminated: list[int]) -> None:
    import signal

    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, lambda signum, frame: terminated.append(signum))


def _restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)


def _venue_rows(session: Any) -> Any:
    """Live quotes from the venues the streams route to (MT5 gateways), until Ctrl-C."""
    from qkt.feeds.venue import VenueQuotes

    quotes = VenueQuotes(session)
    if quotes.empty:
        raise typer.BadParameter(
            "no stream routes to a venue with quotes (MT5): pass --replay CSV",
            param_hint="--replay",
        )
    return quotes.rows()


def _money(value: Decimal) -> str:
    """Decimals as plain strings, at most 8 places, no exponent."""
    from qkt.limits import to_places

    quantized = to_places(value, Decimal("0.00000001"))
    text = format(quantized.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _iso(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))


class _Printer:
    def __init__(self, as_json: bool, strategy: str) -> None:
        self.as_json = as_json
        self.strategy = strategy
        self.route_of: dict[str, str] = {}
        self.alias_of: dict[str, str] = {}
        self.venue_ids: dict[str, Any] = {}  # label lowercased -> client id -> venue id

    def _emit(self, data: dict[str, Any], text: str) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(data) + "\n")
        else:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()  # a pipe (`| jq`) sees each event as it happens

    def routes(self, session: Any, paper: bool) -> None:
        for route in session.plan.routes:
            self.route_of[route.label.lower()] = (
                "paper" if route.type == "paper" or paper else route.profile
            )
            broker = session.venues.get(route.profile)
            if broker is not None and hasattr(broker, "venue_id"):
                self.venue_ids[route.label.lower()] = broker.venue_id
        if self.as_json:
            return
        for route in session.plan.routes:
            where = self.route_of[route.label.lower()]
            note = " (--paper)" if paper and route.type != "paper" else ""
            output.echo(
                f"route  {route.alias}: {route.label}:{route.symbol} {route.timeframe} -> "
                f"{where}{note} [{route.status}]"
            )

    def _venue_id(self, label: str, client_id: str) -> str | None:
        """The id the venue knows the order by (MT5 comment tag, Bybit orderLinkId); None on
        paper."""
        named = self.venue_ids.get(label.lower())
        return None if named is None else str(named(client_id))

    def event(self, event: Any) -> None:
        from qkt.engine.events import (
            LogEvent,
            OrderAccepted,
            OrderFilled,
            OrderRejected,
            OrderRequest,
            OrderUnknown,
            PositionRecovered,
            VenueNotice,
        )

        if isinstance(event, OrderRequest):
            self.alias_of[event.client_id] = event.alias
            route = self.route_of.get(event.label.lower(), "paper")
            data = {
                "event": "order",
                "time": _iso(event.time),
                "strategy": event.strategy,
                "alias": event.alias,
                "label": event.label,
                "symbol": event.symbol,
                "side": event.side,
                "qty": _money(event.qty),
                "sl": None if event.stop_loss is None else _money(event.stop_loss),
                "tp": None if event.take_profit is None else _money(event.take_profit),
                "route": route,
                "client_id": event.client_id,
                "venue_id": self._venue_id(event.label, event.client_id),
            }
            legs = ""
            if event.stop_loss is not None:
                legs += f" sl {data['sl']}"
            if event.take_profit is not None:
                legs += f" tp {data['tp']}"
            self._emit(
                data,
                f"{data['time']}  order     {event.side.upper():4} {data['qty']} "
                f"{event.label}:{event.symbol}{legs} -> {route}  [{event.client_id}]",
            )
        elif isinstance(event, OrderFilled):
            route = self.route_of.get(event.label.lower(), "paper")
            data = {
                "event": "fill",
                "time": _iso(event.time),
                "strategy": self.strategy,
                "alias": self.alias_of.get(event.client_id),
                "label": event.label,
                "symbol": event.symbol,
                "side": event.side,
                "qty": _money(event.qty),
                "price": _money(event.price),
                "reason": event.reason,
                "route": route,
                "client_id": event.client_id,
                "venue_id": self._venue_id(event.label, event.client_id),
            }
            self._emit(
                data,
                f"{data['time']}  fill      {event.side.upper():4} {data['qty']} "
                f"{event.label}:{event.symbol} @ {data['price']} ({event.reason})  [{event.client_id}]",
            )
        elif isinstance(event, OrderRejected | OrderUnknown):
            kind = "rejected" if isinstance(event, OrderRejected) else "unknown"
            data = {
                "event": kind,
                "time": _iso(event.time),
                "strategy": self.strategy,
                "client_id": event.client_id,
                "reason": event.reason,
            }
            shown = kind if kind == "rejected" else "UNKNOWN"
            self._emit(data, f"{data['time']}  {shown:9} {event.reason}  [{event.client_id}]")
        elif isinstance(event, LogEvent):
            data = {
                "event": "log",
                "time": _iso(event.time),
                "level": event.level,
                "message": event.message,
            }
            self._emit(data, f"{data['time']}  log       {event.level}: {event.message}")
        elif isinstance(event, VenueNotice):
            data = {
                "event": "venue",
                "time": _iso(event.time),
                "broker": event.broker,
                "level": event.level,
                "message": event.message,
            }
            self._emit(data, f"{data['time']}  {event.level:9} {event.broker}: {event.message}")
        elif isinstance(event, PositionRecovered):
            route = self.route_of.get(event.label.lower(), event.broker)
            data = {
                "event": "recovered",
                "time": _iso(event.time),
                "strategy": self.strategy,
                "label": event.label,
                "symbol": event.symbol,
                "side": event.side,
                "qty": _money(event.qty),
                "price": _money(event.price),
                "route": route,
            }
            self._emit(
                data,
                f"{data['time']}  recovered {event.side.upper():4} {data['qty']} "
                f"{event.label}:{event.symbol} @ {data['price']} <- {route}",
            )
        elif isinstance(event, OrderAccepted):
            return

    def summary(self, summary: Any, interrupted: bool, strict: Any) -> None:
        """The open positions (a line each), then the summary line; in JSON, one event."""
        open_positions = [
            {
                "label": p.label,
                "symbol": p.symbol,
                "qty": _money(p.qty),
                "avg_price": _money(p.avg_price),
            }
            for p in summary.open_positions
        ]
        if not self.as_json:
            for p in open_positions:
                short = p["qty"].startswith("-")
                side, qty = ("short", p["qty"][1:]) if short else ("long", p["qty"])
                output.echo(f"open      {p['label']}:{p['symbol']} {side} {qty} @ {p['avg_price']}")
        data = {
            "event": "summary",
            "strategy": self.strategy,
            "trades": summary.trades,
            "win_rate": _money(summary.win_rate),
            "fills": summary.fills,
            "rejected": summary.rejected,
            "realized_pnl": _money(summary.realized_pnl),
            "commission": _money(summary.commission),
            "max_drawdown": _money(summary.max_drawdown),
            "final_equity": _money(summary.final_equity),
            "open_positions": open_positions,
            "interrupted": interrupted,
            "strict": strict.on,
            "strict_source": strict.source,
        }
        text = (
            f"summary: {summary.trades} trades, win rate {data['win_rate']}%, {summary.fills} fills, "
            f"realized PnL {data['realized_pnl']}, max drawdown {data['max_drawdown']}, "
            f"final equity {data['final_equity']}" + (" (interrupted)" if interrupted else "")
        ) + f"; strict brokers: {'on' if strict.on else 'off'} ({strict.source})"
        self._emit(data, text)
