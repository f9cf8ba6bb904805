"""``qkt``: the Typer application and its entry point.

Exit codes: 0 success (warnings allowed), 1 the input is wrong, 2 the command line is wrong,
3 an internal error (a bug: the traceback is shown with a request to report it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from qkt import __version__

EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_BUG = 3

app = typer.Typer(
    name="qkt",
    help="Route trading strategies written in the .qkt language to the right broker account.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass(frozen=True, slots=True)
class Globals:
    config: Path | None = None
    state_dir: Path | None = None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qkt {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Config file (default: $QKT_CONFIG, ./qkt.config.yaml, then "
            "$XDG_CONFIG_HOME/qkt/qkt.config.yaml).",
            dir_okay=False,
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Daemon state directory (default: $QKT_STATE_DIR)."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Route trading strategies written in the .qkt language to the right broker account."""
    if config is not None and not config.exists():
        raise typer.BadParameter(f"config file {config} does not exist", param_hint="--config")
    ctx.obj = Globals(config=config, state_dir=state_dir)


def _register() -> None:
    from cli import brokers, config_cmd, run, sim, validate

    validate.register(app)
    run.register(app)
    app.add_typer(brokers.app, name="brokers")
    app.add_typer(config_cmd.app, name="config")
    app.add_typer(sim.app, name="sim")


_register()


def main() -> None:
    """Console-script entry point: user errors become diagnostics, never tracebacks."""
    from qkt.errors import QktError

    try:
        app()
    except QktError as exc:
        from cli.output import print_diagnostics

        print_diagnostics(exc.diagnostics, err=True)
        sys.exit(EXIT_INPUT)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception:
        import traceback

        traceback.print_exc()
        sys.stderr.write(
            f"qkt {__version__}: internal error (a bug). Please report it with the traceback above.\n"
        )
        sys.exit(EXIT_BUG)


if __name__ == "__main__":
    main()
