"""The orchestrator's transaction loop (``streams/orchestrator.py``) against in-memory
fakes of the Kafka consumer and the transactional producer.

What the loop promises, and what is checked here:

- each batch of consumed events becomes **one** transaction holding the commands and
  jobs the batch caused and the consumed offsets (the end of the batch), committed
  together; nothing is sent outside a transaction;
- a failure mid-batch (a send or the offsets refused) aborts the transaction: none of
  its messages become visible and the offsets stay where they were; the orchestrator
  restarts, rebuilds its states from the events *before* the committed offsets (and
  only those), consumes the batch again and commits the same messages once — the
  committed output is exactly that of a run without the failure, no duplicate command
  or job.

The test plays the decider and the runners: it applies each committed command with the
pure FlowRun ``decide`` and appends the events to the fake log, and passes each node
whose job was committed. Pure logic, no broker (the real-broker end-to-end runs are in
``tests/integration/test_flow_e2e.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from aiokafka.structs import TopicPartition

from schemas import default_codec
from streams import orchestration, serde, supervision
from streams.domain import aggregates, site
from streams.domain import caserun as cr
from streams.domain import commands as c
from streams.domain import flowrun as f
from streams.domain.rejection import Rejected
from streams.jobs import decode_dispatch
from streams.orchestrator import Orchestrator
from streams.publisher import PublishError
from streams.topics import Topics

TOPICS = Topics("unit.")
CODEC = default_codec()
T0 = 1_767_261_600_000_000
EVENTS_PARTITIONS = 2


@dataclass(frozen=True)
class Msg:
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int = 0


@dataclass
class Txn:
    """One transaction of the fake producer, as it ended."""

    sends: list[tuple[str, bytes]] = field(default_factory=list)  # (topic, value)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    committed: bool = False


@dataclass
class Broker:
    """The events log, the group's committed offsets and every transaction. ``fail``
    is asked before each send and each ``send_offsets`` (what, value) and raises once
    for the first it answers True."""

    events: dict[int, list[Msg]] = field(
        default_factory=lambda: {p: [] for p in range(EVENTS_PARTITIONS)}
    )
    group_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    transactions: list[Txn] = field(default_factory=list)
    fail: Callable[[str, bytes], bool] | None = None
    failures: int = 0
    loose_sends: int = 0  # sends outside a transaction (must stay 0)

    def append(self, partition: int, key: bytes, value: bytes, kind: str) -> None:
        log = self.events[partition]
        log.append(Msg(len(log), key, value, (("type", kind.encode()),)))

    def should_fail(self, what: str, value: bytes) -> bool:
        if self.fail is not None and self.fail(what, value):
            self.fail = None
            self.failures += 1
            return True
        return False

    @property
    def committed(self) -> list[tuple[str, bytes]]:
        return [send for txn in self.transactions if txn.committed for send in txn.sends]


class FakeConsumer:
    """What the orchestrator uses of AIOKafkaConsumer, reading ``Broker.events``."""

    def __init__(self, broker: Broker, **options: Any) -> None:
        assert options.get("enable_auto_commit") is False
        assert options.get("isolation_level") == "read_committed"
        self.broker = broker
        self.positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def partitions_for_topic(self, topic: str) -> set[int]:
        assert topic == TOPICS.events
        return set(self.broker.events)

    def assign(self, tps: list[TopicPartition]) -> None:
        self.positions = {tp: 0 for tp in tps}

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.broker.group_offsets.get(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.positions[tp] = 0

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Msg]]:
        await asyncio.sleep(0.001)
        out: dict[TopicPartition, list[Msg]] = {}
        budget = max_records or 1_000_000
        for tp in tps or tuple(self.positions):
            messages = self.broker.events[tp.partition][self.positions[tp] :][:budget]
            if messages:
                out[tp] = messages
                self.positions[tp] += len(messages)
                budget -= len(messages)
        return out


class FakePublisher:
    """What the orchestrator uses of ``Publisher``, recording transactions in ``Broker``."""

    def __init__(self, broker: Broker, bootstrap: str, **options: Any) -> None:
        assert options.get("transactional_id")
        self.broker = broker
        self._txn: Txn | None = None

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakePublisher]:
        assert self._txn is None, "transactions do not nest"
        txn = self._txn = Txn()
        try:
            yield self
            txn.committed = True
            self.broker.group_offsets.update(txn.offsets)
        finally:
            self._txn = None
            self.broker.transactions.append(txn)

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Any = ()
    ) -> asyncio.Future[Any]:
        if self._txn is None:
            self.broker.loose_sends += 1
        if self.broker.should_fail(topic, value):
            raise PublishError(f"cannot send to {topic}: injected")
        assert self._txn is not None
        self._txn.sends.append((topic, value))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send_offsets(self, offsets: dict[TopicPartition, int], group_id: str) -> None:
        assert group_id == f"{TOPICS.prefix}runledger-orchestrator"
        assert self._txn is not None
        if self.broker.should_fail("offsets", b""):
            raise PublishError("offsets refused: injected")
        self._txn.offsets.update(offsets)


class Ledger:
    """The decider and the runners, played by the test: committed commands are decided
    with the pure FlowRun ``decide`` and their events appended; each committed job's
    node passes."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.states: dict[str, f.FlowRunState] = {}
        self.partition: dict[str, int] = {}
        self.seen: set[str] = set()
        self.read = 0
        self.rejected: list[str] = []
        self.clock = T0

    def apply(self, cmd: c.Command) -> None:
        if cmd.command_id in self.seen:
            return  # the decider's dedupe by command id
        self.seen.add(cmd.command_id)
        try:
            events = f.decide(self.states.get(cmd.aggregate_id), cmd)
        except Rejected as exc:
            self.rejected.append(f"{cmd.body}: {exc}")
            return
        key = aggregates.stream_key(f.AGGREGATE, cmd.aggregate_id).encode()
        for event in events:
            self.states[cmd.aggregate_id] = f.evolve(self.states.get(cmd.aggregate_id), event)
            value = serde.encode_event(CODEC, event)
            self.broker.append(self.partition[cmd.aggregate_id], key, value, event.type)

    def command(self, run_id: str, command_id: str, body: c.Body) -> c.Command:
        self.clock += 1_000
        return c.Command(
            command_id, f.AGGREGATE, run_id, self.clock, "acme", "test", "corr", "cause", body
        )

    def create(self, run_id: str, partition: int) -> None:
        """A run of a → (b, c) → d, all ``wait`` nodes."""
        self.partition[run_id] = partition
        nodes = [
            {"id": n, "data": {"task_type": "wait", "configs": {}}} for n in ("a", "b", "c", "d")
        ]
        edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
        body = f.parse_flowrun_body(
            "flowrun.create",
            {
                "site_id": "site-1",
                "flow_id": "flow-1",
                "nodes": nodes,
                "edges": [{"source": s, "target": t} for s, t in edges],
            },
        )
        self.apply(self.command(run_id, f"create/{run_id}", body))

    def catch_up(self) -> None:
        """Apply what the orchestrator committed since the last call."""
        committed = self.broker.committed
        for topic, value in committed[self.read :]:
            if topic == TOPICS.commands:
                self.apply(serde.decode_command(CODEC, value))
            else:
                assert topic == TOPICS.jobs
                job = decode_dispatch(value).job
                body = f.NodePass(job.node_id)
                self.apply(self.command(job.run_id, f"pass/{job.job_id}", body))
        self.read = len(committed)

    def done(self) -> bool:
        return bool(self.states) and all(s.status == "passed" for s in self.states.values())


