"""``runledger swap`` against a running node: real broker, decider, node and DuckDB files.

Readers hammer the node from threads while commands flow and the node moves to a
rebuilt file; none may get a non-2xx answer or see a Process go back in time. The
rebuilt file carries a hand-made mark (as if a projection's code had changed), so
the tests can tell which file serves. Each test has a stack of its own, so they run
in any order.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from runledger.control import SOCKET_NAME
from runledger.node import DB_FILE
from tests.integration.conftest import Cli, Stack, start_stack

pytestmark = pytest.mark.integration

MARK = "swap.rebuilt-mark"


@pytest.fixture
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A heartbeat every second lets the test's SSE reader notice its end quickly.
    running = start_stack(
        kafka_bootstrap, tmp_path_factory.mktemp("swap"), {"RUNLEDGER_SSE_HEARTBEAT_S": "1"}
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(stack: Stack) -> httpx.Client:
    return stack.authenticated("acme")


def post(client: httpx.Client, path: str, body: Any = None, expect: int = 200) -> Any:
    r = client.post(path, json=body, params={"wait": "true"})
    assert r.status_code == expect, r.text
    return r.json()


def create(client: httpx.Client, type_: str) -> str:
    return str(post(client, "/process", {"type": type_}, 201)["id"])


def mark(path: Path, process_id: str) -> None:
    """Change one row of a closed read model by hand, as new projection code might."""
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE processes SET type = ? WHERE id = ?", [MARK, process_id])


class Hammer:
    """Reader threads (GET one Process, GET a page) and a writer thread (progress on a
    running Process, new Processes), counting every answer that is not 2xx and every
    time a reader sees the running Process's progress go down."""

    def __init__(self, stack: Stack, others: list[str]) -> None:
        self._stack = stack
        with stack.client("acme") as c:
            self.running = create(c, "swap.running")
            post(c, f"/process/{self.running}/start")
        self._others = others
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.failures: list[str] = []
        self.reads = 0
        self.writes = 0
        self.progress_written = 0
        self.created: list[str] = []
        self._threads = [
            threading.Thread(target=self._read_one, daemon=True),
            threading.Thread(target=self._read_one, daemon=True),
            threading.Thread(target=self._read_pages, daemon=True),
            threading.Thread(target=self._write_progress, daemon=True),
            threading.Thread(target=self._create, daemon=True),
        ]

    def __enter__(self) -> Hammer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _fail(self, text: str) -> None:
        with self._lock:
            self.failures.append(text)

    def _count(self, reads: int = 0, writes: int = 0) -> None:
        with self._lock:
            self.reads += reads
            self.writes += writes

    def _read_one(self) -> None:
        seen = -1
        with self._stack.client("acme") as c:
            while not self._stop.is_set():
                for pid in (self.running, *self._others):
                    r = c.get(f"/process/{pid}")
                    self._count(reads=1)
                    if r.status_code != 200:
                        self._fail(f"GET /process/{pid}: {r.status_code} {r.text}")
                    elif pid == self.running:
                        progress = r.json()["progress"]
                        if progress < seen:
                            self._fail(f"progress went back from {seen} to {progress}")
                        seen = max(seen, progress)

    def _read_pages(self) -> None:
        with self._stack.client("acme") as c:
            while not self._stop.is_set():
                r = c.get("/process", params={"limit": 5, "type": "swap.load"})
                self._count(reads=1)
                if r.status_code != 200:
                    self._fail(f"GET /process: {r.status_code} {r.text}")

    def _write_progress(self) -> None:
        with self._stack.client("acme") as c:
            progress = 1
            while not self._stop.is_set() and progress < 100:
                # Not waiting for the projection: reports keep coming while the old
                # projector is stopped for the switch.
                r = c.post(f"/process/{self.running}/progress", json={"progress": progress})
                self._count(writes=1)
                if r.status_code != 200:
                    self._fail(f"progress {progress}: {r.status_code} {r.text}")
                else:
                    with self._lock:
                        self.progress_written += 1
                progress += 1
                time.sleep(0.01)

    def _create(self) -> None:
        with self._stack.client("acme") as c:
            while not self._stop.is_set():
                r = c.post("/process", json={"type": "swap.load"}, params={"wait": "true"})
                self._count(writes=1)
                if r.status_code != 201:
                    self._fail(f"create: {r.status_code} {r.text}")
                else:
                    with self._lock:
                        self.created.append(r.json()["id"])
                time.sleep(0.02)


