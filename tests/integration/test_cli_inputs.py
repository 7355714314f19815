"""Bad inputs to ``runledger`` that need a running node to show: a replay ``--force``d
onto the node's own file, a swap from a folder. Each is one line and exit 2, and the
node keeps serving from its file, untouched. (Bad inputs without a stack:
tests/unit/test_cli_inputs.py.)"""

from __future__ import annotations

import httpx
import pytest

from runledger.node import DB_FILE
from tests.integration.conftest import Cli, Stack
from tests.integration.test_tools_cli import post

pytestmark = pytest.mark.integration


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("runledger"), err
    return lines[0]


def test_replay_force_onto_the_running_nodes_file_is_refused(cli: Cli, stack: Stack) -> None:
    """Before: exit 0, node.duckdb replaced under the node and its WAL deleted, so the
    node went on writing a file no name pointed to."""
    client = stack.authenticated("acme")
    pid = post(client, "/process", {"type": "inputs.test"}, 201)["id"]
    live = stack.data_dir / DB_FILE
    inode = live.stat().st_ino
    code, out, err = cli("replay", "--to", str(live), "--force")
    assert code == 2 and out == ""
    line = one_line(err)
    assert "open for writing in another process" in line and "runledger swap" in line, line
    assert live.stat().st_ino == inode  # still the node's file
    assert not list(stack.data_dir.glob(f"{DB_FILE}.replay-*"))
    post(client, f"/process/{pid}/start")  # the node applies and serves it from its file
    got = client.get(f"/process/{pid}", params={"wait": "true"})
    assert got.status_code == 200 and got.json()["status"] == "running", got.text


def test_swap_from_a_folder_is_refused_by_the_running_node(cli: Cli, stack: Stack) -> None:
    folder = stack.data_dir / "rebuilt"
    folder.mkdir()
    inode = (stack.data_dir / DB_FILE).stat().st_ino
    code, out, err = cli("swap", "--from", str(folder))
    assert code == 2 and out == ""
    assert f"{folder} is a folder" in one_line(err)
    assert (stack.data_dir / DB_FILE).stat().st_ino == inode
    assert httpx.get(stack.url + "/health", timeout=5).status_code == 200
