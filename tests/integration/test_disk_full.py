"""The disk-full drill: a node's DuckDB file and the write-ahead log beside it, or a
runner's artifacts, cannot grow for a while, then space comes back.

A full disk is simulated without root by RLIMIT_FSIZE on the service's process, which
ignores SIGXFSZ, so a write past the limit fails with EFBIG where a full disk fails it
with ENOSPC; raising the limit again is "space freed".

What it asserts (DESIGN.md, "Consistency and failure model"; docs/operations.md,
"When the disk fills up"):

1. while the disk is full the node stays up: reads answer ``200`` from what the read
   model holds, commands are accepted (they go to Kafka; ``?wait=true`` ones answer
   with ``Ledger-Applied: false``), a ``?wait=true`` read answers ``504 wait_timeout``
   within its wait, ``runledger_projector_write_held_seconds`` counts, and the log says
   it once, not once a batch (before the fix the node exited at the first batch);
2. once space is freed the projector carries on by itself and catches up;
3. nothing lost, nothing doubled: ``runledger verify`` exits 0, and the file opens
   and serves after a restart; a node started on a full disk behaves the same;
4. a checkpoint without room (fatal to DuckDB: it then refuses reads too) leaves the
   reads served and loses nothing committed;
5. a runner that cannot store a scan's screenshot fails that node saying so (was:
   ``runner error: OSError: [Errno 27] File too large`` and a traceback) and scans
   again once there is room.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from projections.database import Database
from projections.errors import StoreFull
from runledger.node import DB_FILE
from streams.domain.events import Event
from tests.integration.chaos_support import run_verify
from tests.integration.conftest import Stack, start_stack
from tests.integration.flow_helpers import (
    completed,
    create_run,
    node,
    node_status,
    of,
    read_events,
)
from tests.site.server import TestSite

pytestmark = pytest.mark.integration

# Room left for the node's files once the disk "fills": a batch or two.
HEADROOM_BYTES = 64 * 1024
FULL_FOR_S = 8.0
CATCH_UP_S = 30.0
RUN_S = 90.0
NO_ROOM = "projector: no room to write to the read model"
ROOM_AGAIN = "projector: room again in"


def _ignore_sigxfsz() -> None:
    """In the node's child process: a write past RLIMIT_FSIZE fails with EFBIG instead
    of killing the process, as a write on a full disk fails with ENOSPC."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _full_at(limit: int) -> Callable[[], None]:
    """In the node's child process: start with files that cannot grow past ``limit``."""

    def preexec() -> None:
        _ignore_sigxfsz()
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

    return preexec


def _room(stack: Stack) -> int:
    """A file size limit that lets the node's files grow by ``HEADROOM_BYTES`` only."""
    files = (stack.data_dir / DB_FILE, stack.data_dir / f"{DB_FILE}.wal")
    return max(f.stat().st_size for f in files if f.exists()) + HEADROOM_BYTES


def _set_limit(stack: Stack, soft: int, service: str = "node") -> None:
    """No file of ``service`` grows past ``soft`` bytes from now (RLIM_INFINITY: room)."""
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.prlimit(stack.procs[service].pid, resource.RLIMIT_FSIZE, (soft, hard))