def orchestrator(broker: Broker) -> Orchestrator:
    return Orchestrator(
        "fake:9092",
        TOPICS,
        CODEC,
        clock=lambda: T0,
        consumer_factory=cast(Any, lambda **options: FakeConsumer(broker, **options)),
        publisher_factory=cast(
            Any, lambda bootstrap, **options: FakePublisher(broker, bootstrap, **options)
        ),
    )


def run_flows(fail: Callable[[str, bytes], bool] | None = None) -> tuple[Broker, Orchestrator]:
    """Two FlowRuns on the two partitions, orchestrated to their end."""
    broker = Broker(fail=fail)
    ledger = Ledger(broker)
    orch = orchestrator(broker)

    async def main() -> None:
        task = asyncio.create_task(orch.run())
        ledger.create("run-1", 0)
        ledger.create("run-2", 1)
        deadline = time.monotonic() + 20
        while not ledger.done():
            assert time.monotonic() < deadline, (ledger.states, ledger.rejected)
            assert not task.done(), task
            await asyncio.sleep(0.002)
            ledger.catch_up()
        orch.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert ledger.rejected == [], "every command of the orchestrator fitted the state"
    return broker, orch


def ids(broker: Broker) -> list[str]:
    """The committed output as command ids and job ids, in order."""
    out = []
    for topic, value in broker.committed:
        if topic == TOPICS.commands:
            out.append("cmd:" + serde.decode_command(CODEC, value).command_id)
        else:
            out.append("job:" + decode_dispatch(value).job.job_id)
    return out


