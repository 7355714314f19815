"""``/metrics`` of a node in Prometheus text format 0.0.4, read back with a strict
parser: every family typed and explained, counters named ``_total``, the projector's
dead letters by reason and lag by partition, HTTP requests by route template (never a
raw id), SSE streams open and refused, and no account anywhere."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from api import ApiDeps, create_app
from api.errors import STREAMING
from api.metrics import CONTENT_TYPE, Family, Sample, counter, format_value, render
from api.metrics_app import HttpMetrics, RequestMetrics
from api.metrics_node import NodeIdentity
from api.stream_limits import StreamSlots
from projections.fold import Batch, DeadLetter, RawMessage
from projections.metrics import ProjectorStats
from runledger.node import _metrics
from tests.unit.test_metrics_parser import Exposition, parse

IDENTITY = NodeIdentity("1.2.3", "pre.", started_at=1_700_000_000.25)


def _projector(stats: ProjectorStats, ends: dict[int, int], applied: dict[int, int]) -> Any:
    return SimpleNamespace(stats=stats, known_ends=lambda: ends, applied=applied, held_s=0.0)


def _app(projector: Any) -> Starlette:
    deps = ApiDeps(
        reads=None,  # type: ignore[arg-type]
        commands=None,  # type: ignore[arg-type]
        positions=None,  # type: ignore[arg-type]
        metrics=lambda: _metrics(projector, IDENTITY),
        sse_max_streams_per_account=1,
    )
    return create_app(deps)


def _scrape(client: TestClient) -> Exposition:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPE
    return parse(r.text)


STATS = ProjectorStats(
    events_applied=12,
    duplicates_dropped=2,
    dead_lettered=3,
    batches=4,
    last_batch_events=5,
    last_batch_seconds=0.25,
    last_batch_at=1_700_000_100.5,
    dead_letters_by_reason=(("sequence_gap", 1), ("undecodable", 2)),
)


def test_every_family_is_typed_and_the_projector_is_all_there() -> None:
    projector = _projector(STATS, ends={0: 10, 1: 7, 2: 0}, applied={0: 4, 1: 7, 2: 0})
    with TestClient(_app(projector)) as client:
        got = _scrape(client)
    kinds = {name: f.kind for name, f in got.families.items()}
    assert kinds == {
        "runledger_projector_events_applied_total": "counter",
        "runledger_projector_duplicates_dropped_total": "counter",
        "runledger_projector_dead_letters_total": "counter",
        "runledger_projector_batches_total": "counter",
        "runledger_projector_last_batch_events": "gauge",
        "runledger_projector_last_batch_duration_seconds": "gauge",
        "runledger_projector_last_batch_timestamp_seconds": "gauge",
        "runledger_projector_write_held_seconds": "gauge",
        "runledger_projector_end_offset": "gauge",
        "runledger_projector_applied_offset": "gauge",
        "runledger_projector_lag_offsets": "gauge",
        "runledger_node_info": "gauge",
        "runledger_process_start_time_seconds": "gauge",
        "runledger_http_requests_total": "counter",
        "runledger_http_request_duration_seconds": "histogram",
        "runledger_sse_streams_open": "gauge",
        "runledger_sse_streams_opened_total": "counter",
        "runledger_sse_streams_refused_total": "counter",
    }
    assert all(f.help for f in got.families.values())
    assert got.value("runledger_projector_events_applied_total") == 12
    assert got.value("runledger_projector_duplicates_dropped_total") == 2
    assert got.value("runledger_projector_batches_total") == 4
    assert got.value("runledger_projector_last_batch_timestamp_seconds") == 1_700_000_100.5
    assert got.value("runledger_projector_last_batch_duration_seconds") == 0.25
    # every known reason is there from the start, at 0 when none happened
    assert got.labelled("runledger_projector_dead_letters_total") == {
        frozenset({("reason", "undecodable")}): 2,
        frozenset({("reason", "sequence_gap")}): 1,
        frozenset({("reason", "rejected")}): 0,
        frozenset({("reason", "unknown_fingerprint")}): 0,
    }
    lag = {
        dict(k)["partition"]: v for k, v in got.labelled("runledger_projector_lag_offsets").items()
    }
    assert lag == {"0": 6, "1": 0, "2": 0}
    assert got.value("runledger_projector_end_offset", partition="0") == 10
    assert got.value("runledger_projector_applied_offset", partition="0") == 4
    assert got.value("runledger_node_info", version="1.2.3", topic_prefix="pre.") == 1
    assert got.value("runledger_process_start_time_seconds") == 1_700_000_000.25


def test_a_node_that_applied_nothing_yet() -> None:
    """Before the first batch: no last-batch time, and no lag for a partition whose end
    the consumer has not heard of yet (rather than a made-up 0)."""
    projector = _projector(ProjectorStats(), ends={1: 3}, applied={0: 0, 1: 0})
    with TestClient(_app(projector)) as client:
        got = _scrape(client)
    assert got.value("runledger_projector_events_applied_total") == 0
    assert "runledger_projector_last_batch_timestamp_seconds" not in got.families
    assert got.labelled("runledger_projector_lag_offsets") == {frozenset({("partition", "1")}): 3}


def test_requests_are_counted_by_route_template_never_by_raw_path() -> None:
    projector = _projector(ProjectorStats(), ends={}, applied={})
    with TestClient(_app(projector), raise_server_exceptions=False) as client:
        for pid in ("p-secret-1", "p-secret-2"):
            client.get(f"/process/{pid}")  # no token: 401, but the route matched
        client.get("/no/such/thing")
        client.request("BREW", "/health")
        text = client.get("/metrics").text
        got = _scrape(client)
    assert "p-secret" not in text
    requests = got.labelled("runledger_http_requests_total")
    assert (
        requests[
            frozenset({("method", "GET"), ("route", "/process/{process_id}"), ("status", "401")})
        ]
        == 2
    )
    assert requests[frozenset({("method", "GET"), ("route", "unmatched"), ("status", "404")})] == 1
    assert requests[frozenset({("method", "other"), ("route", "/health"), ("status", "405")})] == 1
    # the first scrape is counted; the one answering is not, until it has answered
    assert requests[frozenset({("method", "GET"), ("route", "/metrics"), ("status", "200")})] == 1
    count = got.value(
        "runledger_http_request_duration_seconds_count", method="GET", route="/process/{process_id}"
    )
    assert count == 2


def test_streams_open_refused_and_closed_show_without_an_account() -> None:
    slots = StreamSlots(per_account=1)
    first = slots.take("acme-account")
    assert first is not None
    assert slots.take("acme-account") is None  # the cap
    other = slots.take("other-account")
    assert other is not None
    assert (slots.total_open, slots.opened, slots.refused) == (2, 2, 1)
    first.release()
    first.release()  # freeing twice frees once
    assert slots.total_open == 1
    projector = _projector(ProjectorStats(), ends={}, applied={})
    app = _app(projector)
    app.state.stream_slots = slots
    with TestClient(app) as client:
        text = client.get("/metrics").text
    got = parse(text)
    assert got.value("runledger_sse_streams_open") == 1
    assert got.value("runledger_sse_streams_opened_total") == 2
    assert got.value("runledger_sse_streams_refused_total") == 1
    assert "acme-account" not in text and "other-account" not in text
    labels = {k for f in got.families.values() for _, ls in f.samples for k, _ in ls}
    assert "account" not in labels


def _metered(endpoint: Any, metrics: HttpMetrics) -> Starlette:
    return Starlette(
        routes=[Route("/thing/{id}", endpoint)],
        middleware=[Middleware(RequestMetrics, metrics=metrics)],
    )


def test_a_handler_that_raised_is_counted_as_a_500() -> None:
    async def boom(request: Any) -> Response:
        raise RuntimeError("boom")

    metrics = HttpMetrics()
    with TestClient(_metered(boom, metrics), raise_server_exceptions=False) as client:
        assert client.get("/thing/1").status_code == 500
    got = parse(render(metrics.families()))
    assert (
        got.value("runledger_http_requests_total", method="GET", route="/thing/{id}", status="500")
        == 1
    )


def test_a_stream_is_timed_to_its_opening_not_its_end() -> None:
    """An SSE stream lasts its whole window: its duration is the time to open it."""

    class Stream(Response):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            scope[STREAMING] = True
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await asyncio.sleep(0.3)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def stream(request: Any) -> Response:
        return Stream()

    async def slow(request: Any) -> Response:
        await asyncio.sleep(0.3)
        return PlainTextResponse("ok")

    for endpoint, at_most, at_least in ((stream, 0.25, 0.0), (slow, 10.0, 0.3)):
        metrics = HttpMetrics()
        with TestClient(_metered(endpoint, metrics)) as client:
            assert client.get("/thing/1").status_code == 200
        got = parse(render(metrics.families()))
        total = got.value(
            "runledger_http_request_duration_seconds_sum", method="GET", route="/thing/{id}"
        )
        assert at_least <= total <= at_most, (endpoint, total)


def test_durations_fall_in_the_bucket_of_their_bound() -> None:
    metrics = HttpMetrics(buckets=(0.01, 0.1))
    for seconds in (0.005, 0.01, 0.05, 3.0):
        metrics.observe("GET", "/r", 200, seconds)
    got = parse(render(metrics.families()))
    buckets = {
        dict(k)["le"]: v
        for k, v in got.labelled("runledger_http_request_duration_seconds_bucket").items()
    }
    assert buckets == {"0.01": 2, "0.1": 3, "+Inf": 4}
    assert got.value(
        "runledger_http_request_duration_seconds_sum", method="GET", route="/r"
    ) == pytest.approx(3.065)


def test_dead_letters_are_counted_by_reason_across_batches() -> None:
    def letters(*reasons: str) -> Batch:
        raw = RawMessage(0, 0, b"x")
        return Batch("t", dead_letters=tuple(DeadLetter(raw, r, "why") for r in reasons))

    stats = ProjectorStats().counted(letters("undecodable", "rejected"), 0.1, 1.0)
    stats = stats.counted(letters("undecodable"), 0.1, 2.0)
    assert stats.dead_lettered == 3
    assert stats.dead_letters_by_reason == (("rejected", 1), ("undecodable", 2))


def test_exposition_values_labels_and_help_are_escaped() -> None:
    family = Family(
        "x_total", "counter", 'a "help"\\ line\nand more', (Sample(1.5, (("l", 'a"b\\c\nd'),)),)
    )
    text = render([family])
    assert text == (
        '# HELP x_total a "help"\\\\ line\\nand more\n'
        "# TYPE x_total counter\n"
        'x_total{l="a\\"b\\\\c\\nd"} 1.5\n'
    )
    assert parse(text).value("x_total", l='a"b\\c\nd') == 1.5
    assert [format_value(v) for v in (3, 3.0, 0.25, float("inf"), float("-inf"), float("nan"))] == [
        "3", "3", "0.25", "+Inf", "-Inf", "NaN",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="_total"):
        counter("x", "no suffix", 1)
    with pytest.raises(ValueError, match="twice"):
        render([family, family])
