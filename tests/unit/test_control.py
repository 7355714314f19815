"""The node's control socket: owner-only, any data-dir path length, progress, errors."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from runledger import control


async def _swapish(request: dict[str, Any], report: control.Report) -> dict[str, Any]:
    await report("halfway")
    if request.get("bad"):
        raise control.RequestFailed("that file is not a read model")
    return {"done": request["n"] + 1}


@pytest.mark.parametrize("depth", [1, 6])  # 6: past the ~100 bytes a socket path may have
def test_a_request_gets_progress_and_its_answer(tmp_path: Path, depth: int) -> None:
    folder = tmp_path.joinpath(*["d" * 20] * depth)
    folder.mkdir(parents=True)
    path = folder / control.SOCKET_NAME

    async def main() -> None:
        server = control.ControlServer(path, {"swap": _swapish})
        assert await server.start()
        try:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            progress: list[str] = []
            assert await control.ask(path, {"op": "swap", "n": 1}, progress.append) == {"done": 2}
            assert progress == ["halfway"]
            with pytest.raises(control.ControlError, match="not a read model"):
                await control.ask(path, {"op": "swap", "n": 1, "bad": True})
            with pytest.raises(control.ControlError, match="not a request this node knows"):
                await control.ask(path, {"op": "format-disk"})
        finally:
            await server.close()
        assert not path.exists()
        with pytest.raises(control.NoNode):
            await control.ask(path, {"op": "swap", "n": 1})

    asyncio.run(main())


def test_a_socket_left_by_a_dead_node_means_no_node(tmp_path: Path) -> None:
    path = tmp_path / control.SOCKET_NAME
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays; nothing listens
    with pytest.raises(control.NoNode):
        asyncio.run(control.ask(path, {"op": "swap"}))

    async def restart() -> None:  # a new node replaces the stale socket
        server = control.ControlServer(path, {"swap": _swapish})
        assert await server.start()
        try:
            assert await control.ask(path, {"op": "swap", "n": 0}) == {"done": 1}
        finally:
            await server.close()

    asyncio.run(restart())
