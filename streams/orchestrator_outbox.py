"""What the orchestrator sends inside one batch's transaction: FlowRun and CaseRun
commands to ``ledger.commands``, and jobs for the runners to ``ledger.jobs``.

:class:`Outbox` is the writer of the orchestrator's pipeline: the decisions come from
:mod:`streams.orchestration` and :mod:`streams.orchestrator_plan`, the jobs' contents
from :mod:`streams.orchestrator_memory`; here they become records, keyed by their
aggregate (commands) or their run (jobs), and are counted. One is made per batch, around
the publisher whose transaction the batch is in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas import Codec
from streams import serde
from streams.domain import aggregates
from streams.domain import flowrun as f
from streams.domain.commands import Command
from streams.domain.events import Event
from streams.jobs import KIND_HEADER, Dispatch, encode_dispatch
from streams.orchestration import ACTOR, Job, body_for, cancel_caserun, command_id_for, fail_node
from streams.orchestrator_memory import Memory
from streams.orchestrator_stats import OrchestratorStats
from streams.publisher import Publisher
from streams.topics import Topics


class Outbox:
    """Sends a batch's commands and jobs through ``publisher`` (already in the batch's
    transaction), counting them in ``stats``; every job sent is appended to
    ``dispatched``, to be logged once the transaction commits. Raises PublishError when
    the producer refuses a record."""

    def __init__(
        self,
        publisher: Publisher,
        topics: Topics,
        codec: Codec,
        clock: Callable[[], int],
        memory: Memory,
        stats: OrchestratorStats,
        dispatched: list[Job],
    ) -> None:
        self.publisher = publisher
        self.topics = topics
        self.codec = codec
        self.clock = clock
        self.memory = memory
        self.stats = stats
        self.dispatched = dispatched

    # -- commands ----------------------------------------------------------------------

    async def publish_command(self, run: f.FlowRunState, action: Any, cause: Event) -> None:
        cmd = Command(
            command_id=command_id_for(run, action),
            aggregate_type=f.AGGREGATE,
            aggregate_id=run.id,
            issued_at=self.clock(),
            account=run.account,
            actor=ACTOR,
            correlation_id=cause.correlation_id,
            causation_id=cause.event_id,
            body=body_for(action),
        )
        await self._send(cmd)

    async def cancel_caserun(self, caserun_id: str, cause: Event) -> None:
        await self._send(cancel_caserun(caserun_id, cause, self.clock()))

    async def fail_node(self, run: f.FlowRunState, node_id: str, cause: Event) -> None:
        await self._send(fail_node(run, node_id, cause, self.clock()))

    async def _send(self, cmd: Command) -> None:
        key = aggregates.stream_key(cmd.aggregate_type, cmd.aggregate_id).encode()
        await self.publisher.send(self.topics.commands, key, serde.encode_command(self.codec, cmd))
        self.stats.commands += 1

    # -- jobs --------------------------------------------------------------------------

    async def publish_job(self, run_id: str, node_id: str, attempt: int) -> None:
        run = self.memory.run_state(run_id)
        node = run.node(node_id) if run is not None else None
        if run is None or node is None or node.status != f.WORKING or node.attempt != attempt:
            return  # cancelled (or otherwise moved on) later in the same batch
        dispatch = self.memory.dispatch_for(run, node_id, attempt)
        headers = [(KIND_HEADER, dispatch.job.kind.encode())]
        await self.publisher.send(
            self.topics.jobs, run_id.encode(), encode_dispatch(dispatch), headers
        )
        self.stats.jobs += 1
        self.dispatched.append(dispatch.job)

    async def publish_generate(self, process_id: str, attempt: int) -> None:
        dispatch = self.memory.generate_dispatch(process_id, attempt)
        if dispatch is not None:
            await self.send_job(dispatch)

    async def send_job(self, dispatch: Dispatch) -> None:
        """Send a job keyed by its run id (a Process, a CaseRun), inside the batch's
        transaction."""
        headers = [(KIND_HEADER, dispatch.job.kind.encode())]
        await self.publisher.send(
            self.topics.jobs, dispatch.job.run_id.encode(), encode_dispatch(dispatch), headers
        )
        self.stats.jobs += 1
        self.dispatched.append(dispatch.job)
