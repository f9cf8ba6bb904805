"""``qkt list``, ``qkt status NAME``, ``qkt stop NAME [--flatten]``, ``qkt logs NAME [-n N] [-f]``:
thin clients of the daemon's control API (SPEC §5.5).

NAME is a deployment (``momentum``, ``fx-book/eur-momentum``) or a portfolio (all its children).
No daemon answering is one line and exit 1 (``start one with: qkt daemon --detach``); so is an
unknown NAME, with a suggestion. Text is tables on a terminal, aligned plain lines otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import output
from cli.daemon import short_time, state_of

if TYPE_CHECKING:
    from qkt.daemon.client import DaemonClient

Json = Mapping[str, Any]
"""A deployment as the daemon sent it (``<deployment>`` of SPEC §5.5, the models' JSON): these
commands start cold, and reading the JSON costs nothing where pydantic's import would not."""

NAME_HELP = "A deployment (momentum, fx-book/eur-momentum) or a portfolio (all its children)."


def register(app: typer.Typer) -> None:
    app.command("list")(list_deployments)
    app.command("status")(status)
    app.command("stop")(stop)
    app.command("logs")(logs)


def _client(ctx: typer.Context) -> DaemonClient:
    from qkt.daemon.client import DaemonClient

    return DaemonClient(state_of(ctx))


def list_deployments(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (schema qkt.deployments/1).")
    ] = False,
) -> None:
    """One row per deployment: name, strategy, state, since, routes, positions, realized PnL."""
    from qkt.daemon.client import DEPLOYMENTS

    with _client(ctx) as client:
        if as_json:
            output.print_json(client.request("GET", DEPLOYMENTS))
            return
        details: list[Json] = client.request("GET", f"{DEPLOYMENTS}?detail=1")["deployments"]
    if not details:
        output.echo("no deployments")
        return
    rows = [
        [
            d["name"],
            d["strategy"],
            d["state"],
            short_time(d["since"]),
            routes_short(d["routes"]),
            _positions_short(d),
            _money(sum((_decimal(p["realized_pnl"]) for p in d["positions"]), Decimal(0))),
        ]
        for d in details
    ]
    output.table(
        ["NAME", "STRATEGY", "STATE", "SINCE", "ROUTES", "POSITIONS", "REALIZED PNL"], rows
    )


def status(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=NAME_HELP, show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (schema qkt.status/1).")
    ] = False,
) -> None:
    """A deployment's routes, positions, orders not yet final, last fills, equity and balance,
    and the connectivity of each broker it uses."""
    from qkt.daemon.client import deployment_path

    with _client(ctx) as client:
        found = client.request("GET", deployment_path(name))
    if as_json:
        output.print_json(found)
        return
    for index, deployment in enumerate(found["deployments"]):
        if index:
            output.echo()
        _render_status(deployment)


def stop(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=NAME_HELP, show_default=False)],
    flatten: Annotated[
        bool,
        typer.Option(
            "--flatten",
            help="First close every position of the deployment at its venue and wait for the "
            "closing fills.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (schema qkt.deployments/1).")
    ] = False,
) -> None:
    """Stop the session(s): state `stopped`, not restored at the next start. Positions stay open
    unless --flatten. Orders in flight are never abandoned: stop waits for their answers."""
    with _client(ctx) as client:
        stopped = client.stop(name, flatten=flatten)
    if as_json:
        output.print_json(stopped.model_dump(mode="json", by_alias=True))
        return
    if not stopped.deployments:
        output.echo(f"{name}: nothing to stop")
    for d in stopped.deployments:
        reason = f": {d.reason}" if d.reason else ""
        output.echo(f"{d.name}: {d.state}{reason}")


def logs(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=NAME_HELP, show_default=False)],
    lines: Annotated[
        int, typer.Option("-n", "--lines", min=0, help="How many of the last lines.")
    ] = 50,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines until Ctrl-C.")
    ] = False,
) -> None:
    """The deployment's log: time, level, deployment name and message on each line (a portfolio:
    its children's logs merged in time order)."""
    import sys

    with _client(ctx) as client:
        try:
            for line in client.logs(name, n=lines, follow=follow):
                sys.stdout.write(line + "\n")
                if follow:
                    sys.stdout.flush()
        except KeyboardInterrupt:
            if not follow:
                raise


