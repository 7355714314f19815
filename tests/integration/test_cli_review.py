"""The CLI as a demanding operator uses it: every bad input is one line on stderr and
a non-zero exit, never a traceback; times are UTC ISO 8601 both ways; ``tail --from``
starts at the right events; ``verify`` catches rows added or removed by hand.

The first tests need no stack (a dead broker is enough); the last ones share one.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest

from runledger.audit import iso, parse_time
from runledger.cli import build_parser
from runledger.stackfile import StackFile
from runledger.tail import parse_start
from tests.cli_support import one_line, refused_line
from tests.integration.conftest import Cli, Stack, free_port
from tests.integration.test_tools_cli import post

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "some-id"],
        ["as-of", "some-id", "--at", "2026-01-01T00:00:00Z"],
        ["tail", "--from", "beginning", "--idle-timeout", "1"],
        ["replay", "--to", "{tmp}/new.duckdb"],
        ["export", "--out", "{tmp}/export"],
        ["token", "create", "--account", "acme"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_stack_file_naming_a_dead_broker_is_one_line_and_exit_2(
    bare: Cli, dead: Path, tmp_path: Path, argv: list[str]
) -> None:
    assert "127.0.0.1" in refused_line(bare, argv, dead, tmp_path)
    assert not (tmp_path / "new.duckdb").exists()


def test_replay_force_keeps_the_old_file_when_the_replay_fails(
    bare: Cli, dead: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old.duckdb"
    con = duckdb.connect(str(old))
    con.execute("CREATE TABLE kept AS SELECT 42 AS answer")
    con.close()
    code, _, err = bare("replay", "--to", str(old), "--force", "--data-dir", str(dead))
    # ``dead``'s broker is a stopped stack's: the line says so (test_cli_stopped_stack.py).
    assert code == 2 and f"the stack in {dead} is not running" in one_line(err)
    con = duckdb.connect(str(old), read_only=True)
    assert con.execute("SELECT answer FROM kept").fetchall() == [(42,)]
    con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dead", "old.duckdb"]


def test_a_missing_topic_is_one_line_and_exit_2(
    bare: Cli, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNLEDGER_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("RUNLEDGER_TOPIC_PREFIX", f"never{uuid.uuid4().hex[:8]}.")
    code, _, err = bare("audit", "some-id")
    assert code == 2 and "does not exist" in one_line(err)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "x", "--data-dir", "{file}"], "is a file"),
        (["audit", "x", "--data-dir", "{tmp}/empty"], "stack.json"),
        (["audit", "x", "--type", "proces", "--data-dir", "{dead}"], "unknown aggregate type"),
        (["as-of", "x", "--at", "last tuesday", "--data-dir", "{dead}"], "ISO 8601"),
        (["as-of", "x", "--at", "2026-01-01T00:00:00+25:00", "--data-dir", "{dead}"], "ISO 8601"),
        (["as-of", "x", "--at", "9999-12-31T23:59:59-01:00", "--data-dir", "{dead}"], "9999"),
        (["as-of", "x", "--at", "0001-01-01T00:00:00+01:00", "--data-dir", "{dead}"], "9999"),
        (["tail", "--from", "yesterday", "--data-dir", "{dead}"], "ISO 8601"),
        (["tail", "--type", "processes", "--data-dir", "{dead}"], "names no aggregate type"),
        (["replay", "--to", "{tmp}", "--force", "--data-dir", "{dead}"], "is a folder"),
        (["replay", "--to", "{tmp}/no/such/new.duckdb", "--data-dir", "{dead}"], "does not exist"),
        (["export", "--out", "{file}", "--data-dir", "{dead}"], "is a file"),
        (["export", "--out", "{tmp}/e", "--db", "{tmp}/nope.duckdb"], "is not a file"),
        (["runner", "--kinds", "scan,scna", "--data-dir", "{dead}"], "unknown job kinds"),
        (["up", "--data-dir", "{file}"], "is a file"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(
    bare: Cli, dead: Path, tmp_path: Path, argv: list[str], message: str
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    fill = {"{file}": str(a_file), "{tmp}": str(tmp_path), "{dead}": str(dead)}
    for key, value in fill.items():
        argv = [a.replace(key, value) for a in argv]
    code, out, err = bare(*argv)
    assert code == 2 and out == ""
    assert message in one_line(err)
    assert not (tmp_path / "e" / "ledger_events.parquet").exists()  # refused before any work


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tail", "--max", "0"], "--max: '0' is not a whole number of at least 1"),
        (["tail", "--idle-timeout", "-1"], "--idle-timeout: '-1' is not a number of seconds"),
        (["verify", "--limit", "-3"], "--limit: '-3' is not a whole number"),
        (["swap", "--from", "x", "--timeout", "0"], "--timeout: '0' is not a number of seconds"),
        (["up", "--port", "70000"], "--port: '70000' is not a port number"),
        (["node", "--port", "0"], "--port: '0' is not a port number"),
        (["export", "--format", "csv", "--out", "x"], "invalid choice: 'csv'"),
    ],
)
def test_malformed_options_are_refused_by_the_parser(
    bare: Cli, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        bare(*argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_token_without_an_action_shows_the_token_help(bare: Cli) -> None:
    code, out, err = bare("token")
    assert code == 2 and out == ""
    assert err.startswith("usage: runledger token") and "create" in err


def _commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command's parser, ``token create`` included."""
    for action in parser._actions:  # noqa: SLF001 - argparse keeps no public list
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _commands(sub, f"{prefix}{name} ")


