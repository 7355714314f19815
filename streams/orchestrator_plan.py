"""What one consumed batch of ``ledger.events`` makes the orchestrator publish.

:class:`Plan` sorts the batch's events, already folded into the orchestrator's
:class:`~streams.orchestrator_memory.Memory`, into what to send in the batch's one
transaction: jobs for started nodes, ``case.generate`` Processes and standalone
CaseRuns, next steps of the runs that changed, and cancels of CaseRuns whose FlowRun
was cancelled. Pure: the orchestrator does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import TopicPartition

from streams.domain import flowrun as f
from streams.domain.caserun_messages import CaseRunCreated
from streams.domain.events import Event, ProcessRestarted, ProcessRetried
from streams.jobs import Dispatch
from streams.orchestrator_memory import PROCESS_EVENTS, Memory

# Only these aggregates matter here: runs, and the Sites and Cases their jobs point at.
FOLDED = ("flowrun.", "site.", "case.")
# A standalone CaseRun's created event dispatches its job; these events stop one whose
# job is not yet published (read from the type header, never decoded).
CASERUN_STOPS = frozenset({"caserun.cancelled", "caserun.deleted"})
DECODED = (*FOLDED, *PROCESS_EVENTS, CaseRunCreated.TYPE)


def event_type(headers: Any) -> str | None:
    """The ``type`` header of a record of ``ledger.events``; None when it has none."""
    for key, value in headers or ():
        if key == "type" and isinstance(value, bytes):
            return value.decode(errors="replace")
    return None


@dataclass
class Plan:
    """A batch, sorted: ``offsets`` to commit, and what to publish before them."""

    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    changed: dict[str, Event] = field(default_factory=dict)  # run id -> its last change
    started: list[tuple[str, str, int]] = field(default_factory=list)  # run, node, attempt
    generate: list[tuple[str, int]] = field(default_factory=list)  # process id, attempt
    caseruns: dict[str, Dispatch] = field(default_factory=dict)  # standalone, created here
    cancelled: dict[str, Event] = field(default_factory=dict)  # run id -> its cancel
    stop_caseruns: dict[str, Event] = field(default_factory=dict)  # CaseRun -> the cause
    # (run id, node id) -> the cancel or delete of the CaseRun that node's job created
    stopped_nodes: dict[tuple[str, str], Event] = field(default_factory=dict)

    def stopped(self, caserun_id: str) -> None:
        """A CaseRun cancelled or deleted in this batch: its job is not published."""
        self.caseruns.pop(caserun_id, None)

    def node_caserun_stopped(self, event: Event, memory: Memory) -> None:
        """``event`` cancelled or deleted a CaseRun: when a FlowRun node's job created
        it, that node fails (unless it has ended meanwhile; see ``nodes_to_fail``)."""
        node = memory.caserun_nodes.get(event.aggregate_id)
        if node is not None:
            self.stopped_nodes[node] = event

    def nodes_to_fail(self, memory: Memory) -> list[tuple[f.FlowRunState, str, Event]]:
        """(run, node id, cause) of every node whose CaseRun was stopped while the node
        still works: its job stops and reports nothing, so the run would wait for ever."""
        found = []
        for (run_id, node_id), cause in self.stopped_nodes.items():
            run = memory.run_state(run_id)
            node = run.node(node_id) if run is not None else None
            if run is not None and node is not None and node.status == f.WORKING:
                found.append((run, node_id, cause))
        return found

    def add(self, event: Event, memory: Memory) -> None:
        """Sort ``event``, which ``memory`` has just folded."""
        if event.type == CaseRunCreated.TYPE:
            dispatch = memory.caserun_dispatch(event)
            if dispatch is not None:
                self.caseruns[event.aggregate_id] = dispatch
            if memory.stopped_caserun(event):
                self.stop_caseruns[event.aggregate_id] = event
            return
        if event.type in PROCESS_EVENTS:
            data = event.data
            attempt = data.attempt if isinstance(data, ProcessRetried | ProcessRestarted) else 1
            if event.aggregate_id in memory.generating:
                self.generate.append((event.aggregate_id, attempt))
            return
        if event.aggregate_type != f.AGGREGATE:
            return
        if isinstance(event.data, f.NodeStarted):
            self.started.append((event.aggregate_id, event.data.node_id, event.data.attempt))
        if isinstance(event.data, f.FlowRunCancelled):
            self.cancelled[event.aggregate_id] = event
        if not isinstance(event.data, f.FlowRunLogged):  # a log line decides nothing
            self.changed[event.aggregate_id] = event

    def caseruns_to_stop(self, memory: Memory) -> dict[str, Event]:
        """Every CaseRun to cancel, with its cause: those created after their FlowRun's
        cancel, and those of the case nodes a cancel of this batch stopped."""
        stop = dict(self.stop_caseruns)
        for run_id, cause in self.cancelled.items():
            run = memory.run_state(run_id)
            for caserun_id in memory.caseruns_to_cancel(run) if run else ():
                stop.setdefault(caserun_id, cause)
        return stop
