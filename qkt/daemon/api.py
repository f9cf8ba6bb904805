"""The control API (SPEC §6.1): a starlette app over the daemon's host, served on ``qkt.sock``.

Routes (JSON bodies are the pydantic models of :mod:`qkt.daemon.models`)::

    GET  /v1/daemon                          qkt.daemon/1
    POST /v1/daemon/stop                     202 qkt.daemon/1; then the daemon stops as on SIGTERM
    POST /v1/deploy                          DeployIn -> qkt.deploy/1 (a refusal is ok: false)
    GET  /v1/deployments                     qkt.deployments/1 (?detail=1: qkt.status/1 of all)
    GET  /v1/deployments/{name}              qkt.status/1 of a deployment or a portfolio
    POST /v1/deployments/{name}/stop         StopIn (an empty body: no flatten) -> qkt.deployments/1
    GET  /v1/deployments/{name}/logs         ?n=50&follow=0|1 -> text lines (follow: streamed)

``{name}`` is ``momentum``, ``fx-book/eur-momentum`` (a portfolio's child) or ``fx-book`` (the
portfolio: all of its children). Its ``/`` may be sent as ``%2F``, and the client always does: the
path is split on its literal slashes before it is decoded, so ``fx-book%2Flogs`` is the status of a
child named ``logs`` while ``fx-book/logs`` is the portfolio's log.

Every error is ``{"error": {"code", "message", "diagnostics"}}`` with a 4xx/5xx status: a
malformed body or query 422 (each pydantic error a diagnostic naming its field), an unknown name
404 with a "did you mean", an unknown route 404, a wrong method 405, a host's refusal its
:attr:`~qkt.daemon.hostapi.HostError.status`, a bug 500 (logged with its traceback, answered with
one line).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import unquote

from loguru import logger
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from qkt import __version__
from qkt.daemon import logs
from qkt.daemon.hostapi import DaemonContext, HostLike, NotFound
from qkt.daemon.models import (
    DaemonOut,
    DeployIn,
    DiagnosticOut,
    ErrorBody,
    ErrorDetail,
    StatusListOut,
    StopIn,
)
from qkt.daemon.records import DEPLOYMENT_STATES, NameInUseError
from qkt.diagnostics import Diagnostic, error
from qkt.errors import QktError

DEPLOYMENTS = "/v1/deployments/"
MAX_BODY = 256 * 1024 * 1024
"""The largest request body (a deploy carries its replay's CSV text)."""

Body = TypeVar("Body", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]


class _Refused(Exception):
    """An error answer: its status, the error, and the diagnostics that explain it."""

    def __init__(self, status: int, head: Diagnostic, diagnostics: list[Diagnostic]) -> None:
        super().__init__(head.message)
        self.status = status
        self.head = head
        self.diagnostics = diagnostics


def create_app(
    host: HostLike,
    context: DaemonContext,
    *,
    stopping: asyncio.Event,
    request_stop: Callable[[], None],
) -> Starlette:
    """The app. ``stopping`` is set when the daemon stops (followed logs end then);
    ``request_stop`` is what ``POST /v1/daemon/stop`` calls once its answer is sent."""
    api = _Api(host, context, stopping, request_stop)
    routes = [
        Route("/v1/daemon", _handled(api.daemon), methods=["GET"]),
        Route("/v1/daemon/stop", _handled(api.stop_daemon), methods=["POST"]),
        Route("/v1/deploy", _handled(api.deploy), methods=["POST"]),
        Route("/v1/deployments", _handled(api.deployments), methods=["GET"]),
        Route(f"{DEPLOYMENTS}{{rest:path}}", _handled(api.deployment), methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


class _Api:
    def __init__(
        self,
        host: HostLike,
        context: DaemonContext,
        stopping: asyncio.Event,
        request_stop: Callable[[], None],
    ) -> None:
        self.host = host
        self.context = context
        self.stopping = stopping
        self.request_stop = request_stop

    def info(self) -> DaemonOut:
        state = self.context.state
        started = self.context.started_at
        counts = dict.fromkeys(DEPLOYMENT_STATES, 0)
        for deployment in self.host.deployments().deployments:
            counts[deployment.state] = counts.get(deployment.state, 0) + 1
        config = self.context.config.path
        return DaemonOut(
            running=True,
            pid=os.getpid(),
            version=__version__,
            started_at=started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            uptime_s=round((datetime.now(UTC) - started).total_seconds(), 3),
            config=str(config.absolute()) if config is not None else None,
            state_dir=str(state.path),
            socket=str(state.socket),
            deployments=counts,
            brokers=self.host.brokers(),
        )

    async def daemon(self, request: Request) -> Response:
        return _json(self.info())

    async def stop_daemon(self, request: Request) -> Response:
        logger.info("stop requested over the control socket")
        return _json(self.info(), 202, BackgroundTask(self.request_stop))

    async def deploy(self, request: Request) -> Response:
        body = await _body(request, DeployIn)
        return _json(await self.host.deploy(body))

    async def deployments(self, request: Request) -> Response:
        listed = self.host.deployments()
        if not _flag(request, "detail"):
            return _json(listed)
        details = []
        for deployment in listed.deployments:
            try:
                found = self.host.status(deployment.name).deployments
            except NotFound:  # gone between the two calls
                continue
            details += [d for d in found if d.name == deployment.name]
        return _json(StatusListOut(deployments=details))

    async def deployment(self, request: Request) -> Response:
        """``{name}`` (GET: its status), ``{name}/logs`` (GET), ``{name}/stop`` (POST)."""
        segments = _segments(request)
        action = segments[-1] if len(segments) > 1 else None
        if request.method == "POST":
            if action != "stop":
                raise _Refused(405, _not_allowed(request), [])
            return await self.stop(request, "/".join(segments[:-1]))
        if action == "logs":
            return await self.logs(request, "/".join(segments[:-1]))
        return _json(self.host.status("/".join(segments)))

    async def stop(self, request: Request, name: str) -> Response:
        body = await _body(request, StopIn, empty_ok=True)
        return _json(await self.host.stop(name, body.flatten))

    async def logs(self, request: Request, name: str) -> Response:
        n = _count(request)
        paths = [self.host.log_path(child) for child in self._children(name)]
        if not _flag(request, "follow"):
            lines = logs.merge([logs.tail(path, n) for path in paths], n)
            return Response("".join(f"{line}\n" for line in lines), media_type="text/plain")
        return StreamingResponse(
            _lines(logs.follow(paths, n, self.stopping)), media_type="text/plain"
        )

    def _children(self, name: str) -> list[str]:
        """The deployments ``name`` means: itself, or a portfolio's children (the host raises
        NotFound, with its suggestion, for anything else)."""
        known = self.host.deployments().deployments
        if any(d.name == name for d in known):
            return [name]
        children = [d.name for d in known if d.portfolio == name]
        return children or [name]


def _segments(request: Request) -> list[str]:
    """The path after ``/v1/deployments/``, split on its literal slashes, then each part decoded."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and raw.startswith(DEPLOYMENTS.encode()):
        rest = raw[len(DEPLOYMENTS) :].decode("ascii", "replace")
        return [unquote(part) for part in rest.split("/")]
    return request.url.path[len(DEPLOYMENTS) :].split("/")


async def _lines(source: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for line in source:
        yield f"{line}\n".encode()


def _handled(handler: Handler) -> Handler:
    """``handler`` with every failure answered in the one error shape."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except _Refused as exc:
            return _error(exc.status, exc.head, exc.diagnostics)
        except QktError as exc:
            status = 409 if isinstance(exc, NameInUseError) else getattr(exc, "status", 400)
            found = exc.diagnostics or [error("refused", str(exc))]
            head = next((d for d in found if d.is_error), found[0])
            return _error(int(status), head, found)
        except Exception as exc:
            logger.opt(exception=exc).error(
                f"internal error answering {request.method} {request.url.path}"
            )
            message = f"internal error in the daemon ({type(exc).__name__}); see logs/daemon.log"
            return _refusal(500, error("internal", message))

    return run


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    route = f"{request.method} {request.url.path}"
    if status == 404:
        found = error("not-found", f"no such route: {route}", hint="routes start with /v1/")
    elif status == 405:
        found = _not_allowed(request)
    else:
        found = error("http", f"{route}: {getattr(exc, 'detail', 'refused')}")
    return _refusal(status, found)


def _not_allowed(request: Request) -> Diagnostic:
    return error("method-not-allowed", f"{request.method} {request.url.path}: method not allowed")


async def _body(request: Request, model: type[Body], *, empty_ok: bool = False) -> Body:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            message = f"request body is larger than {MAX_BODY // (1024 * 1024)} MiB"
            raise _Refused(413, error("body-too-large", message), [])
        chunks.append(chunk)
    raw = b"".join(chunks)
    if empty_ok and not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        found = _readable(exc)
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        head = error("invalid-body", f"invalid {model.__name__} body: {found[0].message}{more}")
        raise _Refused(422, head, found) from None


def _readable(exc: ValidationError) -> list[Diagnostic]:
    """A pydantic error as diagnostics a person reads: ``children.0.source: field required``."""
    found = []
    for item in exc.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "the body"
        message = str(item["msg"])
        if item["type"] == "json_invalid":
            message = f"the body is not JSON ({item.get('ctx', {}).get('error', message)})"
            where = "body"
        found.append(error("invalid-body", f"{where}: {message[:1].lower()}{message[1:]}"))
    return found or [error("invalid-body", "the body is not valid")]


def _count(request: Request) -> int:
    raw = request.query_params.get("n", "50")
    if not raw.isdigit() or int(raw) > logs.MAX_LINES:
        message = f"n: {raw!r} is not a number of lines from 0 to {logs.MAX_LINES}"
        raise _Refused(422, error("invalid-query", message), [])
    return int(raw)


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "0").lower()
    if raw not in ("0", "1", "true", "false", ""):
        raise _Refused(422, error("invalid-query", f"{name}: {raw!r} is not 0 or 1"), [])
    return raw in ("1", "true")


def _json(
    model: BaseModel, status: int = 200, background: BackgroundTask | None = None
) -> Response:
    return Response(
        model.model_dump_json(by_alias=True),
        status_code=status,
        media_type="application/json",
        background=background,
    )


def _refusal(status: int, head: Diagnostic) -> Response:
    return _error(status, head, [head])


def _error(status: int, head: Diagnostic, diagnostics: list[Diagnostic]) -> Response:
    detail = ErrorDetail(
        code=head.code,
        message=head.message if not head.hint else f"{head.message} ({head.hint})",
        diagnostics=[_out(d) for d in diagnostics or [head]],
    )
    return _json(ErrorBody(error=detail), status)


def _out(d: Diagnostic) -> DiagnosticOut:
    return DiagnosticOut(
        severity=d.severity,
        code=d.code,
        message=d.message,
        path=d.path,
        line=d.line,
        column=d.column,
        hint=d.hint,
    )