def test_every_option_of_every_command_says_what_it_does() -> None:
    commands = dict(_commands(build_parser()))
    assert {"up", "token create", "audit", "as-of", "tail", "replay", "verify", "swap"} <= set(
        commands
    ) and {"export", "runner"} <= set(commands)
    for name, command in commands.items():
        assert command.description, name
        for action in command._actions:  # noqa: SLF001
            if not isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                assert action.help, f"runledger {name} {action.option_strings or action.dest}"


def test_times_print_in_utc_iso_and_parse_back_far_from_1970() -> None:
    for text in ("9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00.000001Z"):
        assert iso(parse_time(text)) == text
    assert iso(parse_time("2026-03-01t13:00:00.5+01:00")) == "2026-03-01T12:00:00.500000Z"
    assert iso(parse_time("2026-03-01T12:00:00z")) == "2026-03-01T12:00:00.000000Z"
    assert iso(parse_time("2026-03-01 12:00")) == "2026-03-01T12:00:00.000000Z"  # no zone: UTC
    assert parse_start("1960-01-01T00:00:00Z") == 0  # Kafka knows no earlier time
    assert parse_start("1970-01-01T00:00:01.5Z") == 1500


def test_a_second_up_on_a_running_data_dir_is_refused(bare: Cli, tmp_path: Path) -> None:
    holder = subprocess.Popen(  # looks like `runledger up` to the pid check
        [sys.executable, "-c", "import time; time.sleep(60)", "runledger", "up"]
    )
    try:
        # Up and looking like `up` before the check (else `up` would rightly start).
        cmdline = Path(f"/proc/{holder.pid}/cmdline")
        deadline = time.monotonic() + 10
        while b"runledger" not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.poll() is None and b"runledger" in cmdline.read_bytes()
        StackFile("http://127.0.0.1:9", "127.0.0.1:1", "", "t", holder.pid).write(tmp_path)
        code, out, err = bare("up", "--data-dir", str(tmp_path), "--port", str(free_port()))
        assert code == 2 and "already runs" in one_line(err) and str(holder.pid) in err
    finally:
        holder.kill()
        holder.wait()


