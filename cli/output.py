"""Terminal output: rich tables on a TTY, plain aligned text otherwise (and under ``NO_COLOR``).

Rich is imported only when the output is a colour-capable terminal, so a CI run of ``qkt validate``
pays nothing for it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any

from qkt.diagnostics import Diagnostic


def use_rich(stream: IO[str] | None = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def echo(text: str = "", *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, title: str | None = None
) -> None:
    """Print a table: rich when on a TTY, two-space aligned columns otherwise.

    Cells are never cut or wrapped mid-word: a table wider than the terminal prints plainly."""
    rows = [list(r) for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    if use_rich():
        from rich.console import Console
        from rich.table import Table

        console = Console()
        if sum(widths) + 3 * len(widths) <= console.width:
            t = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
            for h in headers:
                t.add_column(h, no_wrap=True)
            for r in rows:
                t.add_row(*r)
            console.print(t)
            return
    if title:
        echo(title)
    for line in [list(headers), *rows]:
        echo("  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def diagnostic_line(d: Diagnostic) -> str:
    if not use_rich():
        return d.format()
    colour = {"error": "red", "warning": "yellow", "info": "blue"}[d.severity]
    loc = d.location()
    head = f"[bold]{loc}:[/bold] " if loc else ""
    hint = f" [dim]({d.hint})[/dim]" if d.hint else ""
    code = f"\\[{d.code}]"  # escaped: `[code]` would otherwise read as a style tag and vanish
    return f"{head}[bold {colour}]{d.severity}{code}[/bold {colour}]: {d.message}{hint}"


def print_diagnostics(diags: Iterable[Diagnostic], *, err: bool = False) -> None:
    diags = list(diags)
    if not diags:
        return
    stream = sys.stderr if err else sys.stdout
    if use_rich(stream):
        from rich.console import Console
        from rich.markup import escape

        console = Console(stderr=err, highlight=False)
        for d in diags:
            # Escape user text (messages quote source), then re-apply our own markup.
            plain = Diagnostic(
                d.severity,
                escape(d.code),
                escape(d.message),
                escape(d.path) if d.path else None,
                d.line,
                d.column,
                escape(d.hint) if d.hint else None,
            )
            console.print(diagnostic_line(plain), soft_wrap=True)  # one line, as in plain text
        return
    for d in diags:
        stream.write(d.format() + "\n")


def github_line(d: Diagnostic) -> str:
    """A GitHub Actions workflow command for one diagnostic."""
    kind = "error" if d.severity == "error" else "warning" if d.severity == "warning" else "notice"
    props = []
    if d.path:
        props.append(f"file={_gh_prop(d.path)}")
    if d.line is not None:
        props.append(f"line={d.line}")
    if d.column is not None:
        props.append(f"col={d.column}")
    props.append(f"title={_gh_prop(d.code)}")
    message = d.message if not d.hint else f"{d.message} ({d.hint})"
    return f"::{kind} {','.join(props)}::{_gh_data(message)}"


def _gh_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(s: str) -> str:
    return _gh_data(s).replace(":", "%3A").replace(",", "%2C")