class Follower(threading.Thread):
    """Follows one Process's SSE stream and keeps the ``seq`` of every event it gets."""

    def __init__(self, stack: Stack, process_id: str) -> None:
        super().__init__(daemon=True)
        self._stack = stack
        self._id = process_id
        self.stop = threading.Event()
        self.seqs: list[int] = []
        self.status = 0

    def run(self) -> None:
        with (
            self._stack.client("acme") as c,
            c.stream("GET", f"/process/{self._id}/stream") as r,
        ):
            self.status = r.status_code
            for line in r.iter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:]).get("event")
                    if event is not None:
                        self.seqs.append(event["seq"])
                if self.stop.is_set():
                    return


def test_a_running_node_moves_to_a_rebuilt_file_without_failing_a_read(
    cli: Cli, stack: Stack, client: httpx.Client
) -> None:
    marked = create(client, "swap.marked")
    others = [create(client, "swap.load") for _ in range(5)]
    rebuilt = stack.data_dir / "rebuilt.duckdb"
    code, _, err = cli("replay", "--to", str(rebuilt))
    assert code == 0, err
    mark(rebuilt, marked)
    after_rebuild = create(client, "swap.after")  # only a caught-up file has it

    with Hammer(stack, [marked, *others]) as hammer:
        follower = Follower(stack, hammer.running)
        follower.start()
        time.sleep(1.0)
        reads, writes = hammer.reads, hammer.writes
        code, out, err = cli("swap", "--from", str(rebuilt))
        during = hammer.reads - reads, hammer.writes - writes
        time.sleep(1.0)
    assert code == 0, err
    assert hammer.failures == [], hammer.failures[:5]
    assert during[0] > 10 and hammer.writes > 4, (during, hammer.writes)
    # The stream opened before the swap got every event once, in order, across it.
    time.sleep(0.5)
    follower.stop.set()
    follower.join(10)
    assert follower.status == 200
    expected = 2 + hammer.progress_written  # created, started, every progress report
    assert follower.seqs == list(range(1, expected + 1)), (follower.seqs, expected)

    backups = list(stack.data_dir.glob(f"{DB_FILE}.*.bak"))
    assert len(backups) == 1 and str(backups[0]) in out
    assert not rebuilt.exists() and (stack.data_dir / DB_FILE).exists()
    assert "readers moved" in err
    # Served from the rebuilt file: the mark shows; and that file caught up.
    assert client.get(f"/process/{marked}").json()["type"] == MARK
    assert client.get(f"/process/{after_rebuild}").status_code == 200
    for pid in hammer.created[-3:]:
        assert client.get(f"/process/{pid}", params={"wait": "true"}).status_code == 200
    # The projector of the new file goes on: a new write is read back at once.
    late = create(client, "swap.late")
    assert client.get(f"/process/{late}").json()["type"] == "swap.late"


def test_a_restarted_node_opens_the_new_file(cli: Cli, stack: Stack, client: httpx.Client) -> None:
    marked = create(client, "swap.marked")
    rebuilt = stack.data_dir / "rebuilt.duckdb"
    code, _, err = cli("replay", "--to", str(rebuilt))
    assert code == 0, err
    mark(rebuilt, marked)
    code, _, err = cli("swap", "--from", str(rebuilt))
    assert code == 0, err
    late = create(client, "swap.late")
    (backup,) = stack.data_dir.glob(f"{DB_FILE}.*.bak")

    stack.kill("node", signal.SIGTERM)
    assert not (stack.data_dir / SOCKET_NAME).exists()
    assert not list(stack.data_dir.glob("*.incoming*"))
    stack.start("node")
    r = client.get(f"/process/{marked}", params={"wait": "true"})
    assert r.status_code == 200 and r.json()["type"] == MARK
    assert client.get(f"/process/{late}").status_code == 200
    # The backup is the old file: it has the Process without the mark.
    with duckdb.connect(str(backup), read_only=True) as con:
        found = con.execute("SELECT type FROM processes WHERE id = ?", [marked])
        assert found.fetchall() == [("swap.marked",)]


