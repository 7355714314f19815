"""What runledger's logs say (docs/operations.md, "Logs"): the level and how to change
it, libraries kept quiet, tokens kept out, rejections as one attributable line, jobs
logged once they are really sent, start and stop lines that name Kafka positions, and
``up`` saying how each service stopped."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.structs import TopicPartition

from api.auth import new_token
from runledger import logs
from runledger.cli import main
from runledger.settings import SettingsError
from runledger.up import Child
from schemas import default_codec
from streams.decider import Decider
from streams.domain import commands as c
from streams.topics import Topics, describe_positions
from tests.unit.test_orchestrator_loop import TOPICS, run_flows

LIBRARIES = ("aiokafka", "faust", "mode", "uvicorn", "httpx", "httpcore")


@pytest.fixture
def fresh_logging() -> Iterator[None]:
    """The library loggers as a new process has them, restored afterwards (``main``
    sets them process-wide); the root at INFO, as basicConfig leaves it under pytest."""
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in LIBRARIES}
    saved_root, saved_filters = root.level, {h: list(h.filters) for h in root.handlers}
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)
    root.setLevel(saved_root)
    for handler, filters in saved_filters.items():
        handler.filters[:] = filters


def test_positions_read_in_partition_order_with_the_beginning_for_none() -> None:
    assert describe_positions({3: 22, 0: 2, 1: 7}) == "partition 0 at offset 2, 1 at 7, 3 at 22"
    assert describe_positions({TopicPartition("t", 1): 5}) == "partition 1 at offset 5"
    assert describe_positions({}) == "the beginning"


@pytest.mark.usefixtures("fresh_logging")
def test_libraries_speak_at_warning_only_at_the_default_level(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RUNLEDGER_LOG_LEVEL", raising=False)
    assert main([]) == 2  # no command: the help, after logging is set up
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        assert not logger.isEnabledFor(logging.INFO), name
        assert logger.isEnabledFor(logging.WARNING), name
    assert logs.child_level() == "INFO"


@pytest.mark.usefixtures("fresh_logging")
def test_verbose_shows_http_requests_but_never_kafka_fetches(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["-v"]) == 2
    assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("aiokafka").isEnabledFor(logging.INFO)
    assert logs.child_level() == "DEBUG"  # what `up` hands its services


@pytest.mark.usefixtures("fresh_logging")
def test_a_one_shot_tool_silences_kafka_retries() -> None:
    logs.configure(logging.INFO, tool=True)
    assert not logging.getLogger("aiokafka").isEnabledFor(logging.ERROR)
    logs.configure(logging.DEBUG, tool=True)
    assert logging.getLogger("aiokafka").isEnabledFor(logging.WARNING)


def test_the_level_comes_from_the_environment_and_a_bad_one_is_named() -> None:
    assert logs.level_of({}, verbose=False) == logging.INFO
    assert logs.level_of({"RUNLEDGER_LOG_LEVEL": "Warning"}, verbose=False) == logging.WARNING
    assert logs.level_of({"RUNLEDGER_LOG_LEVEL": "error"}, verbose=True) == logging.DEBUG
    with pytest.raises(SettingsError, match="RUNLEDGER_LOG_LEVEL must be one of .*'loud'"):
        logs.level_of({"RUNLEDGER_LOG_LEVEL": "loud"}, verbose=False)


def test_a_bad_level_stops_the_command_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RUNLEDGER_LOG_LEVEL", "loud")
    assert main(["token", "create", "--account", "acme"]) == 2
    assert "RUNLEDGER_LOG_LEVEL must be one of" in capsys.readouterr().err


def test_a_token_never_reaches_a_log_line_nor_a_traceback() -> None:
    token = new_token()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "header %s refused", (token,), None)
    try:
        raise ValueError(f"bad Authorization: {token}")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert logs.RedactTokens().filter(record)
    line = logging.Formatter(logs.FORMAT).format(record)
    assert token not in line and token[3:] not in line
    assert "header rl_[redacted] refused" in line
    assert "bad Authorization: rl_[redacted]" in line  # the traceback is kept, redacted


@pytest.mark.usefixtures("fresh_logging")
def test_configure_puts_the_redaction_on_every_handler(caplog: pytest.LogCaptureFixture) -> None:
    logs.configure(logging.INFO, tool=False)
    token = new_token()
    with caplog.at_level(logging.INFO):
        logging.getLogger("runners.request_filter").info("blocked %s?token=%s", "url", token)
    assert caplog.records and token not in caplog.text


def _command(cid: str, body: c.Body) -> c.Command:
    return c.Command(cid, "process", "p-1", 1_000, "acme", "token:ops", "r", "r", body)


def test_a_rejection_is_one_info_line_naming_command_aggregate_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    decider = Decider("unused:9092", Topics("unit."), default_codec())
    with caplog.at_level(logging.DEBUG, logger="streams.decider"):
        decider._decide(_command("cmd-1", c.CreateProcess("scan", None, "{}", ())))
        decider._decide(_command("cmd-2", c.CancelProcess("not needed")))
        decider._decide(_command("cmd-3", c.CancelProcess("again")))
    accepted = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert [r.getMessage().split(" (")[0] for r in accepted] == [
        "accepted process.create of process p-1",
        "accepted process.cancel of process p-1",
    ]
    (rejected,) = [r for r in caplog.records if r.levelno >= logging.INFO]
    line = rejected.getMessage()
    assert rejected.levelno == logging.INFO and rejected.exc_info is None  # expected: no trace
    assert line.startswith(
        "rejected process.cancel of process p-1 (command cmd-3, actor token:ops)"
    )
    assert "invalid_state: cannot cancel process p-1" in line


def test_orchestrator_lines_name_positions_and_only_committed_jobs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams import supervision

    monkeypatch.setattr(supervision, "RESTART_DELAY_S", 0.0)

    def job_d(what: str, value: bytes) -> bool:  # the transaction sending node d's job aborts
        from streams.jobs import decode_dispatch

        return what == TOPICS.jobs and decode_dispatch(value).job.node_id == "d"

    with caplog.at_level(logging.INFO, logger="streams.orchestrator"):
        broker, _ = run_flows(job_d)
    assert broker.failures == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "streams.orchestrator"]
    dispatched = [line for line in lines if line.startswith("dispatched wait job")]
    # 4 nodes x 2 runs, each once: the aborted attempt at node d's job is not reported.
    assert len(dispatched) == len(set(dispatched)) == 8
    assert sum(" node d " in line for line in dispatched) == 2
    ready = [line for line in lines if line.startswith("orchestrator ready on fake:9092")]
    assert "reading unit.ledger.events from partition 0 at offset 0, 1 at 0" in ready[0]
    ends = {p: len(log) for p, log in broker.events.items()}
    stopped = [line for line in lines if line.startswith("orchestrator stopped")]
    assert stopped and stopped[-1].endswith(f"committed up to {describe_positions(ends)}")


def test_up_says_whether_a_service_stopped_cleanly_or_was_killed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    polite = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0));"
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    ready = "print('up', flush=True); time.sleep(30)"
    children = {
        "polite": Child("polite", [sys.executable, "-c", polite + ready], {}, tmp_path / "p.log"),
        "stubborn": Child(
            "stubborn", [sys.executable, "-c", stubborn + ready], {}, tmp_path / "s.log"
        ),
    }
    with caplog.at_level(logging.INFO, logger="runledger.up"):
        for child in children.values():
            child.start()
        for child in children.values():  # its handler is set once it printed
            _wait_for_output(child.log_path)
        children["polite"].stop()
        children["stubborn"].stop(timeout=0.5)
    lines = {r.getMessage(): r.levelno for r in caplog.records if "started" not in r.message}
    assert any(m.startswith("stopped polite (pid") and m.endswith("cleanly") for m in lines)
    (killed,) = [m for m in lines if m.startswith("stubborn")]
    assert "did not stop within 0.5 s of SIGTERM; killed" in killed
    assert lines[killed] == logging.WARNING


def _wait_for_output(path: Path) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} stayed empty")


def test_child_status_names_a_signal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    child = Child(
        "plain", [sys.executable, "-c", "import time; time.sleep(30)"], {}, tmp_path / "l"
    )
    with caplog.at_level(logging.INFO, logger="runledger.up"):
        child.start()
        child.stop()  # no handler: SIGTERM ends it
    assert any("stopped by signal SIGTERM" in r.getMessage() for r in caplog.records)


def test_the_node_logs_a_failing_outcome_read_once_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broker problem retried twice a second must not write a traceback each time."""
    import asyncio

    from streams.bus import CommandBus

    class Failing:
        def __init__(self) -> None:
            self.calls = 0
            self.recovered = asyncio.Event()

        async def getmany(self, **_: object) -> dict[object, list[object]]:
            self.calls += 1
            if self.calls <= 3:
                raise RuntimeError("broker gone")
            self.recovered.set()
            await asyncio.sleep(0.01)
            return {}

    async def scenario() -> None:
        bus = CommandBus("127.0.0.1:1", Topics("logs."), default_codec(), node_id="node-a")
        consumer = Failing()
        bus._consumer = consumer
        task = asyncio.create_task(bus._listen())
        await asyncio.wait_for(consumer.recovered.wait(), 10)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.INFO, logger="streams.bus"):
        asyncio.run(scenario())
    records = [r for r in caplog.records if r.name == "streams.bus"]
    assert [r.exc_info is not None for r in records] == [True, False]
    assert records[0].getMessage() == "reading outcomes failed; retrying every 0.5 s"
    assert records[1].getMessage() == "reading outcomes again after 3 failed attempts"
