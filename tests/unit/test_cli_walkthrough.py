"""What a new user's walkthrough of the command line found, each without a broker: a
broker that does not answer named with where its address came from, ``verify`` on a
file a node holds in one line, token names refused by the ledger's rule before any
work, a revoke of no active token answered "no" (exit 1), empty ids refused, counts
in good English, a refused ``up`` that leaves no folder, the private-targets setting
said at start, and the stop lines of ``up``'s children and broker. (With a real
broker: tests/integration/test_cli_walkthrough.py.)"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError

from runledger import audit
from runledger.broker import BrokerError
from runledger.broker.local import LocalKafka
from runledger.child import KILL_AFTER_S, Child
from runledger.node import DB_FILE
from runledger.services import STOP_GRACE_S
from runledger.settings import PRIVATE_TARGETS_WARNING, Settings
from runledger.stackfile import StackFile
from streams.domain import account
from streams.domain.commands import Command, CreateToken
from streams.domain.rejection import NOT_FOUND
from streams.publisher import Publisher, PublishError
from streams.serde import Outcome
from streams.topics import TopicError, Topics, ensure_topics, require_topics
from tests.cli_support import Cli, one_line

NO_BROKER = "127.0.0.1:1"  # nothing listens: refused at once


# -- 1. up waits longer than the services' own grace -----------------------------------------


def test_up_kills_a_service_only_after_its_own_grace_has_passed() -> None:
    """Before: 15 s, so a service's documented exit after 20 s (status 3, a log line
    saying why) could never happen under ``up``: it was SIGKILLed first."""
    default = inspect.signature(Child.stop).parameters["timeout"].default
    assert default == KILL_AFTER_S == STOP_GRACE_S + 5.0


# -- 2. verify on a file a node holds ---------------------------------------------------------


@pytest.fixture
def held(dead: Path) -> Iterator[Path]:
    """``dead``'s node.duckdb open read-write in another process, as a running node has it."""
    live = dead / DB_FILE
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "c.execute('CREATE TABLE t (a INT)'); print('ready', flush=True); time.sleep(60)",
            str(live),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield live
    finally:
        holder.kill()
        holder.wait()


def test_verify_on_a_file_the_node_holds_says_so_in_one_line(bare: Cli, held: Path) -> None:
    """Before: DuckDB's lock error (a pid, a URL) on a line of its own, then ours."""
    code, out, err = bare("verify", "--data-dir", str(held.parent))
    assert code == 2 and out == ""
    assert one_line(err) == (
        f"runledger: the node holds {held}: stop it first, or pass --copy to verify a copy"
    )


def test_verify_on_a_damaged_file_says_what_duckdb_found(bare: Cli, dead: Path) -> None:
    (dead / DB_FILE).write_text("not a database")
    code, _, err = bare("verify", "--data-dir", str(dead))
    line = one_line(err)
    assert code == 2 and "not a valid DuckDB database file" in line, line
    assert "the node holds" not in line


# -- 3. a broker that does not answer ----------------------------------------------------------

UNREACHABLE = f"runledger: cannot reach a Kafka broker at {NO_BROKER}: is it running?"


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "some-id"],
        ["tail", "--max", "1"],
        ["token", "create", "--account", "acme"],
        ["replay", "--to", "{tmp}/rebuilt.duckdb"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_broker_of_the_environment_that_does_not_answer_is_named_with_its_setting(
    bare: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str]
) -> None:
    """Before: ``cannot read the topics of H:P: KafkaConnectionError: Unable to bootstrap
    from [('127.0.0.1', 1, <AddressFamily.AF_INET: 2>)]``, or ``cannot connect the
    producer: ...`` from ``token create``."""
    monkeypatch.setenv("RUNLEDGER_KAFKA_BOOTSTRAP", NO_BROKER)
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = bare(*args, "--data-dir", str(tmp_path / "none"))
    line = one_line(err)
    assert code == 2 and out == "", err
    prefix = "runledger: replay failed: " if argv[0] == "replay" else "runledger: "
    assert line == UNREACHABLE.replace("runledger: ", prefix) + (
        " (set by RUNLEDGER_KAFKA_BOOTSTRAP)"
    ), line