# ---------------------------------------------------------------- rendering
def routes_short(routes: list[Json]) -> str:
    """``eur → exness, gbp → paper (fallback)``."""
    if not routes:
        return "-"
    return ", ".join(
        f"{r['alias']} → {r['profile']}{' (fallback)' if r.get('fallback') else ''}" for r in routes
    )


def route_table(routes: list[Json], title: str | None = None) -> None:
    """The routes as ``qkt validate`` prints them."""
    rows = [
        [
            r["alias"],
            f"{r['label']}:{r['symbol']}",
            r["timeframe"],
            r["profile"],
            r["type"],
            r["target"],
            r.get("broker_symbol") or "-",
            _text(r.get("magic")),
            r.get("status") or "ok",
        ]
        for r in routes
    ]
    output.table(
        ["ALIAS", "STREAM", "TF", "PROFILE", "TYPE", "TARGET", "BROKER SYMBOL", "MAGIC", "STATUS"],
        rows,
        title=title,
    )


def _positions_short(d: Json) -> str:
    held = [p for p in d["positions"] if _decimal(p["qty"]) != 0]
    if not held:
        return "flat" if d["state"] in ("running", "starting") else "-"
    return ", ".join(f"{p['label']}:{p['symbol']} {_signed(p['qty'])}" for p in held)


def _render_status(d: Json) -> None:
    output.echo(f"{d['name']}: {d['state']} since {short_time(d['since'])}")
    if d.get("reason"):
        output.echo(f"  reason: {d['reason']}")
    portfolio = f", portfolio {d['portfolio']}" if d.get("portfolio") else ""
    strict = "strict" if d.get("strict") else "not strict"
    output.echo(f"  strategy {d['strategy']} ({d['file']}{portfolio}), {strict}{_params(d)}")
    if d.get("warmup"):
        output.echo(f"  warm-up: {d['warmup']}")
    for note in d.get("notes") or ():
        output.echo(f"  note: {note}")
    route_table(d["routes"], title="routes:")
    _positions(d["positions"])
    if d["orders"]:
        rows = [
            [
                o["client_id"],
                o["alias"],
                f"{o['label']}:{o['symbol']}",
                o["side"],
                o["qty"],
                o["state"],
            ]
            for o in d["orders"]
        ]
        output.table(
            ["CLIENT ID", "ALIAS", "STREAM", "SIDE", "QTY", "STATE"],
            rows,
            title="orders not final:",
        )
    if d["fills"]:
        keys = ("alias", "side", "qty", "price", "reason", "client_id")
        rows = [[short_time(f.get("time")), *(_text(f.get(k)) for k in keys)] for f in d["fills"]]
        output.table(
            ["TIME", "ALIAS", "SIDE", "QTY", "PRICE", "REASON", "CLIENT ID"],
            rows,
            title="last fills:",
        )
    output.echo(f"balance {d['balance']}, equity {d['equity']}")
    for b in d["brokers"]:
        where = f"{b['profile']} ({b['type']}, {b['target']})"
        if b["state"] == "up":
            output.echo(f"broker {where}: up")
        else:
            reason = f": {b['reason']}" if b.get("reason") else ""
            output.echo(f"broker {where}: down since {short_time(b.get('since'))}{reason}")


def _positions(positions: list[Json]) -> None:
    if not positions:
        output.echo("positions: none")
        return
    rows = [
        [
            f"{p['label']}:{p['symbol']}",
            _signed(p["qty"]),
            p["avg_price"],
            _money(_decimal(p["unrealized_pnl"])),
            _money(_decimal(p["realized_pnl"])),
        ]
        for p in positions
    ]
    output.table(
        ["POSITION", "QTY", "AVG PRICE", "UNREALIZED", "REALIZED"], rows, title="positions:"
    )


def _params(d: Json) -> str:
    params = d.get("params") or {}
    if not params:
        return ""
    return ", params " + ", ".join(f"{k}={v}" for k, v in params.items())


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _decimal(text: Any) -> Decimal:
    try:
        return Decimal(str(text))
    except (InvalidOperation, TypeError):
        return Decimal(0)


def _signed(qty: str) -> str:
    value = _decimal(qty)
    return f"+{qty}" if value > 0 and not qty.startswith("+") else qty


def _money(value: Decimal) -> str:
    return f"{value:f}" if value == value.to_integral_value() else f"{value:.2f}"
