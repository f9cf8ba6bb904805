"""``qkt demo [--keep]``: the whole product on the bundled examples (SPEC §5.7). The demo itself is
:mod:`qkt.demo`; here are the command and its two views: plain lines (a pipe, ``NO_COLOR``) and a
rich live view on a terminal."""

from __future__ import annotations

import signal
import sys
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import typer

from cli import output

if TYPE_CHECKING:
    from qkt.demo.events import Child, Event, Position
    from qkt.validation import ValidationReport

LEFT = ("DEPLOYMENT", "STATE", "POSITION")
HEADERS = [
    "DEPLOYMENT", "STATE", "SIM ORDERS", "FILLS", "POSITION", "QTY", "AVG PRICE", "UNREALIZED",
    "REALIZED", "EQUITY",
]  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    keep: Annotated[
        bool,
        typer.Option(
            "--keep", help="Keep the temporary folder (config, state dir, logs) and print its path."
        ),
    ] = False,
) -> None:
    """Watch qkt trade the bundled examples: nothing configured, nothing running, no network.

    Starts the bundled mt5-gateway simulator on a free loopback port, its quotes following the
    sample data, and a daemon on a temporary state dir whose config points the exness profile at
    it; shows qkt validate's routing preview of examples/portfolio.yaml; deploys it with a
    replay of examples/data/markets-1m.csv (3 days of bars in about 20 s); while it trades,
    shows the orders reaching the simulator, the fills, and each child's positions and PnL (a
    live view on a terminal, one line per event otherwise, then a table). Then it stops the
    deployments, the daemon and the simulator and removes the temporary folder. Ctrl-C at any
    moment stops everything the same way (exit code 130; SIGTERM: 143). Needs the examples of
    a checkout (pip install -e .); ignores --config, --state-dir and QKT_* settings.
    """
    from qkt.demo import Demo

    view: PlainView = LiveView() if output.use_rich() else PlainView()
    try:
        outcome = Demo(view, keep=keep).run()
    finally:
        view.close()
    if outcome.signal is not None:
        name = signal.Signals(outcome.signal).name
        output.echo(f"interrupted ({name}): everything is stopped", err=True)
        raise typer.Exit(143 if outcome.signal == signal.SIGTERM else 130)
    orders = sum(c.orders for c in outcome.children)
    fills = sum(c.fills for c in outcome.children)
    realized = _sum(p.realized_pnl for c in outcome.children for p in c.positions)
    view.step(
        f"done in {outcome.seconds:.1f} s: {orders} orders reached the simulator, {fills} fills, "
        f"realized PnL {realized}"
    )


class PlainView:
    """One line per step, gateway order, fill and state change; a table at the end."""

    def __init__(self) -> None:
        self.width = 0

    def say(self, text: str) -> None:
        output.echo(text)
        sys.stdout.flush()

    def step(self, text: str) -> None:
        self.say(f"demo     {text}")

    def preview(self, report: ValidationReport) -> None:
        from cli.validate import Format
        from cli.validate import _render as render_report

        render_report(report, Format.text)
        sys.stdout.flush()

    def deployed(self, answer: dict[str, Any]) -> None:
        from cli.deploy import _render as render_answer

        render_answer(answer, [], False)
        sys.stdout.flush()

    def trading(self, children: list[Child]) -> None:
        self.width = max((len(c.name) for c in children), default=0)

    def events(self, events: list[Event], children: list[Child]) -> None:
        for event in events:
            self.say(self.line(event))

    def finished(self, children: list[Child]) -> None:
        output.table(HEADERS, rows(children), title="positions and PnL:")
        sys.stdout.flush()

    def close(self) -> None:
        pass

    def line(self, event: Event) -> str:
        from qkt.demo.events import Fill, GatewayOrder

        if isinstance(event, GatewayOrder):
            stops = "".join(
                f"  {name} {value}" for name, value in (("sl", event.sl), ("tp", event.tp)) if value
            )
            return (
                f"gateway  {event.deployment:<{self.width}}  {_short(event.client_id):<4}  "
                f"{event.side:<4} {event.volume} {event.symbol}{stops}"
            )
        if isinstance(event, Fill):
            return (
                f"fill     {event.deployment:<{self.width}}  {_short(event.client_id):<4}  "
                f"{event.side:<4} {event.qty} {event.label}:{event.symbol} @ {event.price}  "
                f"{event.reason} -> {event.route}  {event.time}"
            )
        reason = f": {event.reason}" if event.reason else ""
        return f"state    {event.deployment:<{self.width}}  {event.state}{reason}"


