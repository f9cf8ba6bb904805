"""``qkt``: the Typer application and its entry point.

Exit codes: 0 success (warnings allowed), 1 the input is wrong, 2 the command line is wrong,
3 an internal error (a bug: the traceback is shown with a request to report it).
"""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

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
    from cli.files import existing_file

    if config is not None:
        existing_file(config, "--config", "config file")
    else:
        _check_env_config(os.environ.get("QKT_CONFIG"))
    ctx.obj = Globals(config=config, state_dir=state_dir)


def _check_env_config(named: str | None) -> None:
    """A ``$QKT_CONFIG`` the system refuses to look at (a name too long) is one line, exit 1;
    a missing one is said by the loader (``config-not-found``)."""
    if not named:
        return
    try:
        Path(named).stat()
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        from cli.files import reason, short
        from qkt.diagnostics import error
        from qkt.errors import ConfigError

        message = f"config file {short(named)}: {reason(exc)} ($QKT_CONFIG)"
        raise ConfigError(error("config-not-found", message)) from None


def _register() -> None:
    from cli import brokers, config_cmd, daemon, demo, deploy, lifecycle, run, sim, validate

    validate.register(app)
    run.register(app)
    deploy.register(app)
    lifecycle.register(app)
    demo.register(app)
    app.add_typer(brokers.app, name="brokers")
    app.add_typer(config_cmd.app, name="config")
    app.add_typer(daemon.app, name="daemon")
    app.add_typer(sim.app, name="sim")


_register()


def main() -> None:
    """Console-script entry point: user errors become diagnostics, never tracebacks.

    A wrong command line is one line, ``error[usage]: ...`` (exit 2); an I/O failure that no
    command turned into a diagnostic is one line too (exit 1); a closed standard output (``| head``)
    ends quietly (exit 1)."""
    from qkt.errors import QktError

    try:
        code = app(prog_name="qkt", standalone_mode=False)
    except QktError as exc:
        from cli.output import print_diagnostics

        print_diagnostics(exc.diagnostics, err=True)
        sys.exit(EXIT_INPUT)
    except _USAGE_ERROR as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `qkt` or `qkt sim`: the help
            exc.show()
        else:
            sys.stderr.write(_usage_line(exc) + "\n")
        sys.exit(EXIT_USAGE)
    except _CLICK_ERROR as exc:
        sys.stderr.write(f"error: {_one_line(exc.format_message())}\n")
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(EXIT_INPUT)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            _quiet_stdout()
            sys.exit(EXIT_INPUT)
        from cli.files import reason, short

        name = f" {short(str(exc.filename))}" if exc.filename else ""
        sys.stderr.write(f"error[io]: cannot use{name}: {reason(exc)}\n")
        sys.exit(EXIT_INPUT)
    except Exception:
        import traceback

        traceback.print_exc()
        sys.stderr.write(
            f"qkt {__version__}: internal error (a bug). Please report it with the traceback above.\n"
        )
        sys.exit(EXIT_BUG)
    sys.exit(code if isinstance(code, int) else 0)


# click's UsageError and ClickException, whether typer vendors click or depends on it
_USAGE_ERROR: type[Any] = typer.BadParameter.__mro__[1]
_CLICK_ERROR: type[Any] = _USAGE_ERROR.__mro__[1]


def _one_line(text: str) -> str:
    """A message on one line, any very long word (a path) shortened."""
    from cli.files import short

    return " ".join(short(word, 120) for word in text.split())


def _usage_line(exc: Any) -> str:
    ctx = getattr(exc, "ctx", None)
    where = f" (see: {ctx.command_path} -h)" if ctx is not None else ""
    return f"error[usage]: {_one_line(exc.format_message())}{where}"


def _quiet_stdout() -> None:
    """Nobody reads standard output any more: flushing it at exit must not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    main()
