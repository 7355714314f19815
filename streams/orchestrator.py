"""The orchestrator: a stream processor on ``ledger.events`` that moves FlowRuns along.

Pipeline, per batch of events, all inside one Kafka transaction:

    decode → fold (flowrun, site and case states) → for each run a flowrun event
    changed: next_steps (pure) → publish commands (deterministic ids) → publish the
    jobs of the nodes started in the batch → send the consumed event offsets → commit

so the commands and jobs an event causes and the fact that it was consumed become
visible together or not at all. On start (and after a failure) it fences older
instances and folds ``ledger.events`` up to its committed positions, then resumes from
there: events before those positions had their commands and jobs published in the
transaction that committed them. Redelivery is harmless: command ids are derived from
the run, the node and the attempt, so the decider answers a repeat as a duplicate, and
a repeated job carries the same ``job_id`` (runners report under ids derived from it).
The pipeline is assembled here; its pieces are apart: the memory it folds
(:mod:`streams.orchestrator_memory`), a batch sorted into what to send
(:mod:`streams.orchestrator_plan`), the sending (:mod:`streams.orchestrator_outbox`),
the read of the rebuild (:mod:`streams.orchestrator_rebuild`), and the counters and log
lines (:mod:`streams.orchestrator_stats`).

Jobs are published on ``flowrun.node_started`` (after the decider accepted the start),
never on the decision to start: a start the decider refuses sends no runner off.

It also dispatches the work of ``case.generate`` Processes (``POST /case/generate``): on
their ``process.created`` (and ``process.retried``, ``process.restarted``) a
``generate`` job, keyed by the Process id, with a job id derived from the Process and
its attempt
(``streams.orchestration.generate_job``). Only those Processes are remembered (their
account, Site and info); other Processes are not decoded past their type header.

And it dispatches standalone CaseRuns (``POST /caserun``): on a ``caserun.created``
without a ``flowrun_id``, a ``case`` job keyed by the CaseRun id, with the steps copied
into the run and a job id derived from the CaseRun (``streams.orchestration.caserun_job``).
A CaseRun a FlowRun's ``case`` node created gets no job (that node's job runs it), and
one cancelled or deleted later in the same batch gets none either. CaseRuns are not
folded: nothing past the created event is decoded, the cancel is read from the headers.

A FlowRun cancelled (or deleted while active) with a ``case`` node working also has
that node's CaseRun cancelled: the runner stops the node's job, which reports nothing
more, so without it the CaseRun would stay ``working``. The orchestrator remembers which
CaseRun each case node's job created (from ``caserun.created`` with a ``flowrun_id``)
and sends ``caserun.cancel`` for it on the ``flowrun.cancelled``, or on the CaseRun's
creation when the job created it after the cancel; one command id per CaseRun
(``streams.orchestration.caserun_cancel_command_id``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas import Codec, DecodeError
from streams import serde
from streams.consumer_stop import stop_consumer
from streams.domain.events import Event
from streams.orchestration import Job, next_steps
from streams.orchestrator_memory import Memory
from streams.orchestrator_outbox import Outbox
from streams.orchestrator_plan import CASERUN_STOPS, DECODED, Plan, event_type
from streams.orchestrator_rebuild import read_upto
from streams.orchestrator_stats import OrchestratorStats as OrchestratorStats  # kept here
from streams.orchestrator_stats import log_dispatched, log_ready, log_stopped
from streams.publisher import Publisher
from streams.supervision import supervise
from streams.topics import Topics, open_group_input

log = logging.getLogger(__name__)


def now_micros() -> int:
    return time.time_ns() // 1000


class Orchestrator:
    """Consumes ``ledger.events``; publishes FlowRun commands and jobs for runners."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        codec: Codec,
        *,
        clock: Callable[[], int] = now_micros,
        max_batch: int = 2000,
        consumer_factory: Callable[..., AIOKafkaConsumer] = AIOKafkaConsumer,
        publisher_factory: Callable[..., Publisher] = Publisher,
    ) -> None:
        """``consumer_factory`` and ``publisher_factory`` make the Kafka clients (called
        with aiokafka's and ``Publisher``'s keyword arguments); a unit test passes
        in-memory fakes of both."""
        self.bootstrap = bootstrap
        self.topics = topics
        self.codec = codec
        self.clock = clock
        self.max_batch = max_batch
        self._consumer_factory = consumer_factory
        self._publisher_factory = publisher_factory
        self.group_id = f"{topics.prefix}runledger-orchestrator"
        self.memory = Memory()
        self.stats = OrchestratorStats()
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._publisher: Publisher | None = None
        self._consumer: AIOKafkaConsumer | None = None
        # The next event offset per partition, as last committed: for the log lines.
        self.committed: dict[int, int] = {}
        self._dispatched: list[Job] = []  # jobs of the batch in hand, logged once committed

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Orchestrate until :meth:`stop`; after a failure, fence, rebuild, go on."""
        await supervise("orchestrator", self._stopping, self._start, self._loop, self._close, log)
        log_stopped(self.stats, self.topics, self.committed)

    def stop(self) -> None:
        self._stopping.set()

    async def _start(self) -> None:
        self.ready.clear()
        self._publisher = self._publisher_factory(
            self.bootstrap,
            transactional_id=f"{self.topics.prefix}runledger-orchestrator",
            client_id="runledger-orchestrator",
        )
        await self._publisher.start()
        consumer, tps = await open_group_input(
            self.bootstrap,
            self.topics.events,
            group_id=self.group_id,
            client_id="runledger-orchestrator",
            factory=self._consumer_factory,
        )
        self._consumer = consumer
        committed = {tp: (await consumer.committed(tp)) or 0 for tp in tps}
        await self._rebuild(committed)
        for tp in tps:
            consumer.seek(tp, committed[tp])
        self.committed = {tp.partition: offset for tp, offset in committed.items()}
        self.ready.set()
        log_ready(
            self.bootstrap,
            len(self.memory.states),
            self.stats,
            self.topics,
            self.committed,
            self.group_id,
        )

    async def _close(self) -> None:
        if self._consumer is not None:
            await stop_consumer(self._consumer)
            self._consumer = None
        if self._publisher is not None:
            await self._publisher.stop()
            self._publisher = None

    async def _rebuild(self, upto: dict[TopicPartition, int]) -> None:
        """Fold the events before the committed positions ``upto`` into a new memory."""
        self.memory = Memory()
        self.stats.rebuilt_events = 0
        await read_upto(self._consumer_factory, self.bootstrap, upto, self._remember)

    def _remember(self, msg: Any) -> None:
        """Fold the event of ``msg``, read by the rebuild, when it is one of ours."""
        event = self._decode(msg, event_type(msg.headers))
        if event is not None:
            self.memory.fold(event)
            self.stats.rebuilt_events += 1

    # -- folding -----------------------------------------------------------------------

    def _decode(self, msg: Any, kind: str | None) -> Event | None:
        """The event of ``msg`` (whose type header is ``kind``) when it is one of ours."""
        if kind is not None and not kind.startswith(DECODED):
            return None  # not ours: no need to decode it
        event = self._read(msg)
        return event if event is not None and event.type.startswith(DECODED) else None

    def _read(self, msg: Any) -> Event | None:
        """The event of ``msg``; None (counted and logged) when it does not decode."""
        try:
            return serde.decode_event(self.codec, msg.value)
        except DecodeError as exc:
            self.stats.undecodable += 1
            log.warning(
                "event at partition %d offset %d cannot be decoded, skipped: %s",
                msg.partition,
                msg.offset,
                exc,
            )
            return None

    # -- the loop ----------------------------------------------------------------------

    async def _loop(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            batch = await self._consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            if batch:
                await self._process(batch)

    async def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        publisher = self._publisher
        assert publisher is not None
        plan = Plan()
        self._dispatched.clear()
        for tp, messages in batch.items():
            for msg in messages:
                plan.offsets[tp] = msg.offset + 1
                kind = event_type(msg.headers)
                if kind in CASERUN_STOPS:
                    caserun_id = _aggregate_id(msg.key)
                    plan.stopped(caserun_id)  # a standalone one: stopped before its job
                    if caserun_id in self.memory.caserun_nodes:
                        stop = self._read(msg)  # rare: only a node's CaseRun
                        if stop is not None:
                            plan.node_caserun_stopped(stop, self.memory)
                    continue
                event = self._decode(msg, kind)
                if event is None:
                    continue
                self.stats.events += 1
                self.memory.fold(event)
                plan.add(event, self.memory)
        out = Outbox(
            publisher,
            self.topics,
            self.codec,
            self.clock,
            self.memory,
            self.stats,
            self._dispatched,
        )
        async with publisher.transaction():
            for run_id, node_id, attempt in plan.started:
                await out.publish_job(run_id, node_id, attempt)
            for process_id, attempt in plan.generate:
                await out.publish_generate(process_id, attempt)
            for dispatch in plan.caseruns.values():
                await out.send_job(dispatch)
            for run_id, cause in plan.changed.items():
                run = self.memory.run_state(run_id)
                if run is None:
                    continue
                for action in next_steps(run):
                    await out.publish_command(run, action, cause)
            for caserun_id, cause in plan.caseruns_to_stop(self.memory).items():
                await out.cancel_caserun(caserun_id, cause)
            for run, node_id, cause in plan.nodes_to_fail(self.memory):
                await out.fail_node(run, node_id, cause)
            await publisher.send_offsets(plan.offsets, self.group_id)
        self.committed.update({tp.partition: offset for tp, offset in plan.offsets.items()})
        # After the commit: a job in an aborted transaction was never sent.
        log_dispatched(self._dispatched)
        self._dispatched.clear()
        self.stats.batch_committed(self.clock())


def _aggregate_id(key: bytes | None) -> str:
    """The aggregate id of an event's key (``<type>:<id>``)."""
    return (key or b"").decode(errors="replace").partition(":")[2]
