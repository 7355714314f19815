"""The metric families of the decider, the orchestrator and the runner, rendered and read
back with the strict parser (tests/unit/test_metrics_parser.py): every dead-letter
reason is listed from the start and counted where the decider dead-letters, FlowRuns
held and in flight, jobs started and finished by kind and outcome as the runner runs
them, and the exposition code the node and the services share."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

import api.metrics
import streams.decider as decider_module
from runledger import runner as runner_module
from runledger.runner import Runner, RunnerOptions
from runledger.settings import Settings
from runners.jobs_report import NodeOutcome
from runners.worker_metrics import JobTally
from schemas import DecodeError, UnknownSchemaError, default_codec
from streams import exposition
from streams.decider import Decider
from streams.decider_stats import DeciderStats, decider_families
from streams.domain import flowrun_state as fs
from streams.jobs import Dispatch
from streams.orchestration import Job
from streams.orchestrator_memory import Memory
from streams.orchestrator_stats import OrchestratorStats, orchestrator_families
from streams.serde import CommandEnvelope, UnusableBody
from streams.topics import Topics
from tests.unit.test_metrics_parser import Exposition, parse


def scraped(families: list[exposition.Family]) -> Exposition:
    return parse(exposition.render(families))


def test_the_node_and_the_services_share_one_exposition() -> None:
    # api/metrics.py re-exports streams/exposition.py: one rendering, no copy.
    assert api.metrics.render is exposition.render
    assert api.metrics.Family is exposition.Family
    assert api.metrics.CONTENT_TYPE == exposition.CONTENT_TYPE


def test_decider_families_list_every_reason_and_count_by_reason() -> None:
    stats = DeciderStats(commands=5, accepted=3, rejected=1, duplicates=1, events=4)
    got = scraped(decider_families(stats, 7))
    reasons = {
        dict(k)["reason"]: v
        for k, v in got.labelled("runledger_decider_dead_letters_total").items()
    }
    assert reasons == {
        "undecodable": 0,
        "unknown_fingerprint": 0,
        "unusable_body": 0,
        "decide_failed": 0,
    }
    assert got.value("runledger_decider_commands_total") == 5
    assert got.value("runledger_decider_accepted_total") == 3
    assert got.value("runledger_decider_rejected_total") == 1
    assert got.value("runledger_decider_duplicates_total") == 1
    assert got.value("runledger_decider_events_total") == 4
    assert got.value("runledger_decider_aggregates") == 7
    assert got.families["runledger_decider_aggregates"].kind == "gauge"
    assert "runledger_decider_last_batch_timestamp_seconds" not in got.families

    stats.dead_letter(DecodeError("not a record"))
    stats.dead_letter(DecodeError("again"))
    stats.dead_letter(UnknownSchemaError("no such fingerprint"))
    envelope = CommandEnvelope("c", "process", "p", "process.progress", 0, "a", "u", "c", "c", None)
    stats.dead_letter(UnusableBody(envelope, "progress", "out of range", ValueError("250")))
    stats.dead_letter(RuntimeError("a bug"))
    stats.batch_committed(1_700_000_000_250_000)
    got = scraped(decider_families(stats, 7))
    assert got.value("runledger_decider_dead_letters_total", reason="undecodable") == 2
    assert got.value("runledger_decider_dead_letters_total", reason="unknown_fingerprint") == 1
    assert got.value("runledger_decider_dead_letters_total", reason="unusable_body") == 1
    assert got.value("runledger_decider_dead_letters_total", reason="decide_failed") == 1
    assert stats.dead_lettered == 5
    assert got.value("runledger_decider_batches_total") == 1
    assert got.value("runledger_decider_last_batch_timestamp_seconds") == 1_700_000_000.25


def test_the_decider_counts_a_letter_by_reason_where_it_dead_letters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Exception] = []

    async def send_dead_letter(
        publisher: Any, topic: str, tp: Any, msg: Any, exc: Exception
    ) -> None:
        sent.append(exc)

    monkeypatch.setattr(decider_module, "send_dead_letter", send_dead_letter)
    decider = Decider("127.0.0.1:1", Topics("t."), default_codec())
    decider._publisher = object()  # type: ignore[assignment]  # only handed to the fake
    tp = TopicPartition("t.ledger.commands", 0)
    asyncio.run(decider._dead_letter(tp, object(), DecodeError("garbage")))
    assert len(sent) == 1
    assert decider.stats.dead_letters_by_reason == {"undecodable": 1}
    got = scraped(decider_families(decider.stats, len(decider.aggregates)))
    assert got.value("runledger_decider_dead_letters_total", reason="undecodable") == 1


def _run(run_id: str, **changes: Any) -> fs.FlowRunState:
    run = fs.FlowRunState(run_id, "acme", "u", "s", "f", "t", False, "[]", "[]", 0, ())
    return dataclasses.replace(run, **changes)


def test_orchestrator_families_count_runs_held_and_in_flight() -> None:
    memory = Memory()
    memory.states = {
        "flowrun:a": _run("a"),
        "flowrun:b": _run("b", status=fs.WORKING),
        "flowrun:c": _run("c", status=fs.PASSED),
        "flowrun:d": _run("d", status=fs.FAILED),
        "flowrun:e": _run("e", status=fs.WORKING, deleted=True),
        "site:s": object(),  # not a run
    }
    assert memory.run_counts() == (5, 2)
    stats = OrchestratorStats(events=9, undecodable=1, commands=4, jobs=3)
    got = scraped(orchestrator_families(stats, *memory.run_counts()))
    assert got.value("runledger_orchestrator_runs") == 5
    assert got.value("runledger_orchestrator_runs_in_flight") == 2
    assert got.value("runledger_orchestrator_jobs_total") == 3
    assert got.value("runledger_orchestrator_events_total") == 9
    assert got.value("runledger_orchestrator_commands_total") == 4
    assert got.value("runledger_orchestrator_undecodable_total") == 1
    assert got.value("runledger_orchestrator_batches_total") == 0
    assert "runledger_orchestrator_last_batch_timestamp_seconds" not in got.families
    stats.batch_committed(2_000_000)
    got = scraped(orchestrator_families(stats, 0, 0))
    assert got.value("runledger_orchestrator_batches_total") == 1
    assert got.value("runledger_orchestrator_last_batch_timestamp_seconds") == 2


def test_job_tally_counts_by_kind_and_outcome_with_durations() -> None:
    tally = JobTally(["scan", "wait"], buckets=(1.0, 10.0))
    got = scraped(tally.families(0, 4))
    # Every kind and outcome from the start, at 0.
    finished = got.labelled("runledger_runner_jobs_finished_total")
    assert len(finished) == 8 and set(finished.values()) == {0}
    assert got.value("runledger_runner_pages_max") == 4
    tally.start("wait")
    tally.start("wait")
    tally.start("scan")
    tally.finish("wait", "passed", 1.0)  # on a bound: in its bucket
    tally.finish("scan", "failed", 12.5)
    got = scraped(tally.families(2, 4))
    assert got.value("runledger_runner_jobs_started_total", kind="wait") == 2
    assert got.value("runledger_runner_jobs_finished_total", kind="wait", outcome="passed") == 1
    assert got.value("runledger_runner_jobs_finished_total", kind="scan", outcome="failed") == 1
    assert got.value("runledger_runner_jobs_running", kind="wait") == 1
    assert got.value("runledger_runner_jobs_running", kind="scan") == 0
    assert got.value("runledger_runner_pages_open") == 2
    duration = "runledger_runner_job_duration_seconds"
    assert got.value(f"{duration}_bucket", kind="wait", le="1.0") == 1
    assert got.value(f"{duration}_bucket", kind="scan", le="10.0") == 0
    assert got.value(f"{duration}_bucket", kind="scan", le="+Inf") == 1
    assert got.value(f"{duration}_sum", kind="scan") == 12.5
    # A kind the runner was not started with still renders (and parses).
    tally.start("email")
    assert scraped(tally.families(0, 4)).value("runledger_runner_jobs_running", kind="email") == 1


def _dispatch(job_id: str) -> Dispatch:
    return Dispatch(Job(job_id, "wait", "run-1", "acme", "s", "n1", 1, "{}", "{}"))


def test_the_runner_tallies_each_job_it_executes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    results: dict[str, Any] = {
        "j-pass": NodeOutcome(True, {}),
        "j-fail": NodeOutcome(False, {}, "no"),
        "j-error": RuntimeError("reports could not be published"),
        "j-cancel": asyncio.CancelledError(),
    }

    async def perform(ctx: Any, dispatch: Dispatch, publish: Any) -> NodeOutcome:
        result = results[dispatch.job.job_id]
        if isinstance(result, BaseException):
            raise result
        return result

    monkeypatch.setattr(runner_module, "perform", perform)

    async def scenario() -> Runner:
        # In the loop: the runner's Kafka producer is made (not connected) with it.
        runner = Runner(
            Settings(kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path),
            RunnerOptions(kinds=("wait",), max_pages=3),
        )
        for job_id, result in results.items():
            if isinstance(result, BaseException):
                with pytest.raises(type(result)):
                    await runner.execute(_dispatch(job_id))
            else:
                await runner.execute(_dispatch(job_id))
        await runner.publisher.stop()  # never started; closes what aiokafka made
        return runner

    runner = asyncio.run(scenario())
    got = scraped(runner.metric_families())
    assert got.value("runledger_runner_jobs_started_total", kind="wait") == 4
    for outcome in ("passed", "failed", "error", "cancelled"):
        assert got.value("runledger_runner_jobs_finished_total", kind="wait", outcome=outcome) == 1
    assert got.value("runledger_runner_jobs_running", kind="wait") == 0
    assert got.value("runledger_runner_job_duration_seconds_count", kind="wait") == 4
    assert got.value("runledger_runner_pages_open") == 0
    assert got.value("runledger_runner_pages_max") == 3
