"""What the CLI uses to talk to the daemon: httpx over ``<state-dir>/qkt.sock``, typed answers.

Every failure is a :class:`~qkt.errors.QktError` whose first diagnostic is one line:

- :class:`DaemonUnreachable` — nothing answers on the socket (no socket file, or a stale one left by
  a killed daemon): ``error[no-daemon]: no daemon answers on <socket> (start one with: qkt daemon
  --detach)``;
- :class:`DaemonError` — the daemon answered with the API's error shape: its code and message (an
  unknown name carries its "did you mean"), then the diagnostics it sent; :attr:`DaemonError.status`
  is the HTTP status.

Cheap to import: httpx loads with the first client (without the parts :data:`_OPTIONAL` names),
and pydantic only with the typed answers. :meth:`DaemonClient.request` gives the plain JSON: ``qkt
list`` and ``qkt status`` render it directly, since pydantic's import alone would double their
cold start; the typed methods validate the same JSON with :mod:`qkt.daemon.models`.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from qkt.diagnostics import Diagnostic, error
from qkt.errors import QktError

if TYPE_CHECKING:
    import httpx

    from qkt.daemon.models import (
        DaemonOut,
        DeployIn,
        DeploymentsOut,
        DeployOut,
        StatusListOut,
    )
    from qkt.daemon.statedir import StateDir

HINT = "start one with: qkt daemon --detach"
TIMEOUT_S = 10.0
"""A request's default timeout: answers of the API are immediate, except these below."""
STOP_TIMEOUT_S = 600.0
"""``qkt stop``: it waits for orders in flight (and with ``--flatten`` for closing fills)."""
DEPLOY_TIMEOUT_S = 300.0
"""``qkt deploy``: brokers start (a gateway's readiness waits up to ``ready_timeout_ms``)."""


class DaemonUnreachable(QktError):
    """No daemon answers on the state dir's socket."""

    def __init__(self, state: StateDir) -> None:
        super().__init__(
            error("no-daemon", f"no daemon answers on {state.socket}", hint=HINT),
        )
        self.state = state


class DaemonError(QktError):
    """The daemon refused a request; :attr:`status` is its HTTP status (404: unknown name)."""

    def __init__(self, status: int, diagnostics: list[Diagnostic]) -> None:
        super().__init__(diagnostics)
        self.status = status


class DaemonClient:
    """``with DaemonClient(state) as client: client.deployments()``."""

    def __init__(self, state: StateDir, *, timeout: float = TIMEOUT_S) -> None:
        httpx = _httpx()
        self.state = state
        # No TLS on a Unix socket: verify=False spares loading the CA bundle (tens of ms).
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(state.socket), verify=False),
            base_url="http://qkt",
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------ the daemon
    def daemon(self) -> DaemonOut:
        from qkt.daemon.models import DaemonOut

        return DaemonOut.model_validate(self.request("GET", "/v1/daemon"))

    def stop_daemon(self) -> DaemonOut:
        from qkt.daemon.models import DaemonOut

        return DaemonOut.model_validate(self.request("POST", "/v1/daemon/stop"))

    # ------------------------------------------------------------ deployments
    def deploy(self, request: DeployIn) -> DeployOut:
        from qkt.daemon.models import DeployOut

        body = request.model_dump_json(by_alias=True).encode()
        answer = self.request("POST", "/v1/deploy", body, timeout=DEPLOY_TIMEOUT_S)
        return DeployOut.model_validate(answer)

    def deployments(self) -> DeploymentsOut:
        from qkt.daemon.models import DeploymentsOut

        return DeploymentsOut.model_validate(self.request("GET", DEPLOYMENTS))

    def status(self, name: str) -> StatusListOut:
        from qkt.daemon.models import StatusListOut

        return StatusListOut.model_validate(self.request("GET", deployment_path(name)))

    def stop(self, name: str, *, flatten: bool = False) -> DeploymentsOut:
        from qkt.daemon.models import DeploymentsOut

        answer = self.request(
            "POST",
            deployment_path(name, "stop"),
            json.dumps({"flatten": flatten}).encode(),
            timeout=STOP_TIMEOUT_S,
        )
        return DeploymentsOut.model_validate(answer)

    def logs(self, name: str, *, n: int = 50, follow: bool = False) -> Iterator[str]:
        """The deployment's last ``n`` log lines; with ``follow``, then every new line until the
        daemon stops or the caller stops iterating."""
        params = {"n": str(n), "follow": "1" if follow else "0"}
        timeout = self._timeout(None if follow else TIMEOUT_S)
        with (
            self._guard(),
            self._http.stream(
                "GET", deployment_path(name, "logs"), params=params, timeout=timeout
            ) as response,
        ):
            if response.status_code >= 400:
                response.read()
                raise _refusal(response)
            yield from response.iter_lines()

    # ------------------------------------------------------------ the wire
    def request(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float = TIMEOUT_S
    ) -> Any:
        """One request; the answer's JSON as plain values (what the typed methods validate).
        ``qkt list`` and ``qkt status`` read these directly: no pydantic in a cold start."""
        headers = {"content-type": "application/json"} if body is not None else None
        with self._guard():
            response = self._http.request(
                method, path, content=body, headers=headers, timeout=self._timeout(timeout)
            )
        if response.status_code >= 400:
            raise _refusal(response)
        try:
            return json.loads(response.content)
        except ValueError:
            message = f"the daemon's answer to {method} {path} is not JSON"
            raise DaemonError(response.status_code, [error("bad-answer", message)]) from None

    def _timeout(self, read: float | None) -> Any:
        return _httpx().Timeout(TIMEOUT_S, read=read)

    def _guard(self) -> _Guard:
        return _Guard(self.state)


