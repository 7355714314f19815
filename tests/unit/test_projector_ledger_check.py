"""A projector refuses a read model built from another ledger's events topic."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from projections.errors import ProjectorError
from projections.fold import Batch
from projections.projector import Projector
from projections.store import Store
from streams.topics import Topics


def _projector(store: Store, prefix: str) -> Projector:
    # Nothing listens there: the check must come before any connection.
    return Projector(store, bootstrap="127.0.0.1:9", topics=Topics(prefix), start_timeout_s=1)


def test_a_read_model_of_another_topic_prefix_is_refused_before_connecting(
    tmp_path: Path,
) -> None:
    with Store(tmp_path / "node.duckdb") as store:
        store.write(Batch(topic=Topics("first-").events, positions={0: 12, 1: 7}))
        with pytest.raises(ProjectorError) as refused:
            asyncio.run(_projector(store, "second-").start())
        message = str(refused.value)
        assert "first-ledger.events" in message and "second-ledger.events" in message
        assert "--data-dir" in message
        # Nothing was changed: the file still holds the first ledger's positions only.
        assert store.topics() == ["first-ledger.events"]
        assert store.positions("first-ledger.events") == {0: 12, 1: 7}


def test_its_own_topic_passes_the_check(tmp_path: Path) -> None:
    with Store(tmp_path / "node.duckdb") as store:
        store.write(Batch(topic=Topics("first-").events, positions={0: 12}))
        with pytest.raises(ProjectorError) as failed:
            asyncio.run(_projector(store, "first-").start())
        # It went on to the broker (which is not there): not the ledger check.
        assert "built from" not in str(failed.value)
