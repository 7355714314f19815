"""What the API's and the runners' logs say (docs/operations.md, "Logs"): a cancel is
logged by the runner that stopped a job, naming it; a blocked request by its origin,
once per host and tab; job-loop lines with partitions and positions; a 500 as one ERROR
line with method, path, caller and traceback; refused tokens at most once a minute.
Never a token, never a URL's path or query."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError
from aiokafka.structs import TopicPartition
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api.app import NodeApp
from api.auth import Authenticator, RefusalLog, new_token, token_hash
from api.context import context
from api.errors import ApiError, api_error_handler, unexpected_error_handler
from runners import jobs_cancel
from runners.guard import TargetGuard
from runners.request_filter import MAX_LOGGED_HOSTS, RequestGate, origin_of
from runners.tab_record import TabRecord
from runners.worker import JobLoop
from tests.unit.test_worker_loop import TP, FakeConsumer, Gate, Msg, job, turns

SECRET = "s3cret-query-value"


def _infos(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= logging.INFO
    ]


# -- 1. cancels ------------------------------------------------------------------------


class _FakeWatchConsumer:
    """The consumer a CancelWatch opens: one batch of events, then nothing."""

    def __init__(self, batch: dict[TopicPartition, list[Any]], watch: list[Any]) -> None:
        self.batch, self.watch = batch, watch

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assign(self, tps: list[TopicPartition]) -> None: ...

    async def seek_to_end(self, *tps: TopicPartition) -> None: ...

    async def position(self, tp: TopicPartition) -> int:
        return 0

    async def getmany(self, **_: object) -> dict[TopicPartition, list[Any]]:
        batch, self.batch = self.batch, {}
        if not batch:
            self.watch[0].stop()
        await asyncio.sleep(0)
        return batch


def test_the_cancel_watch_says_nothing_at_info_for_a_cancel(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every runner sees every cancel, most of which (a plain Process's) stop nothing."""
    tp = TopicPartition("unit.ledger.events", 0)
    event = Msg(7, b"", (("type", b"process.cancelled"),))
    event.key = b"process:proc-9"  # type: ignore[attr-defined]
    event.timestamp = 5_000  # type: ignore[attr-defined]
    holder: list[Any] = []
    monkeypatch.setattr(
        jobs_cancel, "AIOKafkaConsumer", lambda **_: _FakeWatchConsumer({tp: [event]}, holder)
    )

    async def partitions(consumer: object, topic: str) -> list[int]:
        return [0]

    monkeypatch.setattr(jobs_cancel, "partitions_of", partitions)
    seen: list[tuple[str, float]] = []
    from streams.topics import Topics

    watch = jobs_cancel.CancelWatch("fake:9092", Topics("unit."), lambda r, t: seen.append((r, t)))
    holder.append(watch)
    with caplog.at_level(logging.DEBUG, logger="runners.jobs_cancel"):
        asyncio.run(asyncio.wait_for(watch.run(), 10))
    assert seen == [("proc-9", 5.0)]
    assert _infos(caplog, "runners.jobs_cancel") == []
    assert any("run proc-9 cancelled" in r.getMessage() for r in caplog.records)  # DEBUG


def test_a_runner_logs_the_job_it_stopped_by_kind_and_id_and_no_other_cancel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        loop = JobLoop(FakeConsumer([{TP: [job(0)]}]), "scan", Gate(), poll_ms=0)
        await turns(loop)
        assert loop.cancel_run("some-process", 100.0) == 0  # not a run of this runner
        await turns(loop)
        assert loop.cancel_run("run-1", 100.0) == 1
        await turns(loop)

    with caplog.at_level(logging.DEBUG, logger="runners.worker"):
        asyncio.run(main())
    (line,) = _infos(caplog, "runners.worker")
    assert line.startswith("scan job job-0 (run run-1 node n0 attempt 1): stopped ")
    assert line.endswith(" s after its run was cancelled")
    assert "some-process" not in caplog.text


# -- 2. blocked requests ---------------------------------------------------------------


