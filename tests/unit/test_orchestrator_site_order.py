"""A run created right after its Site can reach the orchestrator before the Site does.

A Site's events and a run's sit on different partitions of ``ledger.events`` (one
partition per aggregate), and the orchestrator reads partitions in no causal order. The
API found the Site when it created the run and copies its URL into the run's created
event (``site_url``, version 2 of ``caserun.created`` and ``flowrun.created``); the
orchestrator's memory uses it while it has not read the Site, and the Site's own state
(deleted, another account's) once it has. Bug found by ``test_caserun_e2e``: a CaseRun
created a moment after its Site failed with "site … has no URL (deleted or unknown)".
"""

from __future__ import annotations

import json

import pytest

from streams.domain import aggregates, site
from streams.domain import caserun as cr
from streams.domain import commands as c
from streams.domain import events as e
from streams.domain import flowrun as f
from streams.orchestrator_memory import Memory
from tests.unit.test_runs_review import CASE_STEPS, RID, Log

URL = "https://shop.example.com/"
NODES = [{"id": "s", "data": {"task_type": "scan"}}]


def decided(
    aggregate: str, aggregate_id: str, bodies: tuple[c.Body, ...], account: str
) -> list[e.Event]:
    """The events of ``bodies`` on one aggregate of ``account``, decided in order."""
    state = None
    out: list[e.Event] = []
    for n, body in enumerate(bodies):
        cmd = c.Command(
            f"{aggregate}{n}", aggregate, aggregate_id, 1_000 + n, account, "t", "k", "x", body
        )
        for event in aggregates.decide(state, cmd):
            state = aggregates.evolve(state, event)
            out.append(event)
    return out


def site_events(*bodies: c.Body, account: str = "acme") -> list[e.Event]:
    return decided("site", "site-1", bodies, account)


def standalone_caserun(log: Log, site_url: str = URL) -> e.Event:
    body = cr.parse_caserun_body(
        "caserun.create",
        {"site_id": "site-1", "site_url": site_url, "case_id": "case-1",
         "steps": json.loads(CASE_STEPS)},
    )  # fmt: skip
    [created] = log.do(cr.AGGREGATE, "cr-1", body)
    return created


def flowrun(log: Log, site_url: str = URL) -> None:
    body = f.parse_flowrun_body(
        "flowrun.create",
        {"site_id": "site-1", "site_url": site_url, "flow_id": "flow-1", "nodes": NODES},
    )
    log.do(f.AGGREGATE, RID, body)
    log.do(f.AGGREGATE, RID, f.NodeStart("s"))


def test_the_created_events_carry_the_url_the_command_gave() -> None:
    log = Log()
    created = standalone_caserun(log)
    assert isinstance(created.data, cr.CaseRunCreated) and created.data.site_url == URL
    flowrun(log)
    first = log.events[1]
    assert isinstance(first.data, f.FlowRunCreated) and first.data.site_url == URL


def test_a_standalone_caserun_read_before_its_site_is_sent_with_the_recorded_url() -> None:
    log = Log()
    created = standalone_caserun(log)
    memory = Memory()
    memory.fold(created)  # the Site's partition is behind: no site.created yet
    dispatch = memory.caserun_dispatch(created)
    assert dispatch is not None and dispatch.site_url == URL


def test_a_flowrun_node_started_before_its_site_is_read_gets_the_recorded_url() -> None:
    log = Log()
    flowrun(log)
    memory = Memory()
    for event in log.events:
        memory.fold(event)
    run = memory.run_state(RID)
    assert run is not None
    assert memory.dispatch_for(run, "s", 1).site_url == URL


def test_the_sites_own_state_wins_once_read() -> None:
    log = Log()
    created = standalone_caserun(log)
    flowrun(log)
    memory = Memory()
    for event in log.events:
        memory.fold(event)
    run = memory.run_state(RID)
    assert run is not None
    # Read with another URL: the folded Site's counts (it is the Site as it is now).
    for event in site_events(site.CreateSite("https://moved.example.com/")):
        memory.fold(event)
    assert memory.caserun_dispatch(created).site_url == "https://moved.example.com/"  # type: ignore[union-attr]
    assert memory.dispatch_for(run, "s", 1).site_url == "https://moved.example.com/"
    # Deleted: no URL, however the run recorded one (the runner fails the run).
    for event in site_events(site.CreateSite(URL), site.DeleteSite())[1:]:
        memory.fold(event)
    assert memory.caserun_dispatch(created).site_url == ""  # type: ignore[union-attr]
    assert memory.dispatch_for(run, "s", 1).site_url == ""


