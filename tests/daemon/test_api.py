"""The control API in-process (httpx's ASGI transport): its routes, its JSON shapes, and one error
shape for every refusal — a malformed body, an unknown route, a wrong method, an unknown name."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qkt.daemon.api import create_app
from qkt.daemon.hostapi import DaemonContext, EmptyHost, HostLike
from tests.daemon.served import SINCE, FakeHost, context_for, deployment


@pytest.fixture
def context(tmp_path: Path) -> Iterator[DaemonContext]:
    made = context_for(tmp_path / "state")
    yield made
    made.journal.close()


class Api:
    """The app answering one request at a time, as a client over the socket would see it."""

    def __init__(self, host: HostLike, context: DaemonContext) -> None:
        self.stops = 0
        self.host = host
        self.app = create_app(host, context, stopping=asyncio.Event(), request_stop=self._stop)
        self.http = self

    def _stop(self) -> None:
        self.stops += 1

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://qkt") as client:
                return await client.request(method, path, **options)

        return asyncio.run(send())

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)


def assert_error(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "diagnostics"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["diagnostics"], list)
    error: dict[str, Any] = body["error"]
    return error


@pytest.fixture
def empty(context: DaemonContext) -> Api:
    return Api(EmptyHost(context), context)


@pytest.fixture
def fake(context: DaemonContext, tmp_path: Path) -> Api:
    return Api(FakeHost(tmp_path / "logs"), context)


def test_daemon_answers_qkt_daemon_1(empty: Api, context: DaemonContext) -> None:
    body = empty.http.get("/v1/daemon").json()
    assert body["schema"] == "qkt.daemon/1"
    assert body["running"] is True
    assert body["pid"] == os.getpid()
    assert body["state_dir"] == str(context.state.path)
    assert body["socket"] == str(context.state.socket)
    assert body["deployments"] == {
        "starting": 0,
        "running": 0,
        "stopped": 0,
        "failed": 0,
        "finished": 0,
    }
    assert body["brokers"] == []
    assert body["uptime_s"] >= 0


def test_daemon_counts_deployments_by_state(fake: Api) -> None:
    body = fake.http.get("/v1/daemon").json()
    assert body["deployments"]["running"] == 2
    assert body["deployments"]["stopped"] == 1
    assert body["brokers"][0]["profile"] == "exness"


def test_an_empty_host_lists_nothing(empty: Api) -> None:
    answer = empty.http.get("/v1/deployments")
    assert answer.status_code == 200
    assert answer.json() == {"schema": "qkt.deployments/1", "deployments": []}


def test_an_unknown_route_is_404_in_the_error_shape(empty: Api) -> None:
    error = assert_error(empty.http.get("/v2/whatever"), 404, "not-found")
    assert "/v2/whatever" in error["message"]


def test_a_wrong_method_is_405_in_the_error_shape(empty: Api) -> None:
    error = assert_error(empty.http.get("/v1/deploy"), 405, "method-not-allowed")
    assert "GET /v1/deploy" in error["message"]


def test_a_body_missing_fields_is_422_naming_each_field(empty: Api) -> None:
    answer = empty.http.post("/v1/deploy", json={"children": [{"name": "x"}]})
    error = assert_error(answer, 422, "invalid-body")
    fields = [d["message"] for d in error["diagnostics"]]
    assert "children.0.file: field required" in fields
    assert "children.0.source: field required" in fields
    assert error["message"].startswith("invalid DeployIn body: children.0.")
    assert "(and 1 more)" in error["message"]
    assert "pydantic" not in answer.text  # no links to pydantic's docs, no repr of the input


def test_an_unknown_field_and_a_non_json_body_are_422(empty: Api) -> None:
    error = assert_error(
        empty.http.post("/v1/deploy", json={"children": [], "replicas": 3}), 422, "invalid-body"
    )
    assert "replicas: extra inputs are not permitted" in error["message"]
    error = assert_error(empty.http.post("/v1/deploy", content=b"{not json"), 422, "invalid-body")
    assert "the body is not JSON" in error["message"]


def test_an_empty_host_refuses_a_deploy_clearly(empty: Api) -> None:
    body = {"children": [{"name": "m", "file": "m.qkt", "source": "STRATEGY m VERSION 1"}]}
    error = assert_error(empty.http.post("/v1/deploy", json=body), 503, "deploy-unavailable")
    assert "cannot run deployments" in error["message"]


def test_an_unknown_name_is_404_with_a_suggestion(fake: Api) -> None:
    error = assert_error(fake.http.get("/v1/deployments/fx-bok"), 404, "unknown-deployment")
    assert error["message"] == "no deployment or portfolio `fx-bok` (did you mean `fx-book`?)"
    assert error["diagnostics"][0]["hint"] == "did you mean `fx-book`?"


def test_status_of_a_portfolio_is_all_its_children(fake: Api) -> None:
    body = fake.http.get("/v1/deployments/fx-book").json()
    assert body["schema"] == "qkt.status/1"
    names = [d["name"] for d in body["deployments"]]
    assert names == ["fx-book/eur-momentum", "fx-book/gbp-swing"]
    child = fake.http.get("/v1/deployments/fx-book/eur-momentum").json()["deployments"]
    assert [d["name"] for d in child] == ["fx-book/eur-momentum"]
    assert child[0]["positions"][0]["qty"] == "0.1"
    assert child[0]["since"] == SINCE


def test_list_with_detail_is_the_status_of_every_deployment(fake: Api) -> None:
    body = fake.http.get("/v1/deployments?detail=1").json()
    assert body["schema"] == "qkt.status/1"
    assert [d["name"] for d in body["deployments"]] == [
        "fx-book/eur-momentum",
        "fx-book/gbp-swing",
        "momentum",
    ]


def test_stop_takes_an_empty_body_or_flatten(fake: Api) -> None:
    answer = fake.http.post("/v1/deployments/fx-book/gbp-swing/stop")
    assert answer.status_code == 200
    assert answer.json()["schema"] == "qkt.deployments/1"
    assert [d["state"] for d in answer.json()["deployments"]] == ["stopped"]
    answer = fake.http.post("/v1/deployments/fx-book/stop", json={"flatten": True})
    assert len(answer.json()["deployments"]) == 2
    assert_error(
        fake.http.post("/v1/deployments/momentum/stop", json={"flatten": "maybe"}),
        422,
        "invalid-body",
    )


def test_stop_daemon_answers_202_then_asks_the_server_to_stop(empty: Api) -> None:
    answer = empty.http.post("/v1/daemon/stop")
    assert answer.status_code == 202
    assert answer.json()["running"] is True
    assert empty.stops == 1


def test_logs_give_the_last_lines_and_merge_a_portfolio_in_time_order(
    fake: Api, tmp_path: Path
) -> None:
    logs = tmp_path / "logs" / "fx-book"
    logs.mkdir(parents=True)
    (logs / "eur-momentum.log").write_text(
        "2025-01-06T09:30:00.000Z INFO    fx-book/eur-momentum start\n"
        "2025-01-06T09:31:00.000Z INFO    fx-book/eur-momentum order BUY 0.1\n"
        "2025-01-06T09:33:00.000Z INFO    fx-book/eur-momentum fill 0.1 @ 1.08512\n"
    )
    (logs / "gbp-swing.log").write_text(
        "2025-01-06T09:30:30.000Z INFO    fx-book/gbp-swing start\n"
        "2025-01-06T09:32:00.000Z WARNING fx-book/gbp-swing no quotes for gbp\n"
    )
    one = fake.http.get("/v1/deployments/fx-book/eur-momentum/logs?n=2")
    assert one.text.splitlines() == [
        "2025-01-06T09:31:00.000Z INFO    fx-book/eur-momentum order BUY 0.1",
        "2025-01-06T09:33:00.000Z INFO    fx-book/eur-momentum fill 0.1 @ 1.08512",
    ]
    merged = fake.http.get("/v1/deployments/fx-book/logs?n=3").text.splitlines()
    assert [line.split()[-1] for line in merged] == ["0.1", "gbp", "1.08512"]
    assert fake.http.get("/v1/deployments/momentum/logs").text == ""  # nothing logged yet


def test_a_child_named_logs_or_stop_is_reached_by_its_encoded_name(
    fake: Api, tmp_path: Path
) -> None:
    assert isinstance(fake.host, FakeHost)
    for child in ("logs", "stop"):
        fake.host.items[f"fx-book/{child}"] = deployment(f"fx-book/{child}", "fx-book")
    (tmp_path / "logs" / "fx-book").mkdir(parents=True)
    (tmp_path / "logs" / "fx-book" / "logs.log").write_text(
        "2025-01-06T09:30:00.000Z INFO    fx-book/logs start\n"
    )
    status = fake.http.get("/v1/deployments/fx-book%2Flogs").json()
    assert [d["name"] for d in status["deployments"]] == ["fx-book/logs"]
    portfolio_log = fake.http.get("/v1/deployments/fx-book/logs")
    assert portfolio_log.headers["content-type"].startswith("text/plain")
    assert portfolio_log.text == "2025-01-06T09:30:00.000Z INFO    fx-book/logs start\n"
    child_log = fake.http.get("/v1/deployments/fx-book%2Flogs/logs")
    assert child_log.text == portfolio_log.text
    stopped = fake.http.post("/v1/deployments/fx-book%2Fstop/stop").json()
    assert [d["name"] for d in stopped["deployments"]] == ["fx-book/stop"]
    assert_error(fake.http.post("/v1/deployments/momentum"), 405, "method-not-allowed")


def test_logs_refuse_a_bad_count_and_an_unknown_name(fake: Api) -> None:
    error = assert_error(
        fake.http.get("/v1/deployments/momentum/logs?n=lots"), 422, "invalid-query"
    )
    assert "'lots'" in error["message"]
    assert_error(fake.http.get("/v1/deployments/momentun/logs"), 404, "unknown-deployment")


def test_a_host_bug_is_500_in_the_error_shape(context: DaemonContext) -> None:
    class Broken(EmptyHost):
        def deployments(self) -> Any:
            raise RuntimeError("boom: a secret-free bug")

    api = Api(Broken(context), context)
    error = assert_error(api.http.get("/v1/deployments"), 500, "internal")
    assert "RuntimeError" in error["message"] and "boom" not in error["message"]
