"""What the orchestrator knows from ``ledger.events``: the states it folds, and the jobs
they make.

FlowRuns, Sites and Cases are folded with the aggregates' own ``evolve``; of Processes
only the ``case.generate`` ones are remembered (account, Site, info). From these it
builds a job's :class:`~streams.jobs.Dispatch` (the job plus the Site's URL and a Case's
steps). Pure: no Kafka here, so the orchestrator's loop and a rebuild share it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from streams.domain import aggregates
from streams.domain import flowrun as f
from streams.domain.caserun_messages import CaseRunCreated
from streams.domain.events import Event, ProcessCreated, ProcessRestarted, ProcessRetried
from streams.jobs import Dispatch
from streams.orchestration import (
    GENERATE_PROCESS,
    caserun_job,
    generate_job,
    job_for,
    stopped_case_nodes,
)

log = logging.getLogger(__name__)

# Process events that dispatch a generate job (of case.generate Processes only).
# The events that (re)start a case.generate Process's job.
PROCESS_EVENTS = (ProcessCreated.TYPE, ProcessRetried.TYPE, ProcessRestarted.TYPE)


@dataclass(frozen=True)
class GenerateProcess:
    """What the orchestrator keeps of a case.generate Process to dispatch its jobs."""

    account: str
    site_id: str
    info_json: str


class Memory:
    """The folded states (by stream key) and the case.generate Processes (by id)."""

    def __init__(self) -> None:
        self.states: dict[str, Any] = {}  # stream key -> FlowRunState | SiteState | CaseState
        self.generating: dict[str, GenerateProcess] = {}
        # (flowrun id, node id) -> the CaseRun its case node's job created last
        self.node_caseruns: dict[tuple[str, str], str] = {}
        # the other way: CaseRun id -> (flowrun id, node id) of the job that created it
        self.caserun_nodes: dict[str, tuple[str, str]] = {}
        # Active FlowRun id -> its created event's payload: the Site's URL and the case
        # nodes' Cases as the API read them (``site_url``, ``cases_json``)
        self.run_created: dict[str, f.FlowRunCreated] = {}

    def fold(self, event: Event) -> None:
        """Take ``event`` into account (a duplicate or older seq is ignored)."""
        if event.type in PROCESS_EVENTS:
            self._remember(event)
            return
        if event.type == CaseRunCreated.TYPE:
            data = event.data
            if isinstance(data, CaseRunCreated) and data.flowrun_id and data.node_id:
                self.node_caseruns[(data.flowrun_id, data.node_id)] = event.aggregate_id
                self.caserun_nodes[event.aggregate_id] = (data.flowrun_id, data.node_id)
            return  # a standalone one is dispatched from the batch
        key = aggregates.stream_key(event.aggregate_type, event.aggregate_id)
        state = self.states.get(key)
        if state is not None and event.seq <= state.seq:
            return  # a duplicate: already folded
        try:
            self.states[key] = after = aggregates.evolve(state, event)
        except ValueError as exc:
            log.warning("event %s of %s not folded: %s", event.type, key, exc)
            return
        if isinstance(event.data, f.FlowRunCreated):
            self.run_created[event.aggregate_id] = event.data
        elif isinstance(after, f.FlowRunState) and (
            after.deleted or after.status in f.RUN_TERMINAL
        ):
            # What the API recorded covers the moments after the run's creation, when
            # its Site or Cases may not be read yet; an ended run needs it no more (a
            # retry comes long after), so memory does not grow with every run's Cases.
            self.run_created.pop(after.id, None)

    def run_counts(self) -> tuple[int, int]:
        """The FlowRuns folded, and of them those in flight (neither ended nor deleted).
        A walk over every state: for a scrape now and then, never for the loop."""
        held = in_flight = 0
        for state in self.states.values():
            if isinstance(state, f.FlowRunState):
                held += 1
                if not state.deleted and state.status not in f.RUN_TERMINAL:
                    in_flight += 1
        return held, in_flight

    def _remember(self, event: Event) -> None:
        data = event.data
        if isinstance(data, ProcessCreated) and data.process_type == GENERATE_PROCESS:
            self.generating[event.aggregate_id] = GenerateProcess(
                event.account, data.site or "", data.info_json
            )

    def generate_dispatch(self, process_id: str, attempt: int) -> Dispatch | None:
        """The ``generate`` job of ``attempt`` of a case.generate Process (None if the
        Process is not one). The Site's URL is the folded Site's, else the one the API
        put in the Process info when it checked the Site."""
        process = self.generating.get(process_id)
        if process is None:
            return None
        job = generate_job(process_id, process.account, process.site_id, process.info_json, attempt)
        site = self.states.get(aggregates.stream_key("site", process.site_id))
        if site is not None:  # the runner fails the Process when it gets no URL
            return Dispatch(job, site_url=self.site_url(process.site_id, process.account))
        return Dispatch(job, site_url=_json_str(process.info_json, "site_url") or "")

    def site_url(self, site_id: str, account: str, recorded: str = "") -> str:
        """The URL of ``account``'s Site ``site_id``; "" when it is deleted or another
        account's (a job never works on a Site its account cannot see).

        A Site not read yet gives ``recorded``: the URL the API read when it created the
        run, which the run's created event carries. A Site's events and a run's sit on
        different partitions, so a run created right after its Site can reach this
        orchestrator first; the API had found the Site, so it existed then. ("" for a run
        of a version 1 event: the runner then fails the run, as for an unknown Site.)"""
        site = self.states.get(aggregates.stream_key("site", site_id))
        if site is None:
            return recorded
        if getattr(site, "deleted", False) or site.account != account:
            return ""
        return getattr(site, "site_url", "") or ""

    def caserun_dispatch(self, event: Event) -> Dispatch | None:
        """The ``case`` job of the CaseRun ``event`` created, when it is a standalone one
        (None for a FlowRun node's CaseRun). The Site URL is the folded Site's, or the
        event's own when the Site is not read yet ("" when it is deleted: the runner then
        fails the run's first part)."""
        data = event.data
        if not isinstance(data, CaseRunCreated):
            return None
        job = caserun_job(event.aggregate_id, event.account, data)
        if job is None:
            return None
        return Dispatch(
            job,
            site_url=self.site_url(data.site_id, event.account, data.site_url),
            case_id=data.case_id,
            case_steps_json=data.steps_json,
            caserun_id=event.aggregate_id,
        )

    def _recorded_steps(self, run_id: str, case_id: str) -> str | None:
        """The steps of Case ``case_id`` as the API copied them into run ``run_id`` (for a
        Case this orchestrator has not read yet: its events may sit on another
        partition); None when the run recorded none of it."""
        created = self.run_created.get(run_id)
        return _json_str(created.cases_json, case_id) if created is not None else None

    def caseruns_to_cancel(self, run: f.FlowRunState) -> list[str]:
        """The CaseRuns of the case nodes the cancel of ``run`` stopped (those created
        so far; :meth:`stopped_caserun` catches one created later)."""
        found = (self.node_caseruns.get((run.id, n)) for n in stopped_case_nodes(run))
        return [caserun_id for caserun_id in found if caserun_id is not None]

    def stopped_caserun(self, event: Event) -> bool:
        """Whether ``event`` created the CaseRun of a case node that its FlowRun's cancel
        has already stopped (the job created it just before it was stopped)."""
        data = event.data
        if not isinstance(data, CaseRunCreated) or not data.flowrun_id or not data.node_id:
            return False
        run = self.run_state(data.flowrun_id)
        return run is not None and data.node_id in stopped_case_nodes(run)

    def run_state(self, run_id: str) -> f.FlowRunState | None:
        state = self.states.get(aggregates.stream_key(f.AGGREGATE, run_id))
        return state if isinstance(state, f.FlowRunState) else None

    def dispatch_for(self, run: f.FlowRunState, node_id: str, attempt: int) -> Dispatch:
        """The job of ``attempt`` of ``node_id`` with its Site URL and Case steps. The
        URL is the folded Site's, or the one the run's created event recorded when the
        Site is not read yet; "" when the Site was deleted, as for a standalone CaseRun:
        the runner then fails the node rather than work on a deleted Site."""
        job = job_for(run, node_id, attempt)
        case_id: str | None = None
        steps: str | None = None
        if job.kind == "case":
            case_id = _json_str(job.data_json, "case_id")
            case = self.states.get(aggregates.stream_key("case", case_id)) if case_id else None
            if case is None and case_id:
                steps = self._recorded_steps(run.id, case_id)
            elif case is not None and not case.deleted and case.account == run.account:
                steps = getattr(case, "steps_json", None)
        created = self.run_created.get(run.id)
        recorded = created.site_url if created is not None else ""
        site_url = self.site_url(run.site_id, run.account, recorded)
        return Dispatch(job, site_url=site_url, case_id=case_id, case_steps_json=steps)


def _json_str(text: str, key: str) -> str | None:
    """The non-empty string at ``key`` of a JSON object's text, else None."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None
