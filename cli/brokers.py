"""``qkt brokers list|show``: the resolved broker profiles and where every field came from."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli import output
from cli.common import load

app = typer.Typer(help="Show the resolved broker profiles.", no_args_is_help=True)

SCHEMA = "qkt.brokers/1"


def _profile_json(profile: Any) -> dict[str, Any]:
    return {
        "name": profile.name,
        "type": profile.type,
        "target": profile.target,
        "origin": profile.origin,
        "fields": profile.public_fields(),
    }


def _value(fields: dict[str, dict[str, Any]], name: str) -> str:
    field = fields.get(name)
    if field is None or field["value"] in (None, ""):
        return "-"
    return str(field["value"])


@app.command("list")
def list_profiles(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (schema qkt.brokers/1).")
    ] = False,
) -> None:
    """List every resolved profile: built-ins, the config file's, and env-only ones."""
    config = load(ctx)
    profiles = list(config.profiles.values())
    if as_json:
        output.print_json(
            {
                "schema": SCHEMA,
                "config": config.display,
                "profiles": [_profile_json(p) for p in profiles],
                "diagnostics": [d.to_json() for d in config.diagnostics],
            }
        )
        return
    rows = []
    for p in profiles:
        fields = p.public_fields()
        sources = [
            p.origin,
            *sorted(
                {
                    v["source"]
                    for v in fields.values()
                    if v["source"].startswith(("extends:", "env:"))
                }
                | ({"flag"} if any(v["source"] == "flag" for v in fields.values()) else set())
            ),
        ]
        rows.append(
            [
                p.name,
                p.type,
                p.target,
                _value(fields, "symbol_suffix"),
                _value(fields, "server_time_zone"),
                _value(fields, "magic"),
                ", ".join(sources),
            ]
        )
    title = (
        f"config: {config.display}" if config.display else "config: none (built-in profiles only)"
    )
    output.table(
        ["NAME", "TYPE", "TARGET", "SUFFIX", "TIME ZONE", "MAGIC", "FROM"], rows, title=title
    )
    output.print_diagnostics(config.diagnostics, err=True)


@app.command("show")
def show_profile(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Profile name (case-insensitive), e.g. exness.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (schema qkt.brokers/1).")
    ] = False,
) -> None:
    """Show one profile field by field, with the source of every value."""
    from qkt.diagnostics import did_you_mean, error
    from qkt.errors import ConfigError

    config = load(ctx)
    profile = config.profile(name.lower())
    if profile is None:
        raise ConfigError(
            error(
                "unknown-profile",
                f"no broker profile named `{name}`",
                hint=did_you_mean(name, list(config.profiles)),
            )
        )
    if as_json:
        output.print_json({"schema": SCHEMA, "profiles": [_profile_json(profile)]})
        return
    fields = profile.public_fields()
    rows = [
        [k, "-" if v["value"] is None else _render(v["value"]), v["source"]]
        for k, v in fields.items()
    ]
    output.table(
        ["FIELD", "VALUE", "SOURCE"],
        rows,
        title=f"{profile.name} ({profile.type}) defined at {profile.origin}",
    )
    output.print_diagnostics(config.diagnostics, err=True)


def _render(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_render(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_render(v) for v in value) or "-"
    return str(value)
