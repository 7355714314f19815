"""``/metrics`` of a real node (child process) on the real broker, read with the strict
parser of tests/unit/test_metrics_parser.py: the projector's counters rise with
commands, its lag per partition is the log's end minus what it applied and returns to
0, a corrupt record on the events topic shows under its dead-letter reason, requests
are counted by route template (never the raw id), and an SSE stream is in the open
gauge while it runs, leaves it when closed, and a refused one is counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from importlib import metadata

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.topics import Topics
from tests.integration.conftest import PARTITIONS, Stack, start_stack
from tests.integration.test_stream_limits import open_raw, reset
from tests.unit.test_metrics_parser import Exposition, parse

pytestmark = pytest.mark.integration

ACCOUNT = "metrics-acme"


@pytest.fixture(scope="module")
def node(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A decider and a node allowing one stream per account, with quick heartbeats so
    that a closed stream is noticed within a fraction of a second."""
    env = {
        "RUNLEDGER_SSE_MAX_STREAMS_PER_ACCOUNT": "1",
        "RUNLEDGER_SSE_HEARTBEAT_S": "0.2",
        "RUNLEDGER_SSE_WINDOW_S": "20",
    }
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("metrics"), env)
    try:
        yield running
    finally:
        running.stop()


def scrape(stack: Stack) -> Exposition:
    r = httpx.get(stack.url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert ACCOUNT not in r.text
    return parse(r.text)


def eventually(
    stack: Stack, check: Callable[[Exposition], bool], timeout: float = 15
) -> Exposition:
    """The first scrape ``check`` accepts; fails with the last one after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = scrape(stack)
        if check(got):
            return got
        assert time.monotonic() < deadline, f"never reached: {got.families}"
        time.sleep(0.1)


def by_partition(got: Exposition, sample: str) -> dict[int, float]:
    return {int(dict(k)["partition"]): v for k, v in got.labelled(sample).items()}


async def log_ends(stack: Stack) -> dict[int, int]:
    """The read_committed end of every partition of the events topic, asked of Kafka."""
    topic = Topics(stack.prefix).events
    client = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap, group_id=None, isolation_level="read_committed"
    )
    await client.start()
    try:
        ends = await client.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        await client.stop()
    return {tp.partition: end for tp, end in ends.items()}


def test_counters_rise_with_commands_and_the_lag_returns_to_zero(node: Stack) -> None:
    client = node.authenticated(ACCOUNT)
    assert client.get("/process", params={"wait": "true"}).status_code == 200
    before = scrape(node)
    r = client.post("/process", json={"type": "scan"}, params={"wait": "true"})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = client.post(f"/process/{pid}/progress", json={"progress": 5}, params={"wait": "true"})
    assert r.status_code == 200, r.text

    ends = asyncio.run(log_ends(node))
    # The consumer hears of the new ends with its next fetch responses.
    after = eventually(
        node, lambda got: by_partition(got, "runledger_projector_end_offset") == ends
    )
    applied = "runledger_projector_events_applied_total"
    assert after.value(applied) == before.value(applied) + 3  # created, started, progress
    batches = "runledger_projector_batches_total"
    assert after.value(batches) >= before.value(batches) + 1
    assert by_partition(after, "runledger_projector_applied_offset") == ends
    assert by_partition(after, "runledger_projector_lag_offsets") == dict.fromkeys(ends, 0)
    assert sum(ends.values()) > 0
    assert after.value("runledger_projector_last_batch_timestamp_seconds") > time.time() - 60
    info = after.labelled("runledger_node_info")
    labels = {("version", metadata.version("runledger")), ("topic_prefix", node.prefix)}
    assert info == {frozenset(labels): 1}
    started = after.value("runledger_process_start_time_seconds")
    assert time.time() - 600 < started < time.time()


def test_a_corrupt_record_is_counted_under_its_reason(node: Stack) -> None:
    before = scrape(node)
    dead = "runledger_projector_dead_letters_total"

    async def produce_garbage() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=node.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                Topics(node.prefix).events, value=b"not an event", key=b"process:x"
            )
        finally:
            await producer.stop()

    asyncio.run(produce_garbage())
    after = eventually(
        node,
        lambda got: (
            got.value(dead, reason="undecodable") > before.value(dead, reason="undecodable")
        ),
    )
    assert after.value(dead, reason="undecodable") == before.value(dead, reason="undecodable") + 1
    for reason in ("unknown_fingerprint", "sequence_gap", "rejected"):
        assert after.value(dead, reason=reason) == before.value(dead, reason=reason) == 0
    # and the record skipped is not lag: the position moved past it
    eventually(
        node,
        lambda got: set(by_partition(got, "runledger_projector_lag_offsets").values()) == {0},
    )


def test_requests_are_counted_by_route_template_not_by_id(node: Stack) -> None:
    client = node.authenticated(ACCOUNT)
    pid = client.post("/process", json={"type": "scan"}, params={"wait": "true"}).json()["id"]
    route = "/process/{process_id}"

    def count(got: Exposition, status: str) -> float:
        try:
            return got.value(
                "runledger_http_requests_total", method="GET", route=route, status=status
            )
        except KeyError:
            return 0

    before = scrape(node)
    assert client.get(f"/process/{pid}").status_code == 200
    assert client.get("/process/no-such-process-42").status_code == 404
    text = httpx.get(node.url + "/metrics").text
    after = parse(text)
    assert count(after, "200") == count(before, "200") + 1
    assert count(after, "404") == count(before, "404") + 1
    assert pid not in text and "no-such-process-42" not in text
    durations = "runledger_http_request_duration_seconds_count"
    assert after.value(durations, method="GET", route=route) >= 2


def test_an_open_stream_is_in_the_gauge_until_closed_and_a_refused_one_is_counted(
    node: Stack,
) -> None:
    node.authenticated(ACCOUNT)
    token = node.token(ACCOUNT)
    before = scrape(node)
    opened = before.value("runledger_sse_streams_open")
    sock = open_raw(node.port, f"/stream?token={token}")
    try:
        during = scrape(node)
        assert during.value("runledger_sse_streams_open") == opened + 1
        total = "runledger_sse_streams_opened_total"
        assert during.value(total) == before.value(total) + 1
        # the cap is one stream per account: a second one is refused and counted
        r = httpx.get(node.url + "/stream", params={"token": token}, timeout=10)
        assert r.status_code == 429, r.text
        refused = "runledger_sse_streams_refused_total"
        assert scrape(node).value(refused) == before.value(refused) + 1
        assert scrape(node).value("runledger_sse_streams_open") == opened + 1
    finally:
        reset(sock)
    eventually(node, lambda got: got.value("runledger_sse_streams_open") == opened)
    stream = scrape(node).labelled("runledger_http_requests_total")
    assert stream[frozenset({("method", "GET"), ("route", "/stream"), ("status", "200")})] >= 1
    assert stream[frozenset({("method", "GET"), ("route", "/stream"), ("status", "429")})] >= 1