class LiveView(PlainView):
    """On a terminal: the same lines, coloured, scrolling above a table of every child that
    stays at the bottom and changes as it trades."""

    STYLES: ClassVar[dict[str, str]] = {
        "gateway": "cyan",
        "fill": "green",
        "state": "yellow",
        "demo": "dim",
    }

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console

        self.console = Console(highlight=False)
        self.live: Any = None

    def say(self, text: str) -> None:
        from rich.text import Text

        style = self.STYLES.get(text.split(" ", 1)[0], "")
        self.console.print(Text(text, style=style), soft_wrap=True)

    def trading(self, children: list[Child]) -> None:
        super().trading(children)
        from rich.live import Live

        self.live = Live(
            self._table(children), console=self.console, auto_refresh=False, transient=False
        )
        self.live.start(refresh=True)

    def events(self, events: list[Event], children: list[Child]) -> None:
        super().events(events, children)
        if self.live is not None:
            self.live.update(self._table(children), refresh=True)

    def finished(self, children: list[Child]) -> None:
        if self.live is None:
            super().finished(children)
            return
        self.live.update(self._table(children), refresh=True)
        self.close()

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _table(self, children: list[Child]) -> Any:
        """Every column when the terminal is wide enough, else name, state, signed position and
        money; money in cents either way (the plain table has the exact decimals)."""
        from rich.table import Table

        full = [[*r[:7], *(_cents(v) for v in r[7:])] for r in rows(children, short=True)]
        headers, body = HEADERS, full
        if _width(HEADERS, full) > self.console.width:
            headers = ["DEPLOYMENT", "STATE", "POSITION", "UNREALIZED", "REALIZED", "EQUITY"]
            body = [
                [r[0], r[1], r[4] if r[4] == "flat" else f"{r[4]} {_qty(r[5])}", *r[7:]]
                for r in full
            ]
        portfolio = {c.name.rsplit("/", 1)[0] for c in children if "/" in c.name}
        title = "positions and PnL" + (f" of {portfolio.pop()}" if len(portfolio) == 1 else "")
        table = Table(title=title, title_justify="left", header_style="bold", box=None)
        for header in headers:
            table.add_column(header, no_wrap=True, justify="left" if header in LEFT else "right")
        for row in body:
            table.add_row(*row)
        return table


def rows(children: list[Child], *, short: bool = False) -> list[list[str]]:
    """A row per position of each child (a flat child: one row), its totals on its first;
    ``short``: names without their portfolio."""
    out = []
    for c in children:
        positions: list[Position | None] = [*c.positions] or [None]
        name = c.name.rsplit("/", 1)[-1] if short else c.name
        for i, p in enumerate(positions):
            head = [name, c.state, str(c.orders), str(c.fills)] if i == 0 else ["", "", "", ""]
            if p is None:
                cells = ["flat", "0", "-", "0", "0"]
            else:
                cells = [
                    f"{p.label}:{p.symbol}",
                    p.qty,
                    "-" if _zero(p.qty) else p.avg_price,
                    p.unrealized_pnl,
                    p.realized_pnl,
                ]
            out.append([*head, *cells, c.equity if i == 0 else ""])
    return out


def _short(client_id: str) -> str:
    """``#3`` for ``<deployment>-<stamp>-000003``: unique within a deployment."""
    tail = client_id.rsplit("-", 1)[-1]
    return f"#{int(tail)}" if tail.isdigit() else client_id


def _width(headers: list[str], body: list[list[str]]) -> int:
    """Columns of a table without a box: the widest cell of each column and one space a side."""
    return sum(max(len(c) for c in column) + 2 for column in zip(headers, *body, strict=True))


def _cents(text: str) -> str:
    try:
        return f"{Decimal(text).quantize(Decimal('0.01')):f}"
    except InvalidOperation:
        return text


def _qty(text: str) -> str:
    """A signed quantity as ``qkt list`` shows it (``+8.5``, ``-0.1``), ``flat`` for none."""
    return "flat" if _zero(text) else text if text.startswith("-") else f"+{text}"


def _zero(text: str) -> bool:
    try:
        return Decimal(text) == 0
    except InvalidOperation:
        return False


def _sum(values: Any) -> str:
    total = Decimal(0)
    for value in values:
        try:
            total += Decimal(value)
        except InvalidOperation:
            continue
    return f"{total:f}"