def test_a_broker_of_a_running_stack_that_does_not_answer_names_the_stack_file(
    bare: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its `up` runs (its broker died, say): not "start the stack", but where the address is.
    StackFile("http://127.0.0.1:9", NO_BROKER, "", "t", 12345).write(tmp_path)
    monkeypatch.setattr(StackFile, "running", lambda self: True)
    code, _, err = bare("audit", "some-id", "--data-dir", str(tmp_path))
    assert code == 2
    assert one_line(err) == f"{UNREACHABLE} (set by {tmp_path / 'stack.json'})"


async def _publisher_start(bootstrap: str) -> None:
    publisher = Publisher(bootstrap)
    try:
        await publisher.start()
    finally:
        await publisher.stop()


@pytest.mark.parametrize(
    "call",
    [
        lambda: require_topics(NO_BROKER, ["ledger.events"]),
        lambda: ensure_topics(NO_BROKER, Topics("x."), 1),
        lambda: _publisher_start(NO_BROKER),
    ],
    ids=["require_topics", "ensure_topics", "publisher"],
)
def test_the_client_wrappers_say_the_broker_cannot_be_reached(call: object) -> None:
    """The services log these too (a decider started before its broker): one sentence,
    with aiokafka's error kept as the cause for ``-v`` and for the CLI's note."""
    with pytest.raises((TopicError, PublishError)) as info:
        asyncio.run(call())  # type: ignore[operator]
    assert str(info.value) == f"cannot reach a Kafka broker at {NO_BROKER}: is it running?"
    assert isinstance(info.value.__cause__, KafkaConnectionError)


# -- 4 and 5. token names and revokes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["create", "--account", ""], "--account '' is empty"),
        (["create", "--account", "   "], "--account '   ' is only spaces"),
        (["create", "--account", " acme"], "--account ' acme' has spaces around it"),
        (["create", "--account", "ac\tme"], "--account 'ac\\tme' holds a control character"),
        (["create", "--account", "a" * 201], "is 201 characters long"),
        (["create", "--account", "acme", "--name", ""], "--name '' is empty"),
        (["create", "--account", "acme", "--name", " "], "--name ' ' is only spaces"),
        (["revoke", "--account", ""], "--account '' is empty"),
    ],
)
def test_a_token_name_the_ledger_would_not_take_is_refused_before_any_work(
    bare: Cli, tmp_path: Path, argv: list[str], problem: str
) -> None:
    """Before: ``--name ""`` silently became the account's name. No stack is needed to
    be told: the names are checked first."""
    code, out, err = bare("token", *argv, "--data-dir", str(tmp_path / "none"))
    line = one_line(err)
    assert code == 2 and out == "", err
    assert problem in line, line
    assert "a name is 1 to 200 printable characters" in line, line
    assert not (tmp_path / "none").exists()


def test_an_account_name_with_a_space_inside_is_the_ledgers_to_take(bare: Cli, dead: Path) -> None:
    """The ledger's rule allows spaces inside a name (an account is known by its exact
    name): the command goes on to the broker, here a stopped stack's."""
    code, _, err = bare("token", "create", "--account", "a b", "--data-dir", str(dead))
    assert code == 2 and "is not running" in one_line(err)


class _Bus:
    """A CommandBus whose decider answers every command with ``outcome``'s verdict."""

    verdict: tuple[bool, str | None, str | None] = (True, None, None)

    def __init__(self, *_: object) -> None:
        self.node_id = "test-node"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def execute(self, cmd: Command, timeout: float) -> Outcome:
        accepted, code, reason = self.verdict
        return Outcome(
            cmd.command_id,
            cmd.aggregate_type,
            cmd.aggregate_id,
            cmd.name,
            0,
            cmd.account,
            cmd.actor,
            accepted,
            reason_code=code,
            reason=reason,
        )


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch, dead: Path) -> Iterator[type[_Bus]]:
    import runledger.tokens

    monkeypatch.setattr(runledger.tokens, "CommandBus", _Bus)
    monkeypatch.setattr(sys, "stdin", _stdin("rl_not_a_token_of_this_account"))
    yield _Bus
    _Bus.verdict = (True, None, None)


def _stdin(text: str) -> object:
    import io

    return io.StringIO(text + "\n")


def test_revoking_no_active_token_is_a_no_with_exit_1(
    bare: Cli, bus: type[_Bus], dead: Path
) -> None:
    """Before: exit 2 (a usage error) and ``no such active token in this account``,
    naming no account."""
    bus.verdict = (False, NOT_FOUND, "no such active token in this account")
    code, out, err = bare("token", "revoke", "--account", "default", "--data-dir", str(dead))
    assert code == 1 and out == ""
    assert err.strip() == (
        "runledger token revoke: account 'default' has no active token with that value "
        "(revoked already, or another account's)"
    )


def test_a_revoke_the_ledger_accepts_exits_0(bare: Cli, bus: type[_Bus], dead: Path) -> None:
    code, _, err = bare("token", "revoke", "--account", "default", "--data-dir", str(dead))
    assert code == 0 and "revoked" in err


def test_another_refusal_of_a_revoke_stays_an_error(bare: Cli, bus: type[_Bus], dead: Path) -> None:
    bus.verdict = (False, "invalid", "account.token_revoke is not allowed here")
    code, _, err = bare("token", "revoke", "--account", "default", "--data-dir", str(dead))
    assert code == 2 and "not allowed here" in one_line(err)


