"""``runledger tail`` as scripts use it, against the real broker on a ledger of the
test's own (events written straight onto the topic, see drill_events.py): a pipe
closed by its reader, a slow reader, ``--from`` a time and ``end`` while events flow,
a corrupt message, a broker that is not there."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runledger.tail import Filter, tail
from tests.integration.conftest import free_port
from tests.integration.drill_events import make_ledger, write_events

pytestmark = pytest.mark.integration


def cli_env(bootstrap: str, prefix: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a CLI tool run against this test's broker and prefix (none of
    the caller's own RUNLEDGER_ settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    return {
        **env,
        "RUNLEDGER_KAFKA_BOOTSTRAP": bootstrap,
        "RUNLEDGER_TOPIC_PREFIX": prefix,
        "RUNLEDGER_DATA_DIR": str(tmp_path / "data"),
    }


def cli_into_head(env: dict[str, str], lines: int, *argv: str) -> tuple[int, bytes, bytes, float]:
    """``runledger ARGV... | head -<lines>`` as a shell runs it: the tool's exit status,
    what head printed, the tool's stderr, and how long the tool took."""
    started = time.monotonic()
    tail_proc = subprocess.Popen(
        [sys.executable, "-m", "runledger", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tail_proc.stdout is not None
    head = subprocess.run(
        ["head", f"-{lines}"], stdin=tail_proc.stdout, capture_output=True, timeout=60
    )
    tail_proc.stdout.close()  # only head reads the pipe: its exit closes the read end
    try:
        _, err = tail_proc.communicate(timeout=30)
    finally:
        if tail_proc.poll() is None:
            tail_proc.kill()
            tail_proc.wait()
    return tail_proc.returncode, head.stdout, err, time.monotonic() - started


@pytest.mark.parametrize("events", [10, 3000], ids=["quiet-ledger", "busy-pipe"])
def test_a_pipe_closed_by_its_reader_ends_tail_quietly_with_0(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: int
) -> None:
    """10 events fit in the pipe: tail had written them all and waited for more, and
    before the reader check it waited forever. 3000 do not: the write fails."""
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    asyncio.run(write_events(kafka_bootstrap, topic, events))
    code, out, err, took = cli_into_head(
        cli_env(kafka_bootstrap, topic_prefix, tmp_path), 3, "tail", "--from", "beginning"
    )
    assert code == 0, (code, err)
    assert err == b"", err  # no traceback, no "Exception ignored ... BrokenPipeError"
    assert len(out.splitlines()) == 3 and all(json.loads(x)["seq"] for x in out.splitlines())
    assert took < 20


def test_a_closed_pipe_ends_tail_while_events_flow_that_its_filter_drops(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """``--account acme | head -1`` while only other accounts' events flow: tail writes
    nothing more, so only the reader check can end it (it used to look only when no
    event at all came, so it ran as long as the ledger was busy)."""
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    asyncio.run(write_events(kafka_bootstrap, topic, 5, account="acme"))
    flowing = threading.Thread(
        target=lambda: asyncio.run(
            write_events(kafka_bootstrap, topic, 3000, first=5, rate=250, account="other")
        )
    )
    flowing.start()
    try:
        env = cli_env(kafka_bootstrap, topic_prefix, tmp_path)
        code, out, err, took = cli_into_head(
            env, 1, "tail", "--from", "beginning", "--account", "acme"
        )
        still_flowing = flowing.is_alive()
    finally:
        flowing.join(30)
    assert code == 0 and err == b"", (code, err)
    assert json.loads(out)["account"] == "acme"
    assert still_flowing, f"tail ended only when the events stopped ({took:.1f} s)"


class SlowReader(io.StringIO):
    """Output whose first write blocks for ``block_s`` (a pipe whose reader is busy),
    during which ``meanwhile`` runs (more events are written)."""

    def __init__(self, block_s: float, meanwhile: Any) -> None:
        super().__init__()
        self.block_s, self.meanwhile, self.writes = block_s, meanwhile, 0

    def write(self, text: str) -> int:
        self.writes += 1
        if self.writes == 1:
            worker = threading.Thread(target=self.meanwhile)
            worker.start()
            worker.join(30)
            time.sleep(self.block_s)
        return super().write(text)


def test_a_slow_reader_is_not_an_idle_ledger(kafka_bootstrap: str, topic_prefix: str) -> None:
    """--idle-timeout 1 with a write that blocks 1.5 s while 5 more events arrive: all
    10 are printed (tail used to stop right after the slow write, dropping the 5)."""
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    asyncio.run(write_events(kafka_bootstrap, topic, 5))
    out = SlowReader(1.5, lambda: asyncio.run(write_events(kafka_bootstrap, topic, 5, first=5)))
    printed = asyncio.run(
        tail(kafka_bootstrap, topic, start="beginning", keep=Filter(), out=out, idle_timeout_s=1)
    )
    assert printed == 10
    assert len(out.getvalue().splitlines()) == 10


def _follow(bootstrap: str, topic: str, start: Any, writer: Any) -> list[dict[str, Any]]:
    """Tail ``topic`` from ``start`` while ``writer()`` (a coroutine) writes, until idle."""
    out = io.StringIO()

    async def both() -> None:
        follow = asyncio.create_task(
            tail(bootstrap, topic, start=start, keep=Filter(), out=out, idle_timeout_s=2)
        )
        await writer()
        await follow

    asyncio.run(both())
    return [json.loads(x) for x in out.getvalue().splitlines()]


def test_from_a_future_time_prints_nothing_stamped_before_it(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """No offset is at or after a future time, so tail starts at the end; the events
    that arrive then are still before that time and must not be printed."""
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    asyncio.run(write_events(kafka_bootstrap, topic, 5))
    future_ms = int(time.time() * 1000) + 3_600_000

    async def writer() -> None:
        await asyncio.sleep(1.0)
        await write_events(kafka_bootstrap, topic, 20, first=5)

    assert _follow(kafka_bootstrap, topic, future_ms, writer) == []


def test_from_end_misses_nothing_once_it_prints(kafka_bootstrap: str, topic_prefix: str) -> None:
    """What --from end guarantees while events flow: nothing written before tail started
    reading, and after its first line every event of every partition, without a gap
    (consecutive offsets, consecutive seq per process)."""
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    asyncio.run(write_events(kafka_bootstrap, topic, 50))

    async def writer() -> None:  # starts at once: some of these precede tail's start
        await write_events(kafka_bootstrap, topic, 1500, first=50, rate=500)

    docs = _follow(kafka_bootstrap, topic, "end", writer)
    assert len(docs) > 500
    assert all(int(d["aggregate_id"][1:]) >= 10 for d in docs)  # p0..p9: before the start
    for partition in {d["partition"] for d in docs}:
        offsets = [d["offset"] for d in docs if d["partition"] == partition]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), partition
    last_pid = f"p{(50 + 1500 - 1) // 5}"
    assert any(d["aggregate_id"] == last_pid and d["seq"] == 5 for d in docs)


def test_a_corrupt_message_is_reported_and_tail_goes_on(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topic = asyncio.run(make_ledger(kafka_bootstrap, topic_prefix))
    asyncio.run(write_events(kafka_bootstrap, topic, 10, garbage_after=4))
    env = cli_env(kafka_bootstrap, topic_prefix, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "runledger", "tail", "--from", "beginning", "--max", "10"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 10
    [warning] = done.stderr.splitlines()
    assert warning.startswith("runledger tail: skipped partition ")
    assert "C3 01" in warning  # the reason: not single-object encoded Avro


def test_a_broker_nobody_runs_fails_at_once_with_one_line(tmp_path: Path) -> None:
    env = cli_env(f"127.0.0.1:{free_port()}", "t.", tmp_path)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "runledger", "tail"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("runledger: cannot reach a Kafka broker at 127.0.0.1:")
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert time.monotonic() - started < 15
