"""``qkt demo``: the whole product on embedded defaults, nothing configured, nothing running, no
network (SPEC §5.7).

In a temporary folder: a configuration whose ``exness`` profile is the bundled mt5-gateway
simulator on a free loopback port; ``qkt daemon`` on a state dir there; the simulator, its
quotes following the sample data. Then ``qkt validate``'s routing preview of
``examples/portfolio.yaml``, the deploy of it with a replay of ``examples/data/markets-1m.csv``
(at a speed that takes about 20 s), and while it trades, the order requests reaching the
simulator, the fills, and every child's positions and PnL, until every replay has ended. Then
the deployments, the daemon and the simulator are stopped and the folder removed (``keep``
keeps it).

Every step that fails is one :class:`DemoError` naming the step; every wait has a timeout. A
SIGINT or SIGTERM at any moment stops everything the same way (:attr:`Outcome.signal` says
which came). The children are stopped on every way out, and end with the demo if it is
killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from qkt.demo.children import Child as Process
from qkt.demo.children import free_port
from qkt.demo.events import Child, View
from qkt.demo.examples import DemoError, Examples, find_examples
from qkt.demo.workdir import Pace, Workdir, make_workdir, write_config, write_sim_prices
from qkt.errors import QktError

if TYPE_CHECKING:
    import httpx

    from qkt.config import ResolvedConfig
    from qkt.daemon.client import DaemonClient
    from qkt.demo.watch import Watcher
    from qkt.validation import ValidationReport

START_TIMEOUT_S = 30.0  # the daemon's socket, the simulator's readiness (a cold, busy machine)
DEPLOY_TIMEOUT_S = 60.0
TRADING_MARGIN_S = 30.0  # beyond the replay's own length
POLL_S = 0.25
STOP_TIMEOUT_S = 15.0


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached the demo (once: a second one while it stops is ignored)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass(slots=True)
class Outcome:
    seconds: float = 0.0
    signal: int | None = None
    """The signal that stopped the demo early, or None."""
    kept: Path | None = None
    children: list[Child] = field(default_factory=list)


class Demo:
    def __init__(self, view: View, *, keep: bool = False, root: Path | None = None) -> None:
        self.view = view
        self.keep = keep
        self.root = root
        self.outcome = Outcome()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("QKT_")}
        self.env["NO_COLOR"] = "1"
        self.work: Workdir | None = None
        self.daemon: Process | None = None
        self.sim: Process | None = None
        self.client: DaemonClient | None = None
        self.http: httpx.Client | None = None
        self.watcher: Watcher | None = None
        self.portfolio: str | None = None
        self._shown = False
        self._stopping = False

    def run(self) -> Outcome:
        """The demo from start to end; raises :class:`DemoError` (after stopping everything)
        when a step fails."""
        examples = find_examples(self.root)
        started = time.monotonic()
        previous = self._trap()
        try:
            try:
                self._run(examples)
            except Interrupted as exc:
                self.outcome.signal = exc.signum
            finally:
                self._stopping = True
                self._shutdown()
        finally:
            self._untrap(previous)
            self.outcome.seconds = time.monotonic() - started
        return self.outcome

    # ------------------------------------------------------------ the steps
    def _run(self, examples: Examples) -> None:
        with _step("preparing a temporary folder"):
            self.work = work = make_workdir()
            port = free_port()
            write_config(work, port)
        self.view.step(f"temporary folder {work.path}")
        with _step("checking the portfolio"):
            config, report = self._validate(examples, work)
        if not report.ok:
            self.view.preview(report)
            raise DemoError("checking the portfolio", f"{examples.portfolio} has errors (above)")
        routed = {r.symbol: r.broker_symbol for r in _routes(report) if r.type == "mt5"}
        with _step("writing the simulator's quotes"):
            pace = write_sim_prices(examples.replay, set(routed), work)
        self._start_daemon(work)
        self._start_sim(work, port, sorted(routed.values()), pace, examples)
        self.view.preview(report)
        self.view.step(
            f"deploying {examples.portfolio}: replaying {examples.replay} ({pace.span_text} of "
            f"bars) at {pace.speed_text}x real time, about {pace.seconds:.0f} s"
        )
        with _step("deploying"):
            answer = self._deploy(examples, report, config, pace)
        self.view.deployed(answer)
        if not answer.get("ok"):
            raise DemoError("deploying", "the daemon refused the portfolio (see above)")
        self._trade(answer, pace)

    def _validate(
        self, examples: Examples, work: Workdir
    ) -> tuple[ResolvedConfig, ValidationReport]:
        from qkt.config import load_config
        from qkt.validation import Validator

        config = load_config(work.config, env=self.env, cwd=work.path)
        return config, Validator(config, env=self.env).validate([examples.portfolio])

    def _start_daemon(self, work: Workdir) -> None:
        from qkt.daemon.client import DaemonClient
        from qkt.daemon.statedir import StateDir

        with _step("starting the daemon"):
            args = ["--config", str(work.config), "--state-dir", str(work.state), "daemon"]
            self.daemon = Process("daemon", args, work.daemon_output, work.path, self.env)
            self.client = client = DaemonClient(StateDir(work.state), timeout=5)
            self.daemon.wait_until(lambda: _answers(client), START_TIMEOUT_S, "its socket")
        self.view.step(f"daemon: PID {self.daemon.pid}, state dir {work.state}")

    def _start_sim(
        self, work: Workdir, port: int, symbols: list[str], pace: Pace, examples: Examples
    ) -> None:
        import httpx

        with _step("starting the simulator"):
            args = ["sim", "gateway", "--port", str(port), "--tick-ms", str(pace.tick_ms)]
            if symbols:
                args += ["--symbols", ",".join(symbols)]
            if pace.prices is not None:
                args += ["--prices", str(pace.prices)]
            self.sim = Process("simulator", args, work.sim_output, work.path, self.env)
            self.http = http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
            self.sim.wait_until(lambda: _ready(http), START_TIMEOUT_S, "its readiness")
        follows = f"quotes following {examples.replay}" if pace.prices else "random-walk quotes"
        self.view.step(
            f"mt5-gateway simulator: PID {self.sim.pid}, http://127.0.0.1:{port} "
            f"({', '.join(symbols) or 'default symbols'}; {follows})"
        )

    def _deploy(
        self, examples: Examples, report: ValidationReport, config: ResolvedConfig, pace: Pace
    ) -> dict[str, Any]:
        """``qkt deploy PORTFOLIO --replay CSV --speed S``: its checks here, then the daemon."""
        from qkt.daemon import request as deployreq
        from qkt.diagnostics import has_errors

        problems = deployreq.replay_problems(examples.replay, report)
        if has_errors(problems):
            raise QktError(problems)
        children = deployreq.children(examples.portfolio, "portfolio", report, {})
        self.portfolio = children[0]["portfolio"] if children else None
        body = deployreq.request(
            children, report, None, self.env, examples.replay, pace.speed_text, False, config
        )
        assert self.client is not None
        answer: dict[str, Any] = self.client.request(
            "POST", "/v1/deploy", json.dumps(body).encode(), timeout=DEPLOY_TIMEOUT_S
        )
        return answer

    def _trade(self, answer: dict[str, Any], pace: Pace) -> None:
        from qkt.demo.watch import Watcher

        assert self.http is not None and self.client is not None
        deployments = answer.get("deployments") or []
        self.portfolio = self.portfolio or (deployments[0]["name"] if deployments else None)
        if self.portfolio is None:
            raise DemoError("deploying", "the daemon started no deployment")
        self.watcher = watcher = Watcher(self.http, self.client, self.portfolio, deployments)
        self.view.trading(watcher.view())
        limit = pace.seconds + TRADING_MARGIN_S
        deadline = time.monotonic() + limit
        with _step("trading"):
            while True:
                self.view.events(watcher.poll(), watcher.view())
                if watcher.done:
                    break
                if time.monotonic() > deadline:
                    raise DemoError("trading", f"the replays did not end within {limit:.0f} s")
                time.sleep(POLL_S)
        self._shown = True
        self.outcome.children = watcher.view()
        self.view.finished(watcher.view())
        failed = [c for c in watcher.view() if c.state == "failed"]
        if failed:
            raise DemoError("trading", f"{failed[0].name} failed: {failed[0].reason}")

    # ------------------------------------------------------------ the way out
    def _shutdown(self) -> None:
        """Stop the deployments, the daemon, the simulator; remove the folder (unless kept).
        Never raises: what went wrong on the way is said and the next part still runs."""
        if self.client is not None and self.portfolio is not None and self.daemon is not None:
            self._quietly("stopping the deployments", self._stop_deployments)
        if self.watcher is not None and not self._shown:
            self._quietly("reading the deployments", self._last_look)
        for child in (self.daemon, self.sim):
            if child is not None:
                self._quietly(f"stopping the {child.what}", lambda c=child: self._stop_child(c))
        for closing in (self.client, self.http):
            if closing is not None:
                with contextlib.suppress(Exception):
                    closing.close()
        if self.work is None:
            return
        if self.keep:
            self.outcome.kept = self.work.path
            self._say(f"kept {self.work.path} (--keep): config, state dir, logs, outputs")
            return
        shutil.rmtree(self.work.path, ignore_errors=True)
        if self.work.path.exists():
            self._say(f"could not remove {self.work.path} completely")
        else:
            self._say(f"removed {self.work.path}")

    def _stop_deployments(self) -> None:
        from qkt.daemon.client import deployment_path

        assert self.client is not None and self.daemon is not None and self.portfolio
        if not self.daemon.running():
            return
        self._say(f"stopping the deployments of {self.portfolio}")
        path = deployment_path(self.portfolio, "stop")
        body = json.dumps({"flatten": False}).encode()
        self.client.request("POST", path, body, timeout=STOP_TIMEOUT_S)

    def _last_look(self) -> None:
        assert self.watcher is not None
        try:
            if self.daemon is not None and self.daemon.running():
                self.view.events(self.watcher.poll(), self.watcher.view())
        finally:
            self._shown = True
            self.outcome.children = self.watcher.view()
            self.view.finished(self.watcher.view())

    def _stop_child(self, child: Process) -> None:
        self._say(f"stopping the {child.what} (PID {child.pid})")
        if not child.stop(STOP_TIMEOUT_S if child.what == "daemon" else 5.0):
            self._say(f"the {child.what} did not stop in time: killed")

    def _quietly(self, what: str, action: Any) -> None:
        try:
            action()
        except Exception as exc:
            self._say(f"{what}: {_why(exc)}")

    def _say(self, text: str) -> None:
        """A step line on the way out: a view that cannot write any more stops nothing."""
        with contextlib.suppress(Exception):
            self.view.step(text)

    # ------------------------------------------------------------ signals
    def _trap(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def _untrap(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            self.outcome.signal = self.outcome.signal or signum
            return
        self._stopping = True
        raise Interrupted(signum)


@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    """Any failure inside is one :class:`DemoError` naming the step."""
    try:
        yield
    except (DemoError, BrokenPipeError):  # nobody reads the output any more: end quietly
        raise
    except Exception as exc:
        raise DemoError(name, _why(exc)) from None


def _why(exc: Exception) -> str:
    if isinstance(exc, QktError) and exc.diagnostics:
        d = exc.diagnostics[0]
        return d.message if d.hint is None else f"{d.message} ({d.hint})"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _routes(report: ValidationReport) -> list[Any]:
    from qkt.daemon.request import strategies

    return [r for f in strategies(report) for r in f.routes]


def _answers(client: DaemonClient) -> bool:
    try:
        client.request("GET", "/v1/daemon", timeout=2)
    except QktError:
        return False
    return True


def _ready(http: httpx.Client) -> bool:
    import httpx

    try:
        return http.get("/health/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
