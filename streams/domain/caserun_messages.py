"""What a CaseRun records and what it is asked: its event payloads and command bodies.

The decisions about them live in :mod:`streams.domain.caserun`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from streams.domain.commands import Body
from streams.domain.events import Payload

# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseRunCreated(Payload):
    TYPE: ClassVar[str] = "caserun.created"
    site_id: str
    case_id: str
    steps_json: str
    title: str = ""
    flowrun_id: str | None = None
    node_id: str | None = None
    site_url: str = ""  # the Site's URL as the API read it ("" in version 1 events)


@dataclass(frozen=True, slots=True)
class CaseStepStarted(Payload):
    TYPE: ClassVar[str] = "caserun.step_started"
    index: int
    part: str


@dataclass(frozen=True, slots=True)
class CaseStepPassed(Payload):
    TYPE: ClassVar[str] = "caserun.step_passed"
    index: int
    part: str


@dataclass(frozen=True, slots=True)
class CaseStepFailed(Payload):
    TYPE: ClassVar[str] = "caserun.step_failed"
    index: int
    part: str
    exception: str
    screenshot: str | None = None


@dataclass(frozen=True, slots=True)
class CaseRunCompleted(Payload):
    TYPE: ClassVar[str] = "caserun.completed"
    status: str  # passed | failed


@dataclass(frozen=True, slots=True)
class CaseRunCancelled(Payload):
    TYPE: ClassVar[str] = "caserun.cancelled"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CaseRunDeleted(Payload):
    TYPE: ClassVar[str] = "caserun.deleted"


PAYLOADS: tuple[type[Payload], ...] = (
    CaseRunCreated,
    CaseStepStarted,
    CaseStepPassed,
    CaseStepFailed,
    CaseRunCompleted,
    CaseRunCancelled,
    CaseRunDeleted,
)


# -- command bodies -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateCaseRun(Body):
    NAME: ClassVar[str] = "caserun.create"
    site_id: str
    case_id: str
    steps_json: str
    title: str = ""
    flowrun_id: str | None = None
    node_id: str | None = None
    site_url: str = ""


@dataclass(frozen=True, slots=True)
class CaseStepStart(Body):
    NAME: ClassVar[str] = "caserun.step_start"
    index: int
    part: str


@dataclass(frozen=True, slots=True)
class CaseStepPass(Body):
    NAME: ClassVar[str] = "caserun.step_pass"
    index: int
    part: str


@dataclass(frozen=True, slots=True)
class CaseStepFail(Body):
    NAME: ClassVar[str] = "caserun.step_fail"
    index: int
    part: str
    exception: str
    screenshot: str | None = None


@dataclass(frozen=True, slots=True)
class CancelCaseRun(Body):
    NAME: ClassVar[str] = "caserun.cancel"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteCaseRun(Body):
    NAME: ClassVar[str] = "caserun.delete"


BODIES: tuple[type[Body], ...] = (
    CreateCaseRun,
    CaseStepStart,
    CaseStepPass,
    CaseStepFail,
    CancelCaseRun,
    DeleteCaseRun,
)