@pytest.fixture(autouse=True)
def no_restart_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervision, "RESTART_DELAY_S", 0.0)


def test_each_batch_is_one_transaction_of_its_output_and_offsets() -> None:
    broker, orch = run_flows()
    assert broker.loose_sends == 0
    assert all(txn.committed for txn in broker.transactions)
    # Every transaction moves the offsets to the end of what it consumed, never back.
    position = {tp: 0 for tp in broker.transactions[0].offsets}
    consumed = 0
    for txn in broker.transactions:
        assert txn.offsets, "a batch commits its offsets"
        for tp, offset in txn.offsets.items():
            assert offset > position.get(tp, 0)
            consumed += offset - position.get(tp, 0)
            position[tp] = offset
    ends = {p: len(log) for p, log in broker.events.items()}
    assert {tp.partition: off for tp, off in position.items()} == ends
    assert consumed == sum(ends.values()) == orch.stats.events
    assert orch.stats.batches == len(broker.transactions)
    # Each node started once and each job sent once: 4 nodes x 2 runs.
    out = ids(broker)
    assert len(out) == len(set(out))
    assert sum(1 for i in out if i.startswith("job:")) == 8
    assert orch.stats.rebuilt_events == 0


@pytest.mark.parametrize(
    "where",
    [
        "second command of a batch",  # start b sent, start c refused: b must not stay
        "job of node d",
        "offsets",  # every message of the batch sent, then the offsets refused
    ],
)
def test_a_failure_mid_batch_aborts_and_the_retry_commits_the_same_output_once(
    where: str,
) -> None:
    clean, _ = run_flows()

    def second_start(what: str, value: bytes) -> bool:
        if what != TOPICS.commands:
            return False
        body = serde.decode_command(CODEC, value).body
        return isinstance(body, f.NodeStart) and body.node_id == "c"

    def job_d(what: str, value: bytes) -> bool:
        return what == TOPICS.jobs and decode_dispatch(value).job.node_id == "d"

    state = {"offsets": 0}

    def third_offsets(what: str, value: bytes) -> bool:
        state["offsets"] += what == "offsets"
        return what == "offsets" and state["offsets"] == 3

    fail = {
        "second command of a batch": second_start,
        "job of node d": job_d,
        "offsets": third_offsets,
    }[where]
    broker, orch = run_flows(fail)

    assert broker.failures == 1
    aborted = [txn for txn in broker.transactions if not txn.committed]
    assert len(aborted) == 1
    (txn,) = aborted
    if where != "job of node d":
        assert txn.sends, "the failure came after a message of the batch was sent"
    # The aborted messages became visible in no form, and the retry committed them:
    # the committed output is exactly that of the run without a failure.
    assert ids(broker) == ids(clean)
    assert len(set(ids(broker))) == len(ids(broker))
    committed_values = [value for _, value in broker.committed]
    for _, value in txn.sends:
        assert committed_values.count(value) == 1
    # After the failure it rebuilt from the committed positions only, then resumed.
    index = broker.transactions.index(txn)
    before = {}
    for earlier in broker.transactions[:index]:
        before.update(earlier.offsets)
    assert orch.stats.rebuilt_events == sum(before.values())
    assert broker.loose_sends == 0