def _create(client: httpx.Client, n: int) -> str:
    created = client.post("/process", json={"type": "scan"}, headers={"Idempotency-Key": f"k{n}"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _applied(client: httpx.Client, count: int) -> list[str]:
    """``count`` new Processes, once the node shows them."""
    pids = [_create(client, n) for n in range(count)]
    assert client.get("/process", params={"wait": "true"}).status_code == 200
    return pids


def _log(stack: Stack) -> list[str]:
    return (stack.data_dir / "node.log").read_text(errors="replace").splitlines()


def _held_s(stack: Stack) -> float:
    metrics = httpx.get(stack.url + "/metrics", timeout=5).text
    (line,) = (m for m in metrics.splitlines() if m.startswith("runledger_projector_write_held"))
    return float(line.split()[1])


def _wait_until_shown(client: httpx.Client, pid: str, since: float) -> float:
    """Seconds from ``since`` until the node shows ``pid`` (its whole ledger caught up
    to then, since one wait covers every partition)."""
    deadline = time.monotonic() + CATCH_UP_S
    while True:
        shown = client.get(f"/process/{pid}", params={"wait": "true"}, headers={"Prefer": "wait=1"})
        if shown.status_code == 200:
            return time.monotonic() - since
        assert time.monotonic() < deadline, f"not caught up: {shown.text}"


def _assert_recorded_once(stack: Stack, client: httpx.Client, pids: list[str]) -> None:
    """Every Process is shown, and the read model equals a rebuild from the ledger;
    the file opens and serves after a restart."""
    for pid in pids:
        assert client.get(f"/process/{pid}").status_code == 200, pid
    stack.kill("node", signal.SIGTERM)
    verified = run_verify(stack)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    stack.preexec.pop("node", None)
    stack.start("node")
    assert client.get("/process", params={"wait": "true"}).status_code == 200
    missing = [pid for pid in pids if client.get(f"/process/{pid}").status_code != 200]
    assert not missing, f"{len(missing)} Processes not shown after a restart"


@pytest.fixture
def stack(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Stack]:
    running = start_stack(kafka_bootstrap, tmp_path / "stack", preexec={"node": _ignore_sigxfsz})
    try:
        yield running
    finally:
        running.stop()


def test_a_node_whose_disk_fills_keeps_serving_and_catches_up_once_space_is_freed(
    stack: Stack,
) -> None:
    client = stack.authenticated("acme")
    before = _applied(client, 20)
    logged_before = len(_log(stack))

    _set_limit(stack, _room(stack))
    full_at = time.monotonic()
    during: list[str] = []
    while time.monotonic() - full_at < FULL_FOR_S:  # commands go on being accepted
        during.append(_create(client, len(before) + len(during)))
    assert stack.procs["node"].poll() is None, f"the node exited: {stack.log_tail('node')}"
    assert client.get(f"/process/{before[-1]}").status_code == 200
    assert client.get("/process", params={"limit": 5}).status_code == 200
    waited = client.post(
        "/process", params={"wait": "true"}, json={"type": "scan"}, headers={"Prefer": "wait=1"}
    )
    assert waited.status_code == 201 and waited.headers["Ledger-Applied"] == "false", waited.text
    during.append(str(waited.json()["id"]))
    began = time.monotonic()
    stale = client.get("/process", params={"wait": "true"}, headers={"Prefer": "wait=1"})
    assert (stale.status_code, stale.json()["error"]["code"]) == (504, "wait_timeout"), stale.text
    assert time.monotonic() - began < 4
    assert _held_s(stack) > 1
    assert httpx.get(stack.url + "/health", timeout=5).status_code == 200
    logged = _log(stack)[logged_before:]
    assert [line for line in logged if NO_ROOM in line] and len(logged) <= 3, "\n".join(logged)

    _set_limit(stack, resource.RLIM_INFINITY)
    caught_up_s = _wait_until_shown(client, during[-1], time.monotonic())
    print(
        f"{len(during)} Processes created while full, {len(logged)} node log lines; "
        f"caught up {caught_up_s:.2f} s after space was freed"
    )
    assert [line for line in _log(stack) if ROOM_AGAIN in line]
    assert _held_s(stack) == 0
    _assert_recorded_once(stack, client, before + during)


def test_a_node_started_on_a_full_disk_serves_what_it_has_and_catches_up(
    stack: Stack,
) -> None:
    client = stack.authenticated("acme")
    before = _applied(client, 10)
    stack.kill("node", signal.SIGTERM)

    # Restarted (as a supervisor would) with room for a few batches of write-ahead log.
    stack.preexec["node"] = _full_at(HEADROOM_BYTES)
    stack.start("node")
    during = [_create(client, len(before) + n) for n in range(100)]
    assert client.get(f"/process/{before[-1]}").status_code == 200
    deadline = time.monotonic() + CATCH_UP_S
    while not [line for line in _log(stack) if NO_ROOM in line]:
        assert time.monotonic() < deadline, stack.log_tail("node")
        time.sleep(0.1)
    assert stack.procs["node"].poll() is None, stack.log_tail("node")
    assert client.get(f"/process/{during[-1]}").status_code == 404  # not applied yet

    _set_limit(stack, resource.RLIM_INFINITY)
    caught_up_s = _wait_until_shown(client, during[-1], time.monotonic())
    print(f"started full; caught up {caught_up_s:.2f} s after space was freed")
    _assert_recorded_once(stack, client, before + during)


def _checkpoint_without_room(path: str) -> None:
    """In a child process whose files cannot pass 2 MiB: commits past the checkpoint
    threshold (1 MiB) until one fails as its checkpoint cannot grow the file; reads go
    on, and once there is room the next write goes through and nothing else was kept."""
    _ignore_sigxfsz()
    ddl = ["CREATE TABLE IF NOT EXISTS t (i INTEGER, s VARCHAR)"]
    db = Database(Path(path), checkpoint_mib=1)
    db.open(ddl)

    def add(first: int, rows: int) -> None:
        with db.transaction("adding rows") as tx:
            tx.query(
                f"INSERT INTO t SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) "
                f"FROM range({first}, {first + rows}) r(i)"
            )

    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 1024 * 1024, hard))
    kept, failures = 0, []
    for attempt in range(10):
        try:
            add(attempt * 20_000, 20_000)
            kept += 20_000
        except StoreFull as exc:
            failures.append(str(exc))
        # Reads are served whatever the writes met.
        assert db.query("SELECT count(*) FROM t") == [(kept,)], failures
        if len(failures) == 2:
            break
    assert "Failed to create checkpoint" in failures[0], failures
    # The retry met a log that cannot grow, which DuckDB survives, not a second
    # checkpoint that would take the reads away again.
    assert "Failed to create checkpoint" not in failures[1], failures
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, hard))
    add(1_000_000, 1)
    db.close()
    db.open(ddl)
    assert db.query("SELECT count(*), count(DISTINCT i) FROM t") == [(kept + 1, kept + 1)]
    db.close()