class _Guard:
    """httpx's transport errors as one-line QktErrors."""

    def __init__(self, state: StateDir) -> None:
        self.state = state

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        httpx = _httpx()
        if exc is None or not isinstance(exc, httpx.TransportError):
            return
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            raise DaemonUnreachable(self.state) from None
        socket = self.state.socket
        if isinstance(exc, httpx.TimeoutException):
            message = f"the daemon on {socket} did not answer in time"
        else:
            message = f"the daemon on {socket} closed the connection ({exc or type(exc).__name__})"
        raise DaemonError(0, [error("daemon-no-answer", message)]) from None


def _refusal(response: httpx.Response) -> DaemonError:
    """The API's error body as a DaemonError: its code and message first, then the diagnostics
    that add to it (read as plain JSON: an unknown name stays a cheap one-line answer)."""
    try:
        detail = json.loads(response.content)["error"]
        head = error(str(detail["code"]), str(detail["message"]))
        found = list(detail.get("diagnostics") or [])
    except (ValueError, KeyError, TypeError):
        text = response.text.strip().splitlines()[0] if response.text.strip() else ""
        message = f"the daemon answered {response.status_code} {text}".rstrip()
        return DaemonError(response.status_code, [error("daemon-error", message)])
    extra = []
    for item in found:
        d = _diagnostic(item)
        if d is not None and head.message not in (d.message, f"{d.message} ({d.hint})"):
            extra.append(d)
    return DaemonError(response.status_code, [head, *extra])


def _diagnostic(item: Any) -> Diagnostic | None:
    if not isinstance(item, dict) or not isinstance(item.get("message"), str):
        return None
    severity = item.get("severity")
    return Diagnostic(
        severity if severity in ("error", "warning", "info") else "error",
        str(item.get("code") or "error"),
        item["message"],
        item.get("path"),
        item.get("line"),
        item.get("column"),
        item.get("hint"),
    )


DEPLOYMENTS = "/v1/deployments"


def deployment_path(name: str, *rest: str) -> str:
    """``/v1/deployments/<name>[/rest]``, the name's ``/`` sent as ``%2F`` (so a portfolio's child
    named ``logs`` or ``stop`` is never read as an action of the portfolio)."""
    from urllib.parse import quote

    return "/".join([DEPLOYMENTS, quote(name, safe=""), *rest])


_HTTPX: ModuleType | None = None
_OPTIONAL = ("httpx._main", "trio")
"""Imported by httpx and httpcore when they can be, never needed by a synchronous client over a
Unix socket: httpx's command-line client (rich, pygments) and trio (httpcore looks for it at
import, for async code running under trio; qkt's async code runs on asyncio). Together they are
most of httpx's import time, and ``qkt list`` starts cold."""


def _httpx() -> ModuleType:
    """httpx, imported without :data:`_OPTIONAL` when it is not imported yet: both packages fall
    back to a stub when such an import fails. The block is lifted right after, so anything that
    wants those modules later still gets them."""
    global _HTTPX
    if _HTTPX is None:
        fresh = "httpx" not in sys.modules and "httpcore" not in sys.modules
        blocked = [m for m in _OPTIONAL if m not in sys.modules] if fresh else []
        for name in blocked:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            _HTTPX = importlib.import_module("httpx")
            importlib.import_module("httpcore")  # httpx imports it with its first transport
        finally:
            for name in blocked:
                if sys.modules.get(name) is None:
                    del sys.modules[name]
    return _HTTPX
