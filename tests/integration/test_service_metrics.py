"""``--metrics-port`` of the services without an API, on the real broker, read with the
strict parser of tests/unit/test_metrics_parser.py: a decider process counts what it
accepted and dead-letters a corrupt command record under ``undecodable``; a runner
process shows a ``wait`` job running, then passed; other paths are 404; the port is
closed once the service stopped; and ``runledger up`` starts every service with a
metrics port and writes the URLs into stack.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from streams import serde
from streams.domain import commands as c
from streams.jobs import Dispatch, encode_dispatch
from streams.orchestration import Job
from streams.topics import Topics, ensure_topics
from tests.integration.conftest import free_port
from tests.integration.test_up_start import _up
from tests.integration.test_wire_review import CODEC, command, key, produce
from tests.unit.test_metrics_parser import Exposition, parse

pytestmark = pytest.mark.integration


class Service:
    """A ``runledger SERVICE --metrics-port P`` child process and its log."""

    def __init__(self, bootstrap: str, prefix: str, data_dir: Path, *argv: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"{argv[0]}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
        env |= {
            "RUNLEDGER_KAFKA_BOOTSTRAP": bootstrap,
            "RUNLEDGER_TOPIC_PREFIX": prefix,
            "RUNLEDGER_DATA_DIR": str(data_dir),
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runledger", *argv, "--metrics-port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def scrape(self) -> Exposition:
        r = httpx.get(self.url + "/metrics", timeout=10)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        return parse(r.text)

    def eventually(self, check: Callable[[Exposition], bool], timeout: float = 60) -> Exposition:
        """The first scrape ``check`` accepts (connection errors while the service
        starts are waited out); fails with the last scrape and the log after ``timeout``."""
        deadline = time.monotonic() + timeout
        got: Exposition | None = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            try:
                got = self.scrape()
            except httpx.TransportError:
                got = None
            if got is not None and check(got):
                return got
            time.sleep(0.3)
        raise AssertionError(f"not reached in {timeout} s; last scrape {got}\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture()
def prefix(kafka_bootstrap: str) -> str:
    name = f"m{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(kafka_bootstrap, Topics(name), 2))
    return name


@pytest.fixture()
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:  # a failed test must not leave a process behind
        if service.proc.poll() is None:
            service.proc.kill()
            service.proc.wait()


def test_a_deciders_metrics_count_accepted_commands_and_dead_letters_by_reason(
    kafka_bootstrap: str, prefix: str, tmp_path: Path, services: list[Service]
) -> None:
    decider = Service(kafka_bootstrap, prefix, tmp_path, "decider")
    services.append(decider)
    first = decider.eventually(lambda m: "runledger_decider_info" in m.families)
    assert first.value("runledger_decider_dead_letters_total", reason="undecodable") == 0
    assert first.value("runledger_process_start_time_seconds") > time.time() - 120

    topics = Topics(prefix)
    create = serde.encode_command(CODEC, command("m-create", "m1", c.CreateProcess("s")))
    start = serde.encode_command(CODEC, command("m-start", "m1", c.StartProcess()))
    messages: list[tuple[bytes | None, bytes | None]] = [
        (key("m1"), create),
        (key("m1"), b"\x00 not a command record"),
        (key("m1"), start),
    ]
    asyncio.run(produce(kafka_bootstrap, topics.commands, messages))

    # A command counts as accepted when decided, its batch only once the transaction
    # commits: wait for both (a scrape in between saw batches_total 0).
    got = decider.eventually(
        lambda m: (
            m.value("runledger_decider_accepted_total") >= 2
            and m.value("runledger_decider_batches_total") >= 1
        )
    )
    assert got.value("runledger_decider_accepted_total") == 2
    assert got.value("runledger_decider_commands_total") == 2
    assert got.value("runledger_decider_dead_letters_total", reason="undecodable") == 1
    for reason in ("unknown_fingerprint", "unusable_body", "decide_failed"):
        assert got.value("runledger_decider_dead_letters_total", reason=reason) == 0
    assert got.value("runledger_decider_aggregates") == 1
    assert got.value("runledger_decider_batches_total") >= 1
    assert got.value("runledger_decider_last_batch_timestamp_seconds") > time.time() - 120

    assert httpx.get(decider.url + "/health", timeout=10).status_code == 200
    for path in ("/", "/metrics/", "/process"):
        assert httpx.get(decider.url + path, timeout=10).status_code == 404, path

    assert decider.stop() == 0, decider.tail()
    assert closed(decider.port)
    # What the stop line says is what /metrics said.
    assert "(2 accepted, 0 rejected, 0 duplicates, 1 dead-lettered)" in decider.tail()


def _wait_job(job_id: str, seconds: float) -> bytes:
    configs = json.dumps({"timeout": 60, "max_wait_time": 30, "min_wait_time": seconds})
    job = Job(job_id, "wait", f"run-{job_id}", "acme", "site-1", "n1", 1, configs, "{}")
    return encode_dispatch(Dispatch(job))


def test_a_runners_metrics_show_a_job_running_then_passed(
    kafka_bootstrap: str, prefix: str, tmp_path: Path, services: list[Service]
) -> None:
    runner = Service(kafka_bootstrap, prefix, tmp_path, "runner", "--kinds", "wait")
    services.append(runner)
    first = runner.eventually(lambda m: "runledger_runner_info" in m.families)
    assert first.value("runledger_runner_jobs_started_total", kind="wait") == 0
    assert first.value("runledger_runner_pages_open") == 0
    assert first.value("runledger_runner_pages_max") == 4
    deadline = time.monotonic() + 60  # a job sent before the runner joined its group waits
    while "runner ready" not in runner.tail() and time.monotonic() < deadline:
        time.sleep(0.2)

    job = _wait_job("mj1", 3)
    asyncio.run(produce(kafka_bootstrap, Topics(prefix).jobs, [(b"run-mj1", job)]))
    running = runner.eventually(
        lambda m: m.value("runledger_runner_jobs_running", kind="wait") == 1
    )
    assert running.value("runledger_runner_jobs_started_total", kind="wait") == 1
    assert running.value("runledger_runner_jobs_finished_total", kind="wait", outcome="passed") == 0

    done = runner.eventually(
        lambda m: (
            m.value("runledger_runner_jobs_finished_total", kind="wait", outcome="passed") == 1
        )
    )
    assert done.value("runledger_runner_jobs_running", kind="wait") == 0
    assert done.value("runledger_runner_job_duration_seconds_count", kind="wait") == 1
    assert done.value("runledger_runner_job_duration_seconds_sum", kind="wait") >= 3
    assert done.value("runledger_runner_jobs_finished_total", kind="wait", outcome="failed") == 0
    assert httpx.get(runner.url + "/nope", timeout=10).status_code == 404

    assert runner.stop() == 0, runner.tail()
    assert closed(runner.port)


def answer(url: str, timeout: float = 30) -> httpx.Response:
    """``GET url`` once something listens there. ``up`` writes the stack file when the
    node serves; the other services may still be opening their metrics ports then."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=10)
        except httpx.ConnectError:
            assert time.monotonic() < deadline, f"nothing listens on {url} after {timeout} s"
            time.sleep(0.2)


def test_up_starts_each_service_with_a_metrics_port_in_the_stack_file(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "stack"
    up = _up(kafka_bootstrap, data_dir, f"u{uuid.uuid4().hex[:8]}.")
    assert up.stdout is not None
    lines: list[str] = []
    urls: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("stack file" in x for x in lines):
            line = up.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
        assert any("stack file" in x for x in lines), lines
        stack = json.loads((data_dir / "stack.json").read_text())
        urls = stack["metrics"]
        assert set(urls) == {"decider", "orchestrator", "runner"}
        (banner,) = [x for x in lines if x.startswith("runledger: metrics on ")]
        for service, url in urls.items():
            assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
            assert f"{service} {url}" in banner
            r = answer(url)
            assert r.status_code == 200, (service, r.text)
            assert f"runledger_{service}_info" in parse(r.text).families
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            up.kill()
            up.communicate()
    for url in urls.values():
        assert closed(int(url.rsplit(":", 1)[1].split("/")[0]))