def test_a_checkpoint_without_room_keeps_the_reads_and_loses_nothing(tmp_path: Path) -> None:
    code = (
        "from tests.integration.test_disk_full import _checkpoint_without_room; "
        f"_checkpoint_without_room({str(tmp_path / 'model.duckdb')!r})"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def _scan_run(stack: Stack, site: TestSite, variant: int) -> list[Event]:
    """A FlowRun of one scan node on the test site's changeable page (``variant``: new
    bytes, so new artifacts to store); its events once it completed."""
    site.variant = variant
    nodes = [node("scan", "scan", uri="/changeable")]
    run_id = asyncio.run(create_run(stack, site.base_url + "/", nodes, []))
    events = asyncio.run(read_events(stack, completed(run_id), RUN_S))
    run = of(events, run_id)
    assert run and run[-1].type == "flowrun.completed", stack.log_tail("runner")
    return run


def test_a_runner_whose_artifacts_cannot_be_stored_fails_the_scan_and_goes_on(
    kafka_bootstrap: str, tmp_path: Path, chromium_site: TestSite
) -> None:
    stack = start_stack(
        kafka_bootstrap,
        tmp_path / "stack",
        {"RUNLEDGER_ALLOW_PRIVATE_TARGETS": "1"},
        preexec={"runner": _ignore_sigxfsz},
    )
    try:
        stack.start("orchestrator")
        stack.start("runner")
        first = _scan_run(stack, chromium_site, 1)
        assert node_status(first) == {"scan": "passed"}, first
        artifacts = [p for p in (stack.data_dir / "artifacts").rglob("*") if p.is_file()]
        screenshot = max(p.stat().st_size for p in artifacts)
        # Room for the runner's log lines and the page's HTML, not for a screenshot.
        limit = (stack.data_dir / "runner.log").stat().st_size + 4096
        assert screenshot > limit, (screenshot, limit)

        _set_limit(stack, limit, "runner")
        full = _scan_run(stack, chromium_site, 2)
        (failed,) = [e for e in full if e.type == "flowrun.node_failed"]
        said = failed.data.exception
        assert said.startswith("could not store the image/png artifact ("), said
        assert said.endswith(
            f"bytes) in {stack.data_dir / 'artifacts'}: File too large; free space there "
            "and run it again"
        ), said
        assert stack.procs["runner"].poll() is None, stack.log_tail("runner")

        _set_limit(stack, resource.RLIM_INFINITY, "runner")
        again = _scan_run(stack, chromium_site, 2)  # the same page, stored this time
        assert node_status(again) == {"scan": "passed"}, again
        log = (stack.data_dir / "runner.log").read_text()
        assert "Traceback" not in log and "crashed" not in log, log
    finally:
        stack.stop()