# -- standalone CaseRuns --------------------------------------------------------------

STEPS = '[{"action":{"type":"click","element":{"selector":"#a"}},"assertion":null}]'


def append_decided(broker: Broker, partition: int, decide: Any, state: Any, cmd: c.Command) -> Any:
    """Decide ``cmd`` on ``state`` with the pure ``decide``, append its events; the state."""
    key = aggregates.stream_key(cmd.aggregate_type, cmd.aggregate_id).encode()
    for event in decide(state, cmd):
        state = aggregates.evolve(state, event)
        broker.append(partition, key, serde.encode_event(CODEC, event), event.type)
    return state


def ledger_cmd(aggregate: str, aggregate_id: str, body: c.Body) -> c.Command:
    return c.Command(
        f"{aggregate}/{aggregate_id}/{body.NAME}", aggregate, aggregate_id, T0, "acme", "api",
        "corr", "cause", body,
    )  # fmt: skip


def caseruns_orchestrated(fail: Callable[[str, bytes], bool] | None = None) -> Broker:
    """A Site, then in one batch: a standalone CaseRun, one of a FlowRun node, and a
    standalone one cancelled right after its creation."""
    broker = Broker(fail=fail)
    append_decided(
        broker, 0, site.decide, None, ledger_cmd("site", "site-1", site.CreateSite("https://x.io/"))
    )
    for caserun_id, partition, flowrun_id in (("solo", 0, None), ("node", 1, "run-1")):
        body = cr.CreateCaseRun("site-1", "case-1", STEPS, "t", flowrun_id, flowrun_id and "n1")
        append_decided(broker, partition, cr.decide, None, ledger_cmd("caserun", caserun_id, body))
    body = cr.CreateCaseRun("site-1", "case-1", STEPS, "t")
    gone = append_decided(broker, 1, cr.decide, None, ledger_cmd("caserun", "gone", body))
    append_decided(broker, 1, cr.decide, gone, ledger_cmd("caserun", "gone", cr.CancelCaseRun()))
    orch = orchestrator(broker)

    async def main() -> None:
        task = asyncio.create_task(orch.run())
        ends = {p: len(log) for p, log in broker.events.items()}
        deadline = time.monotonic() + 10
        while {tp.partition: o for tp, o in broker.group_offsets.items()} != ends:
            assert time.monotonic() < deadline, broker.transactions
            await asyncio.sleep(0.002)
        orch.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    return broker


def test_only_a_standalone_caserun_gets_a_job_and_it_carries_the_run() -> None:
    broker = caseruns_orchestrated()
    jobs = [decode_dispatch(value) for topic, value in broker.committed if topic == TOPICS.jobs]
    assert [d.caserun_id for d in jobs] == ["solo"], "no job for the node's or the cancelled run"
    (dispatch,) = jobs
    assert dispatch.job.job_id == orchestration.caserun_job_id("solo", 1)
    assert (dispatch.job.kind, dispatch.job.run_id) == ("case", "solo")
    assert (dispatch.site_url, dispatch.case_id) == ("https://x.io/", "case-1")
    assert dispatch.case_steps_json == STEPS
    assert [t for t, _ in broker.committed] == [TOPICS.jobs], "no command for a CaseRun"


def test_a_failed_caserun_job_send_is_retried_and_committed_once() -> None:
    broker = caseruns_orchestrated(fail=lambda what, value: what == TOPICS.jobs)
    assert broker.failures == 1
    aborted = [txn for txn in broker.transactions if not txn.committed]
    assert len(aborted) == 1 and aborted[0].sends == []
    jobs = [decode_dispatch(value) for topic, value in broker.committed if topic == TOPICS.jobs]
    assert [d.job.job_id for d in jobs] == [orchestration.caserun_job_id("solo", 1)]
