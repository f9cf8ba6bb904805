"""What the control API asks of the daemon's deployments: the :class:`HostLike` protocol, the errors
it raises, the :class:`DaemonContext` a host is built from, and :class:`EmptyHost`.

The server builds one host per daemon from a :class:`DaemonContext` — the state dir, the config
loaded once at start, the broker registry built from it once (the daemon's own registry, with which
every deploy is planned again), the open journal and ``--strict-brokers`` — then ``await
host.restore()`` before it serves, and ``await host.shutdown()`` after the last request (orders in
flight get their answers, sessions stop, and deployments keep the state ``running`` so the next
start restores them).

A host's methods run on the daemon's one asyncio loop, the thread that owns the journal. Errors are
:class:`HostError` (a :class:`~qkt.errors.QktError` with an HTTP ``status``): the API turns them
into ``{"error": {"code", "message", "diagnostics"}}``; any other QktError is a 400.

:class:`EmptyHost` runs no deployments: lists are empty, a name is never found, and a deploy is
refused with ``deploy-unavailable``. It keeps the daemon, its socket, its API and its clients
usable on their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from qkt.diagnostics import Diagnostic, did_you_mean, error
from qkt.errors import QktError

if TYPE_CHECKING:
    from qkt.brokers.registry import BrokerRegistry
    from qkt.config import ResolvedConfig
    from qkt.daemon.journal import Journal
    from qkt.daemon.models import (
        BrokerOut,
        DeployIn,
        DeploymentsOut,
        DeployOut,
        StatusListOut,
    )
    from qkt.daemon.statedir import StateDir


class HostError(QktError):
    """A request the host refuses; :attr:`status` is the HTTP status the API answers with."""

    status = 400


class NotFound(HostError):
    """No deployment or portfolio has that name (the diagnostic's hint suggests the closest)."""

    status = 404

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        super().__init__(
            error(
                "unknown-deployment",
                f"no deployment or portfolio `{name}`",
                hint=did_you_mean(name, sorted(set(known))),
            )
        )
        self.name = name


class Conflict(HostError):
    """The request clashes with the daemon's state (a name held by a running deployment)."""

    status = 409


class Unavailable(HostError):
    """The daemon cannot do this at all (a deploy without a deployment host)."""

    status = 503


@dataclass(frozen=True, slots=True)
class DaemonContext:
    """Everything a host is built from; the server makes one at start."""

    state: StateDir
    config: ResolvedConfig
    registry: BrokerRegistry
    journal: Journal
    strict: bool = False
    """``qkt daemon --strict-brokers``: every deployment is strict, whatever its portfolio says."""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class HostLike(Protocol):
    """The running deployments, as the control API sees them (``qkt.daemon.host.Host``)."""

    async def deploy(self, request: DeployIn) -> DeployOut:
        """Plan every child with the daemon's registry, then start all or none (a dry run starts
        nothing). A refusal is an answer with ``ok: false``, not an exception."""
        ...

    def deployments(self) -> DeploymentsOut:
        """Every deployment the daemon knows, in every state."""
        ...

    def status(self, name: str) -> StatusListOut:
        """A deployment, or all children of a portfolio; raises :class:`NotFound`."""
        ...

    async def stop(self, name: str, flatten: bool) -> DeploymentsOut:
        """Stop a deployment or a portfolio's children (closing their positions first when
        ``flatten``), waiting for the answers of orders in flight; what it stopped. Stopping a
        stopped deployment is not an error; an unknown name raises :class:`NotFound`."""
        ...

    def log_path(self, name: str) -> Path:
        """The log file of one deployment (it may not exist yet); raises :class:`NotFound`."""
        ...

    def brokers(self) -> list[BrokerOut]:
        """The connectivity of every broker profile the deployments use."""
        ...

    async def restore(self) -> None:
        """Bring back the deployments that were ``running`` or ``starting`` (SPEC §6.1)."""
        ...

    async def shutdown(self) -> None:
        """Stop every session for a daemon stop: answers in flight awaited, states kept."""
        ...


class EmptyHost:
    """A host without deployments."""

    def __init__(self, context: DaemonContext) -> None:
        self.context = context

    async def deploy(self, request: DeployIn) -> DeployOut:
        raise Unavailable(_unavailable())

    def deployments(self) -> DeploymentsOut:
        from qkt.daemon.models import DeploymentsOut

        return DeploymentsOut(deployments=[])

    def status(self, name: str) -> StatusListOut:
        raise NotFound(name)

    async def stop(self, name: str, flatten: bool) -> DeploymentsOut:
        raise NotFound(name)

    def log_path(self, name: str) -> Path:
        raise NotFound(name)

    def brokers(self) -> list[BrokerOut]:
        return []

    async def restore(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


def _unavailable() -> Diagnostic:
    return error(
        "deploy-unavailable",
        "this daemon cannot run deployments: it has no deployment host",
        hint="install a qkt that includes qkt.daemon.host",
    )
