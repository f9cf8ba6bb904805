"""``qkt sim gateway`` and ``qkt sim bybit``: run the bundled mt5-gateway or Bybit v5 simulator in
the foreground (what they simulate: ``qkt/sim/__init__.py``, ``qkt/sim/bybit/__init__.py``)."""

from __future__ import annotations

import errno
import socket
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from cli import output
from cli.files import short

app = typer.Typer(help="Simulators for trying qkt without a broker.", no_args_is_help=True)


@app.command("gateway")
def gateway(
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on (1-65535).", min=1, max=65535)
    ] = 5001,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    symbols: Annotated[
        str, typer.Option("--symbols", help="Comma-separated broker symbols, e.g. EURUSDm,XAUUSDm.")
    ] = "EURUSDm,GBPUSDm,XAUUSDm,USTECm,BTCUSDm",
    tick_ms: Annotated[
        int,
        typer.Option(
            "--tick-ms",
            help="Move quotes every N ms (0: never); SL/TP and pending orders trigger on them.",
            min=0,
        ),
    ] = 1000,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="Require this bearer token on every route but /health/live.",
            envvar="QKT_SIM_API_KEY",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the random-walk quotes and the bar history.")
    ] = 1,
    hedging: Annotated[
        bool,
        typer.Option(
            "--hedging",
            help="A hedging account (margin_mode 2): every order opens a position of its own. "
            "Default: netting, one position per symbol for the whole account.",
        ),
    ] = False,
    server_time_zone: Annotated[
        str,
        typer.Option(
            "--server-time-zone",
            help="The broker server's clock: times of positions, deals and ticks are epochs of "
            "its wall clock, and deal date parameters are read on it (bars stay UTC). UTC, "
            "ny-close (New York + 7 h: UTC+2/+3) or an IANA zone.",
        ),
    ] = "UTC",
    prices: Annotated[
        Path | None,
        typer.Option(
            "--prices",
            help="Follow this CSV of bars or ticks (one row per tick; qkt symbols get the `m` "
            "suffix; rows without a symbol move every symbol) instead of a random walk.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve a simulated MT5 account through an mt5-gateway's HTTP protocol until Ctrl-C.

    It answers as real gateways do: ok/request_id envelopes, bearer auth on every route but
    /health/live, /order checked by the gateway and the terminal (400 with a retcode),
    idempotent by client_order_id / Idempotency-Key for an hour, MQL5 netting (one position per
    symbol; reversals keep the position's identifier) or hedging, SL/TP and pending orders
    triggered by its own quotes, deals by broker wall-clock window, /reconcile, and seeded M1
    bars (the last 3 days) for warm-up. Fault switches for tests: POST /_sim/faults.
    """
    from qkt.config.timezones import server_zone
    from qkt.sim.server import serve_forever
    from qkt.sim.state import SimState

    try:
        server_zone(server_time_zone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--server-time-zone") from None
    names = [s.strip() for s in symbols.split(",") if s.strip()]
    if not names:
        raise typer.BadParameter("give at least one symbol", param_hint="--symbols")
    script = _script(prices) if prices is not None else None  # judged before anything listens
    _probe(host, port)
    state = SimState(
        seed=seed, symbols=tuple(names), hedging=hedging, server_time_zone=server_time_zone
    )
    if script is not None:
        state.follow(script)
    from qkt.sim.server import SimServer

    serve_forever(
        SimServer(state, host=host, port=port, api_key=api_key, tick_ms=tick_ms),
        on_ready=lambda url: output.echo(
            f"mt5-gateway simulator on {url} ({', '.join(names)}; "
            f"{'hedging' if hedging else 'netting'}, server time {server_time_zone})",
            err=True,
        ),
    )
    output.echo("stopped", err=True)


def _script(path: Path, suffix: str = "m") -> list[tuple[str | None, Decimal, Decimal]]:
    """Quotes to follow from a replay CSV: bars give close -/+ one point, ticks their bid/ask;
    a row's qkt symbol takes ``suffix`` to become the broker's."""
    from qkt.feeds.replay import ReplaySource

    source = ReplaySource(path)
    output.print_diagnostics(source.check().raise_for_errors(), err=True)
    rows: list[tuple[str | None, Decimal, Decimal]] = []
    for row in source:
        symbol = f"{row.symbol}{suffix}" if row.symbol else None
        if row.bar is not None:
            mid = Decimal(repr(row.bar.close))
            half = Decimal(1).scaleb(mid.as_tuple().exponent)  # type: ignore[arg-type]
            rows.append((symbol, mid - half, mid + half))
        elif row.tick is not None:
            rows.append((symbol, Decimal(repr(row.tick.bid)), Decimal(repr(row.tick.ask))))
    return rows


def _probe(host: str, port: int) -> None:
    """Refuse, as a bad parameter, an address the simulator could not listen on."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            reason = "is in use" if in_use else f"cannot be used ({exc.strerror or exc})"
            hint = "'--port'" if in_use or exc.errno == errno.EACCES else "'--host'"
            raise typer.BadParameter(f"{short(host)}:{port} {reason}", param_hint=hint) from None
        except (ValueError, OverflowError) as exc:  # a NUL byte, a label too long for IDNA
            raise typer.BadParameter(
                f"{short(host)} is not an address to listen on ({exc})", param_hint="'--host'"
            ) from None


@app.command("bybit")
def bybit(
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on (1-65535).", min=1, max=65535)
    ] = 5002,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    api_key: Annotated[
        str,
        typer.Option(
            "--api-key",
            help="The API key private requests must carry (X-BAPI-API-KEY). Default: qkt-sim-key.",
            envvar="QKT_SIM_BYBIT_API_KEY",
            show_default=False,
        ),
    ] = "qkt-sim-key",
    api_secret: Annotated[
        str,
        typer.Option(
            "--api-secret",
            help="The secret their HMAC-SHA256 signatures are keyed with. "
            "Default: qkt-sim-secret (for local tests only).",
            envvar="QKT_SIM_BYBIT_API_SECRET",
            show_default=False,
        ),
    ] = "qkt-sim-secret",
    symbols: Annotated[
        str,
        typer.Option(
            "--symbols", help="Comma-separated USDT symbols, each listed as linear and spot."
        ),
    ] = "BTCUSDT,ETHUSDT",
    tick_ms: Annotated[
        int,
        typer.Option(
            "--tick-ms",
            help="Move quotes every N ms (0: never); TP/SL and limit orders trigger on them.",
            min=0,
        ),
    ] = 1000,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the random-walk quotes, the kline history, ids.")
    ] = 1,
    prices: Annotated[
        Path | None,
        typer.Option(
            "--prices",
            help="Follow this CSV of bars or ticks (one row per tick; rows without a symbol "
            "move every symbol) instead of a random walk.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    balance: Annotated[
        str, typer.Option("--balance", help="USDT in the unified wallet at the start.")
    ] = "10000",
) -> None:
    """Serve a simulated Bybit unified account through Bybit's v5 REST protocol until Ctrl-C.

    Private requests are checked as Bybit checks them: HMAC-SHA256 signature over the raw query
    string or body (10004), the API key (10003), timestamp within the recv window (10002), and
    the per-endpoint rate limits (10006, X-Bapi-Limit headers); /v5/market/* is public. It keeps
    a USDT wallet, one-way linear positions with Full-mode TP/SL triggered by its own prices,
    spot coin balances, orders and executions, checks order/create against instruments-info,
    and serves seeded klines of the last 3 days. Fault switches for tests: POST /_sim/faults.
    """
    from qkt.sim.bybit.instruments import SYMBOL
    from qkt.sim.bybit.server import BybitSimServer, serve_forever
    from qkt.sim.bybit.state import BybitState

    names = [s.strip() for s in symbols.split(",") if s.strip()]
    if not names:
        raise typer.BadParameter("give at least one symbol", param_hint="'--symbols'")
    for name in names:
        if not SYMBOL.fullmatch(name):
            raise typer.BadParameter(
                f"{short(name)} is not a USDT symbol like BTCUSDT", param_hint="'--symbols'"
            )
    try:
        cash = Decimal(balance)
    except ArithmeticError:
        cash = Decimal(-1)
    if not cash.is_finite() or cash < 0:
        raise typer.BadParameter(f"{short(balance)} is not an amount", param_hint="'--balance'")
    if not api_key or not api_secret:
        raise typer.BadParameter("the API key and secret must not be empty")
    script = _script(prices, suffix="") if prices is not None else None
    _probe(host, port)
    state = BybitState(seed=seed, symbols=tuple(dict.fromkeys(names)), balance=cash)
    if script is not None:
        state.follow(script)
    server = BybitSimServer(
        state, host=host, port=port, api_key=api_key, api_secret=api_secret, tick_ms=tick_ms
    )
    serve_forever(
        server,
        on_ready=lambda url: output.echo(
            f"bybit simulator on {url} ({', '.join(state.symbols)}; linear and spot; {cash} USDT)",
            err=True,
        ),
    )
    output.echo("stopped", err=True)