def test_a_second_swap_on_the_same_node_moves_it_again(
    cli: Cli, stack: Stack, client: httpx.Client
) -> None:
    """After a swap the node serves a file it opened under a staged name and renamed:
    the next swap must still retire and replace ``node.duckdb``, not that stale name."""
    marked = create(client, "swap.marked")
    for round_, mark_type in enumerate((MARK, "swap.rebuilt-again"), start=1):
        rebuilt = stack.data_dir / f"rebuilt-{round_}.duckdb"
        code, _, err = cli("replay", "--to", str(rebuilt))
        assert code == 0, err
        with duckdb.connect(str(rebuilt)) as con:
            con.execute("UPDATE processes SET type = ? WHERE id = ?", [mark_type, marked])
        code, out, err = cli("swap", "--from", str(rebuilt))
        assert code == 0, err
        assert f"{stack.data_dir / DB_FILE}" in out  # the live file is named as such
        assert client.get(f"/process/{marked}").json()["type"] == mark_type
        assert not list(stack.data_dir.glob("*.incoming*")), list(stack.data_dir.iterdir())
        assert len(list(stack.data_dir.glob(f"{DB_FILE}.*.bak"))) == round_
    late = create(client, "swap.late")
    assert client.get(f"/process/{late}").json()["type"] == "swap.late"

    # node.duckdb is the file served last: a restarted node opens it and finds both.
    stack.kill("node", signal.SIGTERM)
    stack.start("node")
    r = client.get(f"/process/{marked}", params={"wait": "true"})
    assert r.status_code == 200 and r.json()["type"] == "swap.rebuilt-again"
    assert client.get(f"/process/{late}").json()["type"] == "swap.late"
    assert not list(stack.data_dir.glob("*.incoming*"))


def _alien(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE notes (id INTEGER, body VARCHAR)")


def _other_ledger(path: Path, source: Path) -> None:
    shutil.copyfile(source, path)
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE positions SET topic = 'another.ledger.events'")


def _other_columns(path: Path, source: Path) -> None:
    shutil.copyfile(source, path)
    with duckdb.connect(str(path)) as con:
        con.execute("ALTER TABLE processes ADD COLUMN shape VARCHAR")


def test_a_bad_file_is_refused_and_the_node_keeps_serving(
    cli: Cli, stack: Stack, client: httpx.Client
) -> None:
    kept = create(client, "swap.kept")
    good = stack.data_dir / "good.duckdb"
    code, _, err = cli("replay", "--to", str(good))
    assert code == 0, err
    cases = {
        "alien.duckdb": (lambda p: _alien(p), "not a usable read model"),
        "other.duckdb": (lambda p: _other_ledger(p, good), "holds no positions of"),
        "columns.duckdb": (lambda p: _other_columns(p, good), "rebuild it with this version"),
    }
    for name, (make, reason) in cases.items():
        bad = stack.data_dir / name
        make(bad)
        before = bad.read_bytes()
        with Hammer(stack, [kept]) as hammer:
            code, out, err = cli("swap", "--from", str(bad))
        assert code == 2 and reason in err, (name, err)
        assert hammer.failures == [], (name, hammer.failures[:5])
        assert bad.exists() and not list(stack.data_dir.glob("*.incoming*")), name
        if name != "columns.duckdb":  # refused before the node opened it: untouched
            assert bad.read_bytes() == before, name
        # Still the node's own file, and it still projects.
        assert client.get(f"/process/{kept}").json()["type"] == "swap.kept"
        assert client.get(f"/process/{create(client, 'swap.still')}").status_code == 200
    assert not list(stack.data_dir.glob(f"{DB_FILE}.*.bak"))  # nothing was swapped


def test_the_cli_error_paths(cli: Cli, stack: Stack) -> None:
    code, _, err = cli("swap", "--from", str(stack.data_dir / "missing.duckdb"))
    assert code == 2 and "does not exist" in err
    code, _, err = cli("swap", "--from", str(stack.data_dir / DB_FILE))
    assert code == 2 and "the node's own read model" in err
    logged = stack.data_dir / "logged.duckdb"
    code, _, err = cli("replay", "--to", str(logged))
    assert code == 0, err
    Path(f"{logged}.wal").write_bytes(b"")
    code, _, err = cli("swap", "--from", str(logged))
    assert code == 2 and "write-ahead log" in err
    Path(f"{logged}.wal").unlink()


def test_without_a_node_swap_renames_and_a_stale_socket_does_not_matter(
    cli: Cli, stack: Stack, client: httpx.Client
) -> None:
    kept = create(client, "swap.kept")
    stack.kill("node", signal.SIGKILL)  # leaves node.sock behind
    assert (stack.data_dir / SOCKET_NAME).exists()
    mark(stack.data_dir / DB_FILE, kept)  # so the old file, if it served, would show
    fresh = stack.data_dir / "fresh.duckdb"
    code, _, err = cli("replay", "--to", str(fresh))
    assert code == 0, err
    code, out, err = cli("swap", "--from", str(fresh))
    assert code == 0, err
    assert "no node was running" in err and not fresh.exists()
    stack.start("node")
    # A fresh rebuild has no hand-made mark: the node opened the file just swapped in.
    r = client.get(f"/process/{kept}", params={"wait": "true"})
    assert r.status_code == 200 and r.json()["type"] == "swap.kept"
