"""``qkt daemon [--detach] [--strict-brokers]``, ``qkt daemon status [--json]``, ``qkt daemon stop``.

The daemon itself is :mod:`qkt.daemon.server`; these commands only find its state dir, start it
(in the foreground, or detached) and ask it over its socket. Also here: :func:`state_of`, the state
dir every client command talks to.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from cli import output
from cli.common import globals_of

if TYPE_CHECKING:
    from qkt.daemon.models import DaemonOut
    from qkt.daemon.statedir import StateDir

app = typer.Typer(invoke_without_command=True)

SCHEMA = "qkt.daemon/1"


def state_of(ctx: typer.Context) -> StateDir:
    """The state dir of ``--state-dir`` → ``$QKT_STATE_DIR`` → the config's ``state_dir`` → XDG
    (the configuration is read only when the first two say nothing)."""
    from qkt.daemon.statedir import StateDir, resolve_state_dir

    flag = globals_of(ctx).state_dir
    config = None
    if flag is None and not os.environ.get("QKT_STATE_DIR"):
        from cli.common import load

        config = load(ctx)
    return StateDir(resolve_state_dir(flag, os.environ, config))


@app.callback()
def daemon(
    ctx: typer.Context,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Start in the background; return once its socket answers."),
    ] = False,
    strict_brokers: Annotated[
        bool,
        typer.Option(
            "--strict-brokers",
            help="Every deployment is strict: a label with no profile is refused, whatever the "
            "portfolio says.",
        ),
    ] = False,
    detached: Annotated[bool, typer.Option("--detached", hidden=True)] = False,
) -> None:
    """Run the daemon that keeps deployments trading; `status` and `stop` ask a running one.

    In the foreground (fit for systemd, Docker, tmux) until SIGTERM or Ctrl-C. It reads the
    configuration once, opens the state dir (socket, lock, qkt.db, logs/), restores the
    deployments that were running, and serves `qkt deploy`, `list`, `status`, `stop` and `logs`
    on <state-dir>/qkt.sock (mode 0600). It logs to stderr and logs/daemon.log.
    """
    if ctx.invoked_subcommand is not None:
        if detach or strict_brokers or detached:
            raise typer.BadParameter(
                f"--detach and --strict-brokers start a daemon; `{ctx.invoked_subcommand}` "
                "takes neither",
                param_hint="'qkt daemon'",
            )
        return
    from cli.common import load
    from qkt.daemon.statedir import StateDir, resolve_state_dir

    config = load(ctx)
    path = resolve_state_dir(globals_of(ctx).state_dir, os.environ, config)
    if detach:
        from qkt.daemon import detach as background

        state = StateDir.open(path)
        argv = [sys.executable, "-m", "cli"]
        if config.path is not None:
            argv += ["--config", str(config.path.absolute())]
        argv += ["--state-dir", str(state.path), "daemon", "--detached"]
        argv += ["--strict-brokers"] if strict_brokers else []
        info = background.start(argv, state)
        output.echo(f"daemon started: PID {info.pid}")
        output.echo(f"socket: {info.socket}")
        output.echo(f"log: {state.daemon_log}")
        return
    from qkt.daemon import server

    server.run(config, path, strict=strict_brokers, stderr=not detached)


@app.command("status")
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help=f"Print JSON ({SCHEMA}).")] = False,
) -> None:
    """Whether a daemon answers on the state dir: PID, version, uptime, config, deployments by
    state, and each broker's connectivity. Exit 1 when none answers."""
    from qkt.daemon.client import DaemonClient, DaemonUnreachable

    state = state_of(ctx)
    try:
        with DaemonClient(state) as client:
            info = client.daemon()
    except DaemonUnreachable:
        if not as_json:
            raise
        from qkt.daemon.models import DaemonOut

        gone = DaemonOut(running=False, state_dir=str(state.path), socket=str(state.socket))
        output.print_json(gone.model_dump(mode="json", by_alias=True))
        raise typer.Exit(1) from None
    if as_json:
        output.print_json(info.model_dump(mode="json", by_alias=True))
        return
    _render(info)


@app.command("stop")
def stop(ctx: typer.Context) -> None:
    """Ask the daemon to stop as on SIGTERM and wait until its process has exited (its
    deployments stay running: the next start restores them). Exit 1 when none is running."""
    from qkt.daemon import detach
    from qkt.daemon.client import DaemonClient, DaemonUnreachable
    from qkt.diagnostics import error
    from qkt.errors import QktError

    state = state_of(ctx)
    try:
        with DaemonClient(state) as client:
            info = client.stop_daemon()
    except DaemonUnreachable:
        raise QktError(
            error("no-daemon", f"no daemon is running on {state.path}: nothing to stop")
        ) from None
    pid = info.pid or 0
    output.echo(f"stopping daemon (PID {pid})", err=True)
    if not detach.wait_exited(pid):
        raise QktError(
            error(
                "daemon-still-running",
                f"daemon PID {pid} has not exited after {detach.EXIT_TIMEOUT_S:g} s; it is still "
                "waiting for the answers of orders in flight",
                hint=f"see {state.daemon_log}",
            )
        )
    output.echo(f"daemon stopped (PID {pid})")


def _render(info: DaemonOut) -> None:
    output.echo(f"daemon: running, PID {info.pid}, qkt {info.version}")
    output.echo(f"started: {info.started_at} (up {_uptime(info.uptime_s or 0)})")
    output.echo(f"config: {info.config or 'none (built-in profiles)'}")
    output.echo(f"state dir: {info.state_dir}")
    output.echo(f"socket: {info.socket}")
    counts = [f"{n} {state}" for state, n in info.deployments.items() if n]
    output.echo(f"deployments: {', '.join(counts) if counts else 'none'}")
    if not info.brokers:
        output.echo("brokers: none in use")
        return
    rows = [
        [b.profile, b.type, b.target, b.state, short_time(b.since), b.reason or "-"]
        for b in info.brokers
    ]
    output.table(["PROFILE", "TYPE", "TARGET", "STATE", "SINCE", "REASON"], rows, title="brokers:")


def _uptime(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def short_time(moment: str | None) -> str:
    """An ISO-8601 UTC time as ``2025-01-06 09:30:00Z``."""
    if not moment:
        return "-"
    try:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return moment
    if parsed.tzinfo is not None:
        from datetime import UTC

        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%d %H:%M:%SZ")
