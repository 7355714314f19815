"""A control request whose caller went away (``runledger swap`` stopped with Ctrl-C)
runs to its end on the node: its progress reports go nowhere, quietly. The node runs
on uvloop, whose transports raise RuntimeError on a write after the peer closed (the
standard loop's raise ConnectionError): the drill's Ctrl-C of a swap under uvloop
aborted the swap with two tracebacks in node.log, and after the switch it would have
left the node serving from the incoming file with its old one still open."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import uvloop

from runledger import control


def test_a_request_goes_on_after_its_caller_left(tmp_path: Path) -> None:
    finished: list[str] = []

    async def handler(request: dict[str, Any], report: control.Report) -> dict[str, Any]:
        await report("took it")
        await asyncio.sleep(0.3)  # meanwhile, the caller hangs up
        for line in ("catching up", "catching up", "switched"):  # to nobody
            await report(line)
            await asyncio.sleep(0.05)
        finished.append("retired")
        return {"done": True}

    async def scenario() -> None:
        server = control.ControlServer(tmp_path / control.SOCKET_NAME, {"swap": handler})
        assert await server.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / "node.sock"))
            writer.write(json.dumps({"op": "swap"}).encode() + b"\n")
            assert json.loads(await reader.readline()) == {"progress": "took it"}
            writer.close()  # Ctrl-C
            await writer.wait_closed()
            for _ in range(100):
                if finished:
                    break
                await asyncio.sleep(0.02)
        finally:
            await server.close()

    uvloop.run(scenario())
    assert finished == ["retired"]