def test_another_accounts_site_gives_no_url_even_with_one_recorded() -> None:
    log = Log()
    created = standalone_caserun(log)
    memory = Memory()
    for event in [*site_events(site.CreateSite(URL), account="mallory"), created]:
        memory.fold(event)
    assert memory.caserun_dispatch(created).site_url == ""  # type: ignore[union-attr]


def test_a_version_1_run_without_a_recorded_url_gets_none_while_its_site_is_unread() -> None:
    log = Log()
    created = standalone_caserun(log, site_url="")
    memory = Memory()
    memory.fold(created)
    assert memory.caserun_dispatch(created).site_url == ""  # type: ignore[union-attr]


# -- the case nodes' Cases (flowrun.created version 3, cases_json) -----------------------

CASE_NODES = [
    {"id": "k", "data": {"task_type": "case", "case_id": "case-1"}},
    {"id": "j", "data": {"task_type": "case", "case_id": "case-2"}},
]


def case_flowrun(log: Log, cases: dict[str, str]) -> None:
    body = f.parse_flowrun_body(
        "flowrun.create",
        {"site_id": "site-1", "site_url": URL, "flow_id": "flow-1", "nodes": CASE_NODES,
         "cases": cases},
    )  # fmt: skip
    log.do(f.AGGREGATE, RID, body)
    log.do(f.AGGREGATE, RID, f.NodeStart("k"))


def case_events(*bodies: c.Body, account: str = "acme") -> list[e.Event]:
    return decided("case", "case-1", bodies, account)


def folded(log: Log, *more: e.Event) -> Memory:
    memory = Memory()
    for event in [*more, *log.events]:
        memory.fold(event)
    return memory


def test_a_case_node_started_before_its_case_is_read_gets_the_recorded_steps() -> None:
    log = Log()
    case_flowrun(log, {"case-1": CASE_STEPS})
    memory = folded(log)
    run = memory.run_state(RID)
    assert run is not None
    assert memory.dispatch_for(run, "k", 1).case_steps_json == CASE_STEPS
    assert memory.dispatch_for(run, "j", 1).case_steps_json is None  # none recorded


def test_a_read_case_wins_over_the_recorded_steps() -> None:
    from streams.domain import case

    log = Log()
    case_flowrun(log, {"case-1": "[]"})  # recorded steps that differ from the Case's
    create = case.parse_create({"site_id": "site-1", "name": "c", "steps": json.loads(CASE_STEPS)})
    created = case_events(create)
    memory = folded(log, *created)
    run = memory.run_state(RID)
    assert run is not None
    steps = memory.dispatch_for(run, "k", 1).case_steps_json
    assert steps is not None and steps != "[]"
    assert json.loads(steps) == json.loads(CASE_STEPS)
    for event in case_events(create, case.DeleteCase())[1:]:
        memory.fold(event)
    assert memory.dispatch_for(run, "k", 1).case_steps_json is None  # deleted since


def test_another_accounts_case_gives_no_steps_even_with_some_recorded() -> None:
    from streams.domain import case

    log = Log()
    case_flowrun(log, {"case-1": CASE_STEPS})
    steps = json.loads(CASE_STEPS)
    create = case.parse_create({"site_id": "site-1", "name": "c", "steps": steps})
    memory = folded(log, *case_events(create, account="mallory"))
    run = memory.run_state(RID)
    assert run is not None
    assert memory.dispatch_for(run, "k", 1).case_steps_json is None


def test_an_ended_run_forgets_what_was_recorded_for_it() -> None:
    log = Log()
    case_flowrun(log, {"case-1": CASE_STEPS})
    memory = folded(log)
    assert RID in memory.run_created
    log.do(f.AGGREGATE, RID, f.CancelFlowRun("user"))
    memory.fold(log.events[-1])
    assert memory.run_created == {}
    assert memory.dispatch_for(memory.run_state(RID), "k", 1).site_url == ""  # type: ignore[arg-type]


def test_a_create_command_with_cases_of_another_shape_is_refused() -> None:
    from streams.domain.commands import InvalidCommand

    for cases in ([CASE_STEPS], {"case-1": []}, {"case-1": 5}, "not json"):
        with pytest.raises(InvalidCommand) as caught:
            f.parse_flowrun_body(
                "flowrun.create",
                {"site_id": "s", "flow_id": "f", "nodes": CASE_NODES, "cases": cases},
            )
        assert caught.value.field == "cases"
