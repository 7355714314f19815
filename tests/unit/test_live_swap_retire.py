"""The end of a live swap (``LiveSwap._retire``): the old file, its log folded into it,
becomes the backup, the new one node.duckdb, and the new file's log, which DuckDB keeps
under the incoming name until the node restarts, is folded into it. No broker: the
stores are stand-ins that record what was asked of them."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, cast

from projections.errors import StoreError
from runledger.live_swap import LiveSwap
from runledger.serving import Serving


class BusyStore:
    """A store whose CHECKPOINT DuckDB refuses ``busy`` times: the new projector holds
    a write transaction (what the drill saw in 4 swaps of 7 under load)."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.checkpoints = 0
        self.closed = False
        self.calls: list[str] = []

    def query(self, sql: str) -> list[Any]:
        assert sql == "CHECKPOINT"
        if self.busy:
            self.busy -= 1
            raise StoreError(
                "read failed: TransactionContext Error: Cannot CHECKPOINT: there are "
                "other write transactions active"
            )
        self.checkpoints += 1
        self.calls.append("checkpoint")
        return []

    def close(self) -> None:
        self.closed = True
        self.calls.append("close")


class FakeServing:
    def __init__(self, store: BusyStore) -> None:
        self.projection = type("Projection", (), {"store": store})()


def test_the_new_files_log_is_folded_even_while_its_projector_writes(tmp_path: Path) -> None:
    live = tmp_path / "node.duckdb"
    live.write_bytes(b"old")
    staged = tmp_path / "node.duckdb.20261122T222251771232Z.incoming"
    staged.write_bytes(b"new")
    new_store, old_store = BusyStore(busy=3), BusyStore(busy=0)
    swapper = LiveSwap(cast(Serving, FakeServing(new_store)), lambda s: None, "t", live)  # type: ignore[arg-type,return-value]
    drained = threading.Event()
    drained.set()

    backup = asyncio.run(
        swapper._retire(cast(Any, old_store), drained, staged, live, "20261122T222251771232Z")
    )

    # The old file's log went into it before it closed and became the backup: a
    # backup with a log of its own is refused by `swap --from` (the rollback).
    assert old_store.calls == ["checkpoint", "close"]
    assert backup.read_bytes() == b"old" and live.read_bytes() == b"new"
    assert not staged.exists()
    assert new_store.checkpoints == 1  # once the projector let it through
