"""Jobs on ``ledger.jobs``: what the orchestrator hands to runners, and its wire format.

A :class:`Dispatch` is a :class:`streams.orchestration.Job` plus what a runner needs and
cannot look up itself (runners read no projection): the Site's URL and, for a ``case``
node, the Case's steps. The orchestrator fills them in from the Site and Case events it
folds alongside the FlowRuns. A ``case`` job of a standalone CaseRun (``POST /caserun``)
also names that CaseRun (``caserun_id``), whose steps it carries from its created event.

The encoding is JSON, not Avro: jobs are a work queue with a week's retention, never
replayed as history, read only by this project's runners; a ``v`` field versions the
shape; a field added later is optional (``caserun_id``), so jobs written before it still
read. The message key is the run id, so one run's jobs stay in order on one partition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from streams.orchestration import Job

VERSION = 1
KIND_HEADER = "kind"


class InvalidJob(ValueError):
    """Bytes on ``ledger.jobs`` that are not a job this runner understands: skip them."""


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A job with its context. ``case_steps_json`` is the Case's steps as canonical JSON
    (None unless ``job.kind`` is ``case`` and the Case was found). ``caserun_id`` is set
    for the job of a standalone CaseRun, which exists already and is run as it is; None
    for a FlowRun's case node, whose job creates its CaseRun."""

    job: Job
    site_url: str = ""
    case_id: str | None = None
    case_steps_json: str | None = None
    caserun_id: str | None = None


def encode_dispatch(dispatch: Dispatch) -> bytes:
    job = dispatch.job
    record = {
        "v": VERSION,
        "job_id": job.job_id,
        "kind": job.kind,
        "run_id": job.run_id,
        "account": job.account,
        "site_id": job.site_id,
        "node_id": job.node_id,
        "attempt": job.attempt,
        "configs_json": job.configs_json,
        "data_json": job.data_json,
        "threshold": job.threshold,
        "site_url": dispatch.site_url,
        "case_id": dispatch.case_id,
        "case_steps_json": dispatch.case_steps_json,
        "caserun_id": dispatch.caserun_id,
    }
    return json.dumps(record, separators=(",", ":"), sort_keys=True).encode()


def _str(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise InvalidJob(f"job field {key} must be a string")
    return value


def _opt_str(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidJob(f"job field {key} must be a string or null")
    return value


def decode_dispatch(data: bytes | None) -> Dispatch:
    """The Dispatch of a ``ledger.jobs`` message; InvalidJob for anything else."""
    try:
        record = json.loads(data or b"")
    except (ValueError, RecursionError) as exc:
        raise InvalidJob(f"a job is not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise InvalidJob("a job must be a JSON object")
    if record.get("v") != VERSION:
        raise InvalidJob(f"job version {record.get('v')!r} is not {VERSION}")
    attempt = record.get("attempt")
    if isinstance(attempt, bool) or not isinstance(attempt, int):
        raise InvalidJob("job field attempt must be a whole number")
    threshold = record.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise InvalidJob("job field threshold must be a number or null")
    job = Job(
        job_id=_str(record, "job_id"),
        kind=_str(record, "kind"),
        run_id=_str(record, "run_id"),
        account=_str(record, "account"),
        site_id=_str(record, "site_id"),
        node_id=_str(record, "node_id"),
        attempt=attempt,
        configs_json=_str(record, "configs_json"),
        data_json=_str(record, "data_json"),
        threshold=None if threshold is None else float(threshold),
    )
    return Dispatch(
        job,
        site_url=_str(record, "site_url"),
        case_id=_opt_str(record, "case_id"),
        case_steps_json=_opt_str(record, "case_steps_json"),
        caserun_id=_opt_str(record, "caserun_id"),
    )


def kind_of(headers: Any) -> str | None:
    """The job kind from a message's headers (lets a runner skip without decoding)."""
    for key, value in headers or ():
        if key == KIND_HEADER and isinstance(value, bytes):
            return value.decode(errors="replace")
    return None