async def _loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def _gate_block(urls: list[str]) -> tuple[TabRecord, list[str]]:
    """Pause ``urls`` in one tab's gate, its filter the guard's (every host loopback):
    the tab's record and the Fetch methods answered."""
    record, answers = TabRecord(), []

    async def send(method: str, params: dict[str, Any], url: str) -> None:
        answers.append(method)

    async def main() -> None:
        refusal = TargetGuard(allow_private=False, resolver=_loopback).request_refusal
        gate = RequestGate(refusal, record, send)
        for n, url in enumerate(urls):
            gate.paused({"requestId": str(n), "request": {"url": url}})
            await asyncio.sleep(0)
        while len(answers) < len(urls):
            await asyncio.sleep(0.001)

    asyncio.run(asyncio.wait_for(main(), 10))
    return record, answers


def test_a_blocked_host_is_logged_once_per_tab_by_origin_never_by_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    urls = [f"https://user:pw@intranet.example:8443/p/{n}?key={SECRET}" for n in range(50)]
    urls += [f"http://other.example/x?token={SECRET}", "http://[::1]:81/y?k=" + SECRET]
    with caplog.at_level(logging.DEBUG, logger="runners.request_filter"):
        record, answers = _gate_block(urls)
    assert answers == ["Fetch.failRequest"] * len(urls)
    assert len(record.network.blocked) == len(urls)  # the run's record keeps every one
    lines = _infos(caplog, "runners.request_filter")
    assert len(lines) == 3
    assert lines[0].startswith("blocked a request to https://intranet.example:8443: target ")
    assert "127.0.0.1 is loopback" in lines[0]
    assert any(line.startswith("blocked a request to http://other.example:") for line in lines)
    assert any(line.startswith("blocked a request to http://[::1]:81:") for line in lines)
    # not at DEBUG either: the path, the query, the user's password
    for leak in (SECRET, "/p/", "pw@", "/x?"):
        assert leak not in caplog.text


def test_a_tab_that_blocks_many_hosts_stops_naming_them_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    urls = [f"http://h{n}.example/" for n in range(MAX_LOGGED_HOSTS + 10)]
    with caplog.at_level(logging.INFO, logger="runners.request_filter"):
        _gate_block(urls)
    lines = _infos(caplog, "runners.request_filter")
    assert len(lines) == MAX_LOGGED_HOSTS + 1
    assert f"this tab blocked more than {MAX_LOGGED_HOSTS} hosts" in lines[-1]


def test_an_origin_has_no_user_path_or_query() -> None:
    assert origin_of("https://a:b@Host.example:444/p?q=1#f") == "https://host.example:444"
    assert origin_of("http://[::1]/") == "http://[::1]"
    assert origin_of("http://[::1") == "(unparsable URL)"
    assert origin_of("http://h:99999/") == "(unparsable URL)"


# -- 3. job loop positions -------------------------------------------------------------


class _RefusingConsumer(FakeConsumer):
    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        raise CommitFailedError("rebalanced")


def test_job_loop_lines_name_the_partition_and_positions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tp3 = TopicPartition("ledger.jobs", 3)

    async def main() -> None:
        consumer = _RefusingConsumer([{tp3: [Msg(41, b"not json"), job(42)]}])
        gate = Gate()
        loop = JobLoop(consumer, "scan", gate, poll_ms=0)
        await turns(loop)
        gate.finish("job-42")
        await turns(loop)

    with caplog.at_level(logging.INFO, logger="runners.worker"):
        asyncio.run(main())
    lines = _infos(caplog, "runners.worker")
    assert lines[0].startswith("job at ledger.jobs partition 3 offset 41 skipped: ")
    refused = [line for line in lines if line.startswith("commit of scan jobs up to")]
    assert refused[0].startswith("commit of scan jobs up to partition 3 at offset 42 refused")
    assert "TopicPartition" not in caplog.text


# -- 4. unexpected errors --------------------------------------------------------------


class _Reads:
    def __init__(self, token: str) -> None:
        self.known = {token_hash(token): ("acme", "ops")}

    def token_account(self, digest: str) -> tuple[str, str] | None:
        return self.known.get(digest)


