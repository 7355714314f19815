"""What a FlowRun records and what it is asked: its event payloads and command bodies.

Every payload field is an Avro primitive; the graph travels as canonical JSON text
(``nodes_json``, ``edges_json``). The decisions about them live in
:mod:`streams.domain.flowrun`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from streams.domain.commands import Body
from streams.domain.events import Payload

# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowRunCreated(Payload):
    TYPE: ClassVar[str] = "flowrun.created"
    site_id: str
    flow_id: str
    nodes_json: str
    edges_json: str
    end_on_fail: bool = True
    title: str = ""
    site_url: str = ""  # the Site's URL as the API read it ("" in version 1 events)
    # The case nodes' Cases as the API read them: canonical JSON, Case id -> steps_json
    # ("{}" before version 3)
    cases_json: str = "{}"


@dataclass(frozen=True, slots=True)
class NodeStarted(Payload):
    TYPE: ClassVar[str] = "flowrun.node_started"
    node_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class NodePassed(Payload):
    TYPE: ClassVar[str] = "flowrun.node_passed"
    node_id: str
    result_json: str | None = None
    object_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeFailed(Payload):
    TYPE: ClassVar[str] = "flowrun.node_failed"
    node_id: str
    exception: str
    result_json: str | None = None
    object_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeSkipped(Payload):
    TYPE: ClassVar[str] = "flowrun.node_skipped"
    node_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class FlowRunLogged(Payload):
    TYPE: ClassVar[str] = "flowrun.log"
    message: str
    step: str | None = None


@dataclass(frozen=True, slots=True)
class FlowRunCompleted(Payload):
    TYPE: ClassVar[str] = "flowrun.completed"
    status: str  # passed | failed


@dataclass(frozen=True, slots=True)
class FlowRunCancelled(Payload):
    TYPE: ClassVar[str] = "flowrun.cancelled"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FlowRunRetried(Payload):
    TYPE: ClassVar[str] = "flowrun.retried"
    attempt: int


@dataclass(frozen=True, slots=True)
class FlowRunDeleted(Payload):
    TYPE: ClassVar[str] = "flowrun.deleted"


PAYLOADS: tuple[type[Payload], ...] = (
    FlowRunCreated,
    NodeStarted,
    NodePassed,
    NodeFailed,
    NodeSkipped,
    FlowRunLogged,
    FlowRunCompleted,
    FlowRunCancelled,
    FlowRunRetried,
    FlowRunDeleted,
)


# -- command bodies -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.create"
    site_id: str
    flow_id: str
    nodes_json: str
    edges_json: str
    end_on_fail: bool = True
    title: str = ""
    site_url: str = ""
    cases_json: str = "{}"


@dataclass(frozen=True, slots=True)
class NodeStart(Body):
    NAME: ClassVar[str] = "flowrun.node_start"
    node_id: str


@dataclass(frozen=True, slots=True)
class NodePass(Body):
    NAME: ClassVar[str] = "flowrun.node_pass"
    node_id: str
    result_json: str | None = None
    object_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeFail(Body):
    NAME: ClassVar[str] = "flowrun.node_fail"
    node_id: str
    exception: str
    result_json: str | None = None
    object_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeSkip(Body):
    NAME: ClassVar[str] = "flowrun.node_skip"
    node_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class LogFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.log"
    message: str
    step: str | None = None


@dataclass(frozen=True, slots=True)
class CompleteFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.complete"
    status: str


@dataclass(frozen=True, slots=True)
class CancelFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.cancel"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RetryFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.retry"


@dataclass(frozen=True, slots=True)
class DeleteFlowRun(Body):
    NAME: ClassVar[str] = "flowrun.delete"


BODIES: tuple[type[Body], ...] = (
    CreateFlowRun,
    NodeStart,
    NodePass,
    NodeFail,
    NodeSkip,
    LogFlowRun,
    CompleteFlowRun,
    CancelFlowRun,
    RetryFlowRun,
    DeleteFlowRun,
)
