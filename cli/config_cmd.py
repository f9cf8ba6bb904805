"""``qkt config schema``: the JSON Schema of qkt.config.yaml, for editors and CI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Inspect the configuration format.", no_args_is_help=True)


@app.command("schema")
def schema(
    out: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of standard output."),
    ] = None,
) -> None:
    """Print the JSON Schema that qkt.config.yaml follows."""
    from qkt.config import config_json_schema

    text = json.dumps(config_json_schema(), indent=2, sort_keys=True) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        from cli.files import write_text

        write_text(out, text, "--output")
        typer.echo(f"wrote {out}", err=True)
