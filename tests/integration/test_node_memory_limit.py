"""A node started with ``RUNLEDGER_DUCKDB_MEMORY_MIB`` opens its read model under that
limit, says so in its log, and serves as usual."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Stack, start_stack


@pytest.fixture(scope="module")
def capped(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(
        kafka_bootstrap, tmp_path_factory.mktemp("capped"), {"RUNLEDGER_DUCKDB_MEMORY_MIB": "128"}
    )
    try:
        yield stack
    finally:
        stack.stop()


def _log(stack: Stack) -> str:
    path: Path = stack.data_dir / "node.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_the_node_opens_its_read_model_under_the_limit_and_serves(capped: Stack) -> None:
    client = capped.authenticated("acme")
    r = client.post("/process", json={"type": "capped"}, params={"wait": "true"})
    assert r.status_code == 201, r.text
    got = client.get(f"/process/{r.json()['id']}", params={"wait": "true"})
    assert got.status_code == 200 and got.json()["type"] == "capped"
    deadline = time.monotonic() + 10
    while "DuckDB memory limit: 128 MiB" not in _log(capped):
        assert time.monotonic() < deadline, _log(capped)[-2000:]
        time.sleep(0.1)
