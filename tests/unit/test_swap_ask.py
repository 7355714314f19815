"""``runledger swap`` when the node dies in the middle: the CLI says where the rebuilt
file went. A stand-in node on the data dir's socket takes the request, reports that it
moved the file, and closes the connection without an answer, as a node killed during
the catch-up does."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runledger import control
from runledger.swap import SwapError, ask_node


@pytest.fixture
def dying_node(tmp_path: Path) -> Iterator[Path]:
    """A socket in ``tmp_path`` whose node reads the request, sends the live swap's
    first progress line, then vanishes."""
    staged = tmp_path / "node.duckdb.20261122T223145980783Z.incoming"
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = json.loads(await reader.readline())
        line = {"progress": f"took {request['from']} as {staged}"}
        writer.write(json.dumps(line).encode() + b"\n")
        await writer.drain()
        writer.close()  # killed: no answer

    async def serve() -> asyncio.AbstractServer:
        return await asyncio.start_unix_server(handle, str(tmp_path / control.SOCKET_NAME))

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(serve())
        ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield staged
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_a_node_that_dies_mid_swap_leaves_a_message_naming_the_moved_file(
    tmp_path: Path, dying_node: Path
) -> None:
    seen: list[str] = []
    with pytest.raises(SwapError) as caught:
        ask_node(tmp_path, tmp_path / "rebuilt.duckdb", 60.0, on_progress=seen.append)
    message = str(caught.value)
    assert message.startswith("the node closed the connection without an answer")
    assert f"the rebuilt file is now {dying_node}" in message
    assert f"`runledger swap --from {dying_node}`" in message
    assert seen and seen[0].startswith("took ")  # the progress still reaches the caller