# -- 6. empty ids, counts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["audit", ""], ["as-of", "", "--at", "2026-01-01T00:00:00Z"]], ids=["audit", "as-of"]
)
def test_an_empty_id_is_a_usage_error(bare: Cli, dead: Path, argv: list[str]) -> None:
    """Before: exit 1, ``no ... with id ''`` (after asking the broker)."""
    code, out, err = bare(*argv, "--data-dir", str(dead))
    assert code == 2 and out == ""
    assert "the id must not be empty" in one_line(err)


def _created(command_id: str) -> tuple[list[object], Outcome]:
    cmd = Command(
        command_id, "account", "acme", 1_000_000, "acme", "cli", command_id, command_id,
        CreateToken(command_id * 8, "ci"),
    )  # fmt: skip
    events = account.decide(None, cmd)
    outcome = Outcome(command_id, "account", "acme", cmd.name, 1_000_000, "acme", "cli", True)
    return list(events), outcome


def test_audit_counts_in_good_english() -> None:
    events, outcome = _created("c1")
    one = audit.history("account", "acme", events, [outcome])  # type: ignore[arg-type]
    assert audit.render_table(one).splitlines()[0] == "account acme: 1 command, 1 event"
    assert [audit.counted(n, "event") for n in (0, 1, 2)] == ["0 events", "1 event", "2 events"]


# -- 7. a refused up leaves no folder -------------------------------------------------------


def test_up_on_a_port_in_use_creates_no_data_dir(bare: Cli, tmp_path: Path) -> None:
    data_dir = tmp_path / "new-stack"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = bare("up", "--data-dir", str(data_dir), "--port", str(port))
    assert code == 2 and "cannot listen" in one_line(err)
    assert not data_dir.exists()


# -- 8. the private-targets setting, the broker's stop ------------------------------------------


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``up`` stops right after its start lines: no broker can be had."""
    import runledger.up

    def refuse(*_: object, **__: object) -> None:
        raise BrokerError("no broker in this test")

    monkeypatch.setattr(runledger.up, "start_broker", refuse)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():  # up installs its own
        signal.signal(sig, handler)


@pytest.mark.parametrize("allowed", [True, False])
def test_up_warns_at_start_when_runners_may_reach_private_addresses(
    bare: Cli,
    no_broker: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    allowed: bool,
) -> None:
    if allowed:
        monkeypatch.setenv("RUNLEDGER_ALLOW_PRIVATE_TARGETS", "1")
    with caplog.at_level(logging.INFO, logger="runledger.up"):
        code, _, err = bare("up", "--data-dir", str(tmp_path / "s"), "--port", str(_free_port()))
    assert code == 2 and "no broker in this test" in err
    warned = [
        r
        for r in caplog.records
        if r.name == "runledger.up" and r.getMessage() == PRIVATE_TARGETS_WARNING
    ]
    assert [r.levelno for r in warned] == ([logging.WARNING] if allowed else [])
    assert PRIVATE_TARGETS_WARNING == (
        "runners may reach private addresses (RUNLEDGER_ALLOW_PRIVATE_TARGETS is set)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_runner_warns_at_start_when_it_may_reach_private_addresses(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import runledger.runner

    async def no_topics(*_: object) -> None:
        raise TopicError("no broker in this test")

    monkeypatch.setattr(runledger.runner, "ensure_topics", no_topics)
    settings = Settings(kafka_bootstrap=NO_BROKER, allow_private_targets=True)
    with caplog.at_level(logging.INFO, logger="runledger.runner"), pytest.raises(TopicError):
        asyncio.run(runledger.runner.run_runner(settings, runledger.runner.RunnerOptions()))
    assert [
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == "runledger.runner"
    ] == [(logging.WARNING, PRIVATE_TARGETS_WARNING)]


# A JVM ends with 128 + 15 once its SIGTERM shutdown hook (Kafka's clean stop) is done.
_LIKE_KAFKA = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(143)); "
    "print('up', flush=True); time.sleep(30)"
)
_STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(30)"
)


@pytest.mark.parametrize(
    ("script", "level", "said"),
    [
        (_LIKE_KAFKA, logging.INFO, "stopped the local Kafka broker (pid {pid}) cleanly in"),
        (_STUBBORN, logging.WARNING, "did not stop within 0.5 s of SIGTERM; killed (see"),
    ],
    ids=["clean", "killed"],
)
def test_the_local_broker_says_how_it_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, script: str, level: int, said: str
) -> None:
    """``up``'s stop lines named each service but not the broker it started."""
    broker = LocalKafka(tmp_path, tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == b"up"
    broker._process = process  # noqa: SLF001 - a stand-in for the JVM
    with caplog.at_level(logging.INFO, logger="runledger.broker.local"):
        broker.stop(timeout=0.5)
    process.stdout.close()
    (record,) = [r for r in caplog.records if r.name == "runledger.broker.local"]
    assert record.levelno == level
    assert said.format(pid=process.pid) in record.getMessage(), record.getMessage()