def _app(token: str, refusals: RefusalLog | None = None) -> Starlette:
    async def failing(request: Request) -> JSONResponse:
        if request.query_params.get("auth"):
            context(request, query_token=True)
        raise RuntimeError("the read model broke")

    async def authenticated(request: Request) -> JSONResponse:
        return JSONResponse({"account": context(request).principal.account})

    app = Starlette(
        routes=[Route("/boom/{id}", failing), Route("/me", authenticated)],
        exception_handlers={ApiError: api_error_handler, Exception: unexpected_error_handler},
    )
    app.state.auth = Authenticator(_Reads(token), refusals)  # type: ignore[arg-type]
    app.state.deps = None
    return app


def test_a_500_is_one_error_line_with_method_path_caller_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = new_token()
    client = TestClient(_app(token), raise_server_exceptions=False)
    with caplog.at_level(logging.INFO, logger="api.errors"):
        answer = client.get(
            f"/boom/p-1?auth=1&secret={SECRET}", headers={"Authorization": f"Bearer {token}"}
        )
        anonymous = client.get("/boom/p-2", headers={"Authorization": token})
    for response in (answer, anonymous):
        assert response.status_code == 500
        assert response.json() == {
            "error": {
                "code": "internal",
                "message": "the server failed to answer; see the node's log",
                "field": None,
            }
        }
    first, second = [r for r in caplog.records if r.name == "api.errors"]
    assert first.levelno == logging.ERROR and first.exc_info is not None
    assert first.getMessage() == (
        "GET /boom/p-1 failed (account acme, actor token:ops); answered 500 internal"
    )
    assert second.getMessage() == "GET /boom/p-2 failed (not authenticated); answered 500 internal"
    assert "RuntimeError: the read model broke" in caplog.text  # the traceback
    assert token not in caplog.text and token[3:] not in caplog.text
    assert SECRET not in caplog.text and "Bearer" not in caplog.text


# -- 5. refused tokens -----------------------------------------------------------------


def test_refused_requests_are_one_warning_a_minute_with_a_count_and_no_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    refusals = RefusalLog(clock=lambda: now[0])
    client = TestClient(_app(new_token(), refusals))
    wrong = new_token()
    with caplog.at_level(logging.INFO, logger="api.auth"):
        for _ in range(5):  # one line, then four counted
            assert client.get("/me", headers={"Authorization": wrong}).status_code == 401
            now[0] += 10
        assert client.get("/me").status_code == 401  # 50 s after the first line
        now[0] += 11
        assert client.get("/me", headers={"Authorization": "Bearer"}).status_code == 401
    lines = [r for r in caplog.records if r.name == "api.auth"]
    assert [r.levelno for r in lines] == [logging.WARNING, logging.WARNING]
    assert lines[0].getMessage() == (
        "refused 1 request without a valid API token; the last from testclient: invalid_token"
    )
    assert lines[1].getMessage() == (
        "refused 6 requests without a valid API token in the last 61 s; "
        "the last from testclient: unauthenticated"
    )
    assert refusals.count == 0
    assert wrong not in caplog.text and wrong[3:] not in caplog.text


def test_an_accepted_token_is_not_counted() -> None:
    token = new_token()
    refusals = RefusalLog()
    client = TestClient(_app(token, refusals))
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).json() == {
        "account": "acme"
    }
    assert refusals.count == 0


def test_a_500_the_handler_logged_is_not_raised_on_to_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Starlette raises the error again after the 500; the server (uvicorn) would log the
    same traceback a second time, without the request. The node's app keeps it: the
    test client, which raises what the app raises, gets the answer instead."""

    async def failing(request: Request) -> JSONResponse:
        raise RuntimeError("the read model broke")

    app = NodeApp(
        routes=[Route("/boom", failing)],
        exception_handlers={Exception: unexpected_error_handler},
    )
    with caplog.at_level(logging.ERROR):
        answer = TestClient(app).get("/boom")  # raise_server_exceptions=True
    assert answer.status_code == 500
    assert [r.name for r in caplog.records] == ["api.errors"]
