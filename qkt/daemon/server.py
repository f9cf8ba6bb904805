"""``qkt daemon`` in the foreground (SPEC §5.3, §6.1): one process, one asyncio loop, the control
API on ``<state-dir>/qkt.sock``.

Start, in this order:

1. :meth:`StateDir.open` (mode 0700) and :meth:`StateDir.claim` — a second daemon on the same state
   dir is refused naming the PID that holds it (exit 1); a stale socket left by a killed daemon
   (nothing answers, the lock is free) is removed.
2. The sinks of :mod:`qkt.daemon.logs`: stderr (not when detached) and ``logs/daemon.log``.
3. The journal (``qkt.db``) and the broker registry, built once from the configuration the CLI
   loaded once with the loader ``qkt validate`` uses: every deploy is planned with this registry.
4. The host (the deployments) from a :class:`~qkt.daemon.hostapi.DaemonContext`, and ``await
   host.restore()``: deployments that were running come back before the first request.
5. The socket: created here, ``bind`` under umask 0177, ``chmod 0600``, then ``listen`` — so it is
   never connectable by anyone but its owner (uvicorn would leave it world-writable) — and handed to
   ``uvicorn.Server.serve(sockets=[sock])`` (no lifespan, no access log).

While serving, the journal is checkpointed every :data:`CHECKPOINT_S` seconds from a timer, so the
WAL's fsync does not land in a commit made right before an order is sent.

Stop (SIGTERM, SIGINT, or ``POST /v1/daemon/stop``): stop taking requests (the listener closes,
followed logs end), ``await host.shutdown()`` (answers of orders in flight are awaited, sessions
stop, deployments stay ``running`` for the next start), checkpoint and close the journal, remove
the socket, release the lock, exit 0. A second SIGINT while stopping stops waiting for open
control connections, never for orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from loguru import logger

from qkt import __version__
from qkt.daemon import logs
from qkt.daemon.host import Host
from qkt.daemon.hostapi import DaemonContext, HostLike
from qkt.daemon.statedir import StateDir, StateDirError
from qkt.diagnostics import error

if TYPE_CHECKING:
    from qkt.config import ResolvedConfig
    from qkt.daemon.journal import Journal

CHECKPOINT_S = 30.0
GRACEFUL_S = 15
"""How long a stop waits for control connections still answering (never for orders)."""
BACKLOG = 128


def run(config: ResolvedConfig, state_path: Path, *, strict: bool, stderr: bool = True) -> None:
    """Serve until stopped; returns after a clean stop. Raises QktError (StateDirError,
    DaemonRunningError, JournalError) when the daemon cannot start."""
    from qkt.brokers.registry import BrokerRegistry
    from qkt.daemon.journal import Journal

    state = StateDir.open(state_path)
    lock = state.claim()
    try:
        logs.configure_daemon_logging(state, stderr=stderr)
    except BaseException:
        lock.release()
        raise
    try:
        _announce(config, state, strict)
        journal = Journal.open(state.database)
        try:
            registry = BrokerRegistry.from_config(config)
            context = DaemonContext(state, config, registry, journal, strict)
            asyncio.run(_Daemon(context).serve())
        finally:
            with contextlib.suppress(Exception):
                journal.checkpoint()
            journal.close()
    except BaseException as exc:
        if not isinstance(exc, SystemExit | KeyboardInterrupt):
            logger.bind(**{logs.FILE_ONLY: True}).error(f"stopped by an error: {_first_line(exc)}")
        raise
    finally:
        lock.release()
    logger.info("stopped")


def bind_socket(path: Path) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 before it accepts its first connection."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        previous = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(previous)
        path.chmod(0o600)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise StateDirError(
            error("socket-unusable", f"cannot listen on {path}: {exc.strerror or exc}")
        ) from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon's decide what a signal does (uvicorn
    would re-raise the signal after serving, ending the process before the host has stopped)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Daemon:
    def __init__(self, context: DaemonContext) -> None:
        self.context = context
        self.stopping = asyncio.Event()
        self.server: _Server | None = None
        self.host: HostLike  # built in serve(), on the loop

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.host = Host(self.context)  # on the loop: a host may start tasks and clients
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        checkpoints = asyncio.create_task(_checkpoints(self.context.journal))
        try:
            await self.host.restore()
            if not self.stopping.is_set():
                await self._serve_socket()
        finally:
            self.stopping.set()
            checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checkpoints
            logger.info("stopping the deployments (orders in flight get their answers)")
            await self.host.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def _serve_socket(self) -> None:
        from qkt.daemon.api import create_app

        state = self.context.state
        sock = bind_socket(state.socket)
        inode = state.socket.stat().st_ino
        app = create_app(
            self.host, self.context, stopping=self.stopping, request_stop=self.request_stop
        )
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            log_config=None,
            access_log=False,
            http="h11",
            timeout_graceful_shutdown=GRACEFUL_S,
        )
        self.server = _Server(config)
        logger.info(f"listening on {state.socket}")
        try:
            await self.server.serve(sockets=[sock])
        finally:
            sock.close()
            _remove_socket(state.socket, inode)

    def request_stop(self) -> None:
        """Stop as on SIGTERM (idempotent)."""
        self.stopping.set()
        if self.server is not None:
            self.server.should_exit = True

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if not self.stopping.is_set():
            logger.info(f"{name}: stopping")
            self.request_stop()
            return
        if sig == signal.SIGINT and self.server is not None:
            self.server.force_exit = True  # stop waiting for control connections
        logger.info(f"{name}: already stopping; waiting for the answers of orders in flight")


async def _checkpoints(journal: Journal, every: float = CHECKPOINT_S) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            journal.checkpoint()
        except Exception as exc:  # a busy or full disk: the next one tries again
            logger.warning(f"journal checkpoint failed: {_first_line(exc)}")


def _remove_socket(path: Path, inode: int) -> None:
    """Remove the socket we bound (and only it: never another file that took its name)."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_ino == inode:
            path.unlink()


def _announce(config: ResolvedConfig, state: StateDir, strict: bool) -> None:
    source = str(config.path.absolute()) if config.path is not None else "built-in profiles only"
    logger.info(
        f"qkt {__version__} starting (PID {os.getpid()}, Python "
        f"{sys.version_info.major}.{sys.version_info.minor}): state dir {state.path}, "
        f"config {source}, strict brokers: {_strictness(config, strict)}"
    )
    for diagnostic in (*state.warnings, *config.diagnostics):
        logger.warning(diagnostic.format())


def _strictness(config: ResolvedConfig, strict: bool) -> str:
    if strict:
        return "on for every deployment (--strict-brokers)"
    default = "on" if config.strict_brokers else "off"
    source = config.strict_brokers_source
    return f"as each deploy says (default {default}{'' if source == 'default' else f', {source}'})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
