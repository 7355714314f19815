"""FlowRuns and CaseRuns as their tables keep them, and back; pure, no I/O.

A run's nested states (a FlowRun's nodes and logs, a CaseRun's steps) are kept as one
JSON list each, so a run is one row whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from projections import tables
from projections.columns import Columns, columns_of, compact_json
from streams.domain import snapshot
from streams.domain.caserun import CaseRunState
from streams.domain.flowrun import FlowRunState


def _plain(values: Iterable[Any]) -> str:
    return compact_json([asdict(v) for v in values])


def flowrun_columns(states: Iterable[FlowRunState]) -> Columns:
    """Columns of ``flowruns``: one row per run, its nodes and logs as JSON lists."""
    return columns_of(
        tables.FLOWRUNS,
        [
            (
                s.id,
                s.account,
                s.created_by,
                s.site_id,
                s.flow_id,
                s.title,
                s.end_on_fail,
                s.nodes_json,
                s.edges_json,
                s.time_created,
                _plain(s.nodes),
                s.seq,
                s.status,
                s.attempt,
                s.time_started,
                s.time_completed,
                s.time_updated,
                s.deleted,
                _plain(s.logs),
            )
            for s in states
        ],
    )


def flowrun_from_row(row: Sequence[Any]) -> FlowRunState:
    """A FlowRunState from a ``flowruns`` row (columns in table order, times as ints)."""
    (
        id_,
        account,
        created_by,
        site_id,
        flow_id,
        title,
        end_on_fail,
        flow_nodes,
        edges,
        time_created,
        nodes,
        seq,
        status,
        attempt,
        time_started,
        time_completed,
        time_updated,
        deleted,
        logs,
    ) = row
    return FlowRunState(
        id=id_,
        account=account,
        created_by=created_by,
        site_id=site_id,
        flow_id=flow_id,
        title=title,
        end_on_fail=end_on_fail,
        nodes_json=flow_nodes,
        edges_json=edges,
        time_created=time_created,
        nodes=tuple(snapshot.flownode_from_dict(n) for n in json.loads(nodes)),
        seq=seq,
        status=status,
        attempt=attempt,
        time_started=time_started,
        time_completed=time_completed,
        time_updated=time_updated,
        deleted=deleted,
        logs=tuple(snapshot.flowlog_from_dict(line) for line in json.loads(logs)),
    )


def caserun_columns(states: Iterable[CaseRunState]) -> Columns:
    """Columns of ``caseruns``: one row per run, its steps as a JSON list."""
    return columns_of(
        tables.CASERUNS,
        [
            (
                s.id,
                s.account,
                s.created_by,
                s.site_id,
                s.case_id,
                s.title,
                s.steps_json,
                s.time_created,
                _plain(s.steps),
                s.flowrun_id,
                s.node_id,
                s.seq,
                s.status,
                s.time_started,
                s.time_completed,
                s.time_updated,
                s.deleted,
                s.exception,
            )
            for s in states
        ],
    )


def caserun_from_row(row: Sequence[Any]) -> CaseRunState:
    """A CaseRunState from a ``caseruns`` row (columns in table order, times as ints)."""
    fields_ = list(row)
    fields_[8] = tuple(snapshot.casestep_from_dict(s) for s in json.loads(fields_[8]))
    return CaseRunState(*fields_)
