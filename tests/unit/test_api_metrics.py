"""``/metrics`` of a node answers in Prometheus text even before the projector has
applied anything (``last_batch_at`` is still unknown then). The whole exposition is
tested in test_metrics_exposition.py."""

from __future__ import annotations

from types import SimpleNamespace

from starlette.testclient import TestClient

from api import ApiDeps, create_app
from api.metrics_node import NodeIdentity
from projections.projector import ProjectorStats
from runledger.node import _metrics
from tests.unit.test_metrics_parser import Exposition, parse


def _scrape(stats: ProjectorStats, held_s: float = 0.0) -> Exposition:
    projector = SimpleNamespace(stats=stats, known_ends=dict, applied={}, held_s=held_s)
    identity = NodeIdentity("0", "", 0.0)
    deps = ApiDeps(
        reads=None,  # type: ignore[arg-type]
        commands=None,  # type: ignore[arg-type]
        positions=None,  # type: ignore[arg-type]
        metrics=lambda: _metrics(projector, identity),  # type: ignore[arg-type]
    )
    with TestClient(create_app(deps)) as client:
        r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def test_metrics_of_a_node_that_applied_nothing_yet() -> None:
    samples = _scrape(ProjectorStats())
    assert samples.value("runledger_projector_events_applied_total") == 0
    assert samples.value("runledger_projector_batches_total") == 0
    assert "runledger_projector_last_batch_timestamp_seconds" not in samples.families
    assert samples.value("runledger_projector_write_held_seconds") == 0


def test_metrics_carry_the_projector_counters() -> None:
    stats = ProjectorStats(
        events_applied=12,
        duplicates_dropped=2,
        dead_lettered=1,
        batches=3,
        last_batch_events=4,
        last_batch_seconds=0.25,
        last_batch_at=1_700_000_000.5,
        dead_letters_by_reason=(("rejected", 1),),
    )
    samples = _scrape(stats)
    assert samples.value("runledger_projector_events_applied_total") == 12
    assert samples.value("runledger_projector_duplicates_dropped_total") == 2
    assert samples.value("runledger_projector_dead_letters_total", reason="rejected") == 1
    assert samples.value("runledger_projector_batches_total") == 3
    assert samples.value("runledger_projector_last_batch_timestamp_seconds") == 1_700_000_000.5


def test_metrics_say_how_long_a_batch_has_waited_for_room_on_the_disk() -> None:
    samples = _scrape(ProjectorStats(), held_s=42.5)
    assert samples.value("runledger_projector_write_held_seconds") == 42.5