def test_up_on_a_port_in_use_is_refused(bare: Cli, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = bare("up", "--data-dir", str(tmp_path), "--port", str(port))
    assert code == 2 and "cannot listen" in one_line(err)
    assert not (tmp_path / "kafka").exists()  # nothing was started


def test_up_after_a_dead_up_is_not_refused(
    bare: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass", "runledger", "up"])
    gone.wait()
    StackFile("http://127.0.0.1:9", "127.0.0.1:1", "", "t", gone.pid).write(tmp_path)
    monkeypatch.setenv("RUNLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code, _, err = bare("up", "--data-dir", str(tmp_path), "--port", str(free_port()))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    last = err.strip().splitlines()[-1]
    assert code == 2 and last == (
        "runledger: cannot reach a Kafka broker at 127.0.0.1:1: is it running? "
        "(set by RUNLEDGER_KAFKA_BOOTSTRAP)"
    ), err


# -- on a running stack -----------------------------------------------------------------


@pytest.fixture(scope="module")
def client(stack: Stack) -> httpx.Client:
    return stack.authenticated("acme")


@pytest.fixture(scope="module")
def pid(client: httpx.Client) -> str:
    """A completed process with a rejected report after it, and some other traffic."""
    p = post(client, "/process", {"type": "review.cli"}, 201)["id"]
    post(client, f"/process/{p}/start")
    post(client, f"/process/{p}/complete", {"object_id": "obj"})
    post(client, f"/process/{p}/progress", {"progress": 5}, 409)
    for _ in range(6):
        post(client, "/process", {"type": "review.other"}, 201)
    return p


def test_audit_json_lines_are_valid_stable_and_show_the_rejection(cli: Cli, pid: str) -> None:
    code, first, _ = cli("audit", pid, "--json")
    assert code == 0
    code, again, _ = cli("audit", pid, "--json")
    assert code == 0 and again == first
    docs = [json.loads(line) for line in first.splitlines()]
    assert [d["result"] for d in docs] == ["accepted"] * 3 + ["rejected"]
    assert docs[-1]["reason_code"] == "invalid_state" and docs[-1]["events"] == []
    assert all(d["at"] == iso(parse_time(d["at"])) for d in docs)  # UTC ISO, exact µs


def test_tail_from_a_time_starts_at_the_first_event_after_it(
    cli: Cli, client: httpx.Client, pid: str
) -> None:
    kind = f"review.tail.{uuid.uuid4().hex[:6]}"
    before = [post(client, "/process", {"type": kind}, 201)["id"] for _ in range(4)]
    time.sleep(1.2)
    since = time.time_ns() // 1000
    time.sleep(0.05)
    after = [post(client, "/process", {"type": kind}, 201)["id"] for _ in range(6)]
    code, out, _ = cli(
        "tail", "--from", iso(since), "--type", "process.created", "--idle-timeout", "2"
    )
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines()]
    seen = [d["aggregate_id"] for d in docs if d["data"]["process_type"] == kind]
    assert sorted(seen) == sorted(after) and not set(before) & set(seen)
    assert all(d["occurred_at"] >= since for d in docs)


class BrokenStdout(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_tail_into_a_closed_pipe_stops_quietly(
    cli: Cli, pid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", BrokenStdout())
    code, _, err = cli("tail", "--from", "beginning", "--idle-timeout", "2")
    assert code == 0 and err == ""  # how a pipeline ends a follower: 0, also under pipefail


def _replayed(cli: Cli, data_dir: Path) -> Path:
    data_dir.mkdir()
    code, _, err = cli("replay", "--to", str(data_dir / "node.duckdb"))
    assert code == 0, err
    return data_dir / "node.duckdb"


@pytest.mark.parametrize(
    ("change", "side"),
    [
        ("INSERT INTO events SELECT * FROM events ORDER BY ALL LIMIT 1", "live only:"),
        ("DELETE FROM processes WHERE id = ?", "rebuilt only:"),
    ],
    ids=["extra-row", "missing-row"],
)
def test_verify_catches_a_row_added_or_removed_by_hand(
    cli: Cli, pid: str, tmp_path: Path, change: str, side: str
) -> None:
    db = _replayed(cli, tmp_path / "node")
    code, out, _ = cli("verify", "--data-dir", str(tmp_path / "node"))
    assert code == 0, out
    con = duckdb.connect(str(db))
    con.execute(change, [pid] if "?" in change else [])
    con.close()
    code, out, _ = cli("verify", "--data-dir", str(tmp_path / "node"))
    assert code == 1 and out.rstrip().endswith("DIFFERENCES")
    differing = [line for line in out.splitlines() if line.strip().startswith(side)]
    assert len(differing) == 1, out
    assert "datetime.datetime" not in differing[0] and "Z'" in differing[0]  # UTC ISO times


def test_verify_reports_a_table_whose_columns_changed_as_a_difference(
    cli: Cli, pid: str, tmp_path: Path
) -> None:
    """As after a projection's code changed: a difference (exit 1), not an error."""
    db = _replayed(cli, tmp_path / "node")
    con = duckdb.connect(str(db))
    con.execute("ALTER TABLE steps ADD COLUMN note VARCHAR")
    con.close()
    code, out, err = cli("verify", "--data-dir", str(tmp_path / "node"))
    assert code == 1, err
    assert [line.split()[0] for line in out.splitlines() if "DIFFERS" in line] == ["steps"]
    assert "steps: the columns differ" in out and "note)" in out


def test_verify_of_another_ledgers_file_says_so(
    cli: Cli, pid: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not "DIFFERENCES" against an empty rebuild: the wrong --data-dir or prefix."""
    _replayed(cli, tmp_path / "node")
    monkeypatch.setenv("RUNLEDGER_TOPIC_PREFIX", "another.")
    code, out, err = cli("verify", "--data-dir", str(tmp_path / "node"))
    assert code == 2 and out == ""
    assert "not of another.ledger.events" in one_line(err)


def test_replay_force_replaces_an_existing_file(cli: Cli, pid: str, tmp_path: Path) -> None:
    db = _replayed(cli, tmp_path / "node")
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM processes")
    con.close()
    code, _, err = cli("replay", "--to", str(db))
    assert code == 2 and "--force" in one_line(err)
    code, _, err = cli("replay", "--to", str(db), "--force")
    assert code == 0, err
    code, out, _ = cli("verify", "--data-dir", str(tmp_path / "node"))
    assert code == 0, out
    assert sorted(p.name for p in (tmp_path / "node").iterdir()) == ["node.duckdb"]


def test_export_writes_every_table_and_the_events_readable_by_pyarrow(
    cli: Cli, pid: str, tmp_path: Path
) -> None:
    db = _replayed(cli, tmp_path / "node")
    con = duckdb.connect(str(db), read_only=True)
    names = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    counts = {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}  # type: ignore[index]
    con.close()
    out_dir = tmp_path / "export"
    code, out, err = cli("export", "--format", "parquet", "--out", str(out_dir), "--db", str(db))
    assert code == 0, err
    assert {p.stem for p in out_dir.glob("*.parquet")} == names | {"ledger_events"}
    assert {line.split("\t")[0] for line in out.splitlines()} == names | {"ledger_events"}
    for name in names:
        assert pq.read_table(out_dir / f"{name}.parquet").num_rows == counts[name], name
    events = pq.read_table(out_dir / "ledger_events.parquet").to_pylist()
    assert len(events) == counts["events"]
    mine = [e for e in events if e["aggregate_id"] == pid]
    assert [e["seq"] for e in sorted(mine, key=lambda e: e["seq"])] == [1, 2, 3]
    assert json.loads(mine[0]["data"])["process_type"] == "review.cli"


def _start_up(env: dict[str, str], data_dir: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """``runledger up`` on ``data_dir``, read until it prints its token: the running
    process and every line it printed so far (stdout and stderr)."""
    argv = ["up", "--data-dir", str(data_dir), "--port", str(free_port())]
    up = subprocess.Popen(
        [sys.executable, "-m", "runledger", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert up.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("token for" in x for x in lines):
        line = up.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
    return up, lines


def _up_until_token(kafka_bootstrap: str, data_dir: Path, prefix: str) -> tuple[str, list[str]]:
    """Run ``runledger up`` on ``data_dir`` until it prints its token; stop it; the
    token and every line it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    env |= {
        "RUNLEDGER_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "RUNLEDGER_TOPIC_PREFIX": prefix,
        "RUNLEDGER_PARTITIONS": "1",
    }
    up, lines = _start_up(env, data_dir)
    try:
        found = [x for x in lines if "token for" in x]
        assert found, lines
        return found[0].rsplit(" ", 1)[1], lines
    finally:
        stop_up(up)


def stop_up(up: subprocess.Popen[str]) -> None:
    """SIGTERM a running ``up`` and wait for it; killed if it takes over a minute."""
    if up.poll() is None:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


def test_up_does_not_reuse_the_token_of_another_ledger(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """stack.json from a run on other topics: its token means nothing on these."""
    StackFile("http://127.0.0.1:9", kafka_bootstrap, "other.", "stale-token").write(tmp_path)
    token, _ = _up_until_token(kafka_bootstrap, tmp_path, f"t{uuid.uuid4().hex[:8]}.")
    assert token != "stale-token"
    assert StackFile.read(tmp_path).token == token


def test_up_issues_a_new_token_when_the_last_one_is_not_accepted(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A revoked (here: never issued) token in stack.json of the same ledger: up waited
    60 s for the node to accept it, then failed, pointing at the node's log."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    StackFile("http://127.0.0.1:9", kafka_bootstrap, prefix, "rl_revoked").write(tmp_path)
    token, lines = _up_until_token(kafka_bootstrap, tmp_path, prefix)
    assert token != "rl_revoked" and StackFile.read(tmp_path).token == token
    assert any("not accepted (revoked?)" in x for x in lines), lines


def _pids_of(lines: list[str]) -> dict[str, int]:
    """The pids ``up`` logged: ``started node (pid 123)``, ``broker starting, pid 45``."""
    found: dict[str, int] = {}
    for line in lines:
        if " started " in line and "(pid " in line:
            name = line.split(" started ", 1)[1].split(" (pid ", 1)[0]
            found[name] = int(line.split("(pid ", 1)[1].split(")", 1)[0])
        elif "broker starting, pid " in line:
            found["broker"] = int(line.split("broker starting, pid ", 1)[1].split(",", 1)[0])
    return found


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.2)
    return False


def test_up_says_when_its_broker_dies_and_its_children_die_with_it(tmp_path: Path) -> None:
    """up printed nothing when its broker was killed (the clients retried in silence),
    and a SIGKILLed up left its node, decider, orchestrator and runner running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    env |= {"RUNLEDGER_PARTITIONS": "1"}

    first, lines = _start_up(env, tmp_path / "a")
    try:
        pids = _pids_of(lines)
        assert {"broker", "node", "decider"} <= set(pids), lines
        os.kill(pids["broker"], signal.SIGKILL)
        out, _ = first.communicate(timeout=60)
        assert first.returncode == 2
        assert f"broker (pid {pids['broker']}) was killed by signal 9" in out
        assert all(_gone(pid, 30) for name, pid in pids.items() if name != "broker")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    second, lines = _start_up(env, tmp_path / "b")
    try:
        pids = _pids_of(lines)
        second.kill()  # SIGKILL: no handler runs in up
        second.wait()
        assert all(_gone(pid, 30) for pid in pids.values()), pids
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
