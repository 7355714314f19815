"""``/metrics`` of a node answers in Prometheus text even before the projector has
applied anything (``last_batch_at`` is still unknown then)."""

from __future__ import annotations

import re
from types import SimpleNamespace

from starlette.testclient import TestClient

from api import ApiDeps, create_app
from projections.projector import ProjectorStats
from runledger.node import _metrics

SAMPLE = re.compile(r"^runledger_[a-z_]+ -?\d+(\.\d+)?(e[+-]?\d+)?$")


def _scrape(stats: ProjectorStats) -> str:
    projector = SimpleNamespace(stats=stats)
    deps = ApiDeps(
        reads=None,  # type: ignore[arg-type]
        commands=None,  # type: ignore[arg-type]
        positions=None,  # type: ignore[arg-type]
        metrics=lambda: _metrics(projector),  # type: ignore[arg-type]
    )
    with TestClient(create_app(deps)) as client:
        r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            continue
        assert SAMPLE.match(line), line
        name, value = line.split()
        samples[name] = float(value)
    return samples


def test_metrics_of_a_node_that_applied_nothing_yet() -> None:
    samples = _samples(_scrape(ProjectorStats()))
    assert samples["runledger_projector_events_applied"] == 0
    assert samples["runledger_projector_batches"] == 0
    assert "runledger_projector_last_batch_at" not in samples


def test_metrics_carry_the_projector_counters() -> None:
    stats = ProjectorStats(
        events_applied=12,
        duplicates_dropped=2,
        dead_lettered=1,
        batches=3,
        last_batch_events=4,
        last_batch_seconds=0.25,
        last_batch_at=1_700_000_000.5,
    )
    samples = _samples(_scrape(stats))
    assert samples["runledger_projector_events_applied"] == 12
    assert samples["runledger_projector_duplicates_dropped"] == 2
    assert samples["runledger_projector_dead_lettered"] == 1
    assert samples["runledger_projector_batches"] == 3
    assert samples["runledger_projector_last_batch_at"] == 1_700_000_000.5
