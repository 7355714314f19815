"""The parts of the ledger's consumer tools that need no broker: ``runledger tail``'s
``--type`` check and its closed-pipe check, and the helper's position file. (With the
broker: tests/integration/test_tail_drill.py and test_consumer_drill.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runledger.tail import check_types, detach, reader_gone
from streams.consumer import ConsumerError, JsonFilePositions, LedgerConsumer
from streams.domain.aggregates import EVOLVERS
from streams.domain.events import PAYLOAD_TYPES
from tests.cli_support import Cli, one_line

# -- --type ----------------------------------------------------------------------------------


def test_every_event_and_aggregate_type_is_accepted() -> None:
    check_types([*PAYLOAD_TYPES, *EVOLVERS])


@pytest.mark.parametrize(
    ("kind", "hint"),
    [
        ("process.progres", "did you mean process.progress?"),  # used to match nothing, forever
        ("process.", "did you mean process?"),
        ("flowrun.node_pass", "did you mean flowrun.node_passed?"),
        ("token", "known: process, account"),
    ],
)
def test_a_type_that_matches_nothing_is_refused_with_the_closest_name(kind: str, hint: str) -> None:
    with pytest.raises(ValueError, match="names no aggregate type nor event type") as refused:
        check_types(["process", kind])
    assert repr(kind) in str(refused.value) and hint in str(refused.value)


def test_tail_with_a_misspelt_type_exits_2_before_reaching_the_broker(
    bare: Cli, dead: Path
) -> None:
    code, out, err = bare("tail", "--type", "process.progres", "--data-dir", str(dead))
    assert code == 2 and out == ""
    assert one_line(err) == (
        "runledger: --type: 'process.progres' names no aggregate type nor event type; "
        "did you mean process.progress?"
    )


# -- the reader of tail's output ----------------------------------------------------------------


@pytest.fixture
def pipe() -> Iterator[tuple[int, io.TextIOWrapper]]:
    read_fd, write_fd = os.pipe()
    writer = open(write_fd, "w")  # noqa: SIM115 - closed below
    try:
        yield read_fd, writer
    finally:
        for close in (writer.close, lambda: os.close(read_fd)):
            with contextlib.suppress(OSError):  # already closed by the test
                close()


def test_a_pipe_is_gone_only_once_its_reader_closed_it(pipe: tuple[int, io.TextIOWrapper]) -> None:
    read_fd, writer = pipe
    assert not reader_gone(writer)
    writer.write("unread line\n")
    writer.flush()
    assert not reader_gone(writer)  # unread data is a slow reader, not a gone one
    os.close(read_fd)
    assert reader_gone(writer)


def test_outputs_without_a_reader_are_never_gone(tmp_path: Path) -> None:
    assert not reader_gone(io.StringIO())  # captured output: no descriptor
    with open(tmp_path / "out.jsonl", "w") as file, open(os.devnull, "w") as null:
        assert not reader_gone(file) and not reader_gone(null)


def test_detach_lets_the_buffer_flush_after_the_reader_went_away(
    pipe: tuple[int, io.TextIOWrapper],
) -> None:
    read_fd, writer = pipe
    os.close(read_fd)
    writer.write("left in the buffer\n")
    with pytest.raises(BrokenPipeError):
        writer.flush()
    detach(writer)
    writer.flush()  # what Python does at exit: no "Exception ignored ... BrokenPipeError"
    detach(io.StringIO())  # no descriptor: nothing to do, no error


# -- the helper without a broker -----------------------------------------------------------------


def test_the_position_file_round_trips_and_refuses_a_corrupt_one(tmp_path: Path) -> None:
    store = JsonFilePositions(tmp_path / "positions.json")
    assert store.load() == {}
    store.save({1: 40, 0: 12})
    assert store.load() == {0: 12, 1: 40}
    assert (tmp_path / "positions.json").read_text() == '{"0": 12, "1": 40}'
    (tmp_path / "positions.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="does not hold a JSON object"):
        store.load()


def test_polling_a_consumer_that_was_not_started_is_a_consumer_error() -> None:
    consumer = LedgerConsumer("127.0.0.1:1", "t.ledger.events")
    with pytest.raises(ConsumerError, match="not started"):
        asyncio.run(consumer.poll(0.1))

    async def first() -> object:
        return await anext(aiter(consumer))

    with pytest.raises(ConsumerError, match="not started"):
        asyncio.run(first())
