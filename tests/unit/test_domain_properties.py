"""Properties of the Process decider for any sequence of commands (hypothesis).

Commands are generated as the decider receives them: a name and a JSON payload, turned
into a body by ``parse_body`` (the decider's only way in, through
``serde.decode_command``). Payloads mix plausible values with implausible ones
(out-of-range progress, unknown and disabled steps, empty or non-UTF-8 text, foreign
accounts); a payload that ``parse_body`` refuses never reaches ``decide``, like a
dead-lettered message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import default_codec
from streams import serde
from streams.domain import commands as c
from streams.domain import events as e
from streams.domain import process as p
from streams.domain.rejection import ALREADY_EXISTS, INVALID, INVALID_STATE, NOT_FOUND, Rejected
from streams.domain.snapshot import process_from_dict, process_to_dict

PID = "proc-1"
OWNER = "acme"
CODEC = default_codec()
CODES = {NOT_FOUND, INVALID_STATE, ALREADY_EXISTS, INVALID}
RESUMING = {"process.retried", "process.restarted", "process.deleted"}
STEP_IDS = ["fetch", "audit", "report", "notify", "ghost"]  # ghost is never defined

# -- strategies ---------------------------------------------------------------------------

_texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "   ", "x" * 300, "ok", "\ud800", "ünïcødé ✓"]),
)
_maybe_text = st.none() | _texts
_json_objects = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), max_size=3),
    st.sampled_from(['{"a":1}', "not json", "[1]", {"n": math.nan}, 7]),
)
_progress = st.one_of(
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=100),  # twice: mostly plausible
    st.integers(min_value=-5, max_value=105),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 100.0000001, 10**400, True, "50"]),
)
_step_id = st.sampled_from(STEP_IDS * 4 + ["", 7, None])
_reason = st.sampled_from(["timeout", "disk full"]) | _texts
_step_def = st.fixed_dictionaries(
    {"id": st.sampled_from(STEP_IDS[:4])},
    optional={
        "name": _texts,
        "order": st.integers(min_value=-2, max_value=6) | st.just(2**40),
        "enabled": st.booleans(),
    },
)
_steps = st.none() | st.lists(_step_def, max_size=5)

PAYLOADS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "process.create": st.fixed_dictionaries(
        {"type": st.sampled_from(["scan", "case"]) | _texts},
        optional={"site": _maybe_text, "info": _json_objects, "steps": _steps},
    ),
    "process.start": st.just({}),
    "process.progress": st.fixed_dictionaries(
        {"progress": _progress}, optional={"message": _maybe_text}
    ),
    "process.step_start": st.fixed_dictionaries({"step_id": _step_id}),
    "process.step_complete": st.fixed_dictionaries(
        {"step_id": _step_id}, optional={"message": _maybe_text}
    ),
    "process.step_fail": st.fixed_dictionaries({"step_id": _step_id, "exception": _reason}),
    "process.log": st.fixed_dictionaries(
        {"message": _texts},
        optional={"level": st.sampled_from(["debug", "info", "warning", "error", "loud"])},
    ),
    "process.waiting_review": st.fixed_dictionaries({}, optional={"result_summary": _json_objects}),
    "process.approve": st.just({}),
    "process.complete": st.fixed_dictionaries(
        {}, optional={"object_id": _maybe_text, "result_summary": _json_objects}
    ),
    "process.fail": st.fixed_dictionaries({"exception": _reason}),
    "process.cancel": st.fixed_dictionaries({}, optional={"reason": _maybe_text}),
    "process.retry": st.just({}),
    "process.restart": st.fixed_dictionaries({"step_id": _step_id}),
    "process.delete": st.just({}),
    # Not process commands: parse_body refuses the unknown name, and the process
    # decide refuses the account command it is handed.
    "account.token_create": st.fixed_dictionaries({"token_hash": st.just("ab" * 32)}),
    "process.teleport": st.just({}),
}


@dataclass(frozen=True)
class Raw:
    name: str
    payload: dict[str, Any]
    account: str
    issued_at: int


# How often each command is drawn: enough of the lifecycle's forward moves that long
# histories reach every status, few of the moves that end a history (delete).
WEIGHTS = {
    "process.create": 1,
    "process.start": 6,
    "process.progress": 4,
    "process.step_start": 12,
    "process.step_complete": 12,
    "process.step_fail": 4,
    "process.log": 2,
    "process.waiting_review": 3,
    "process.approve": 3,
    "process.complete": 3,
    "process.fail": 3,
    "process.cancel": 2,
    "process.retry": 6,
    "process.restart": 6,
    "process.delete": 1,
    "account.token_create": 1,
    "process.teleport": 1,
}
assert set(WEIGHTS) == set(PAYLOADS)
_names = st.sampled_from([name for name, n in WEIGHTS.items() for _ in range(n)])
_accounts = st.sampled_from([OWNER] * 8 + ["globex", "initech"])


_plausible_steps = st.lists(
    st.fixed_dictionaries(
        {"id": st.sampled_from(STEP_IDS[:4])},
        optional={"order": st.integers(1, 4), "enabled": st.sampled_from([True, True, False])},
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda d: d["id"],
)


@st.composite
def histories(draw: st.DrawFn) -> list[Raw]:
    """Mostly a valid creation by the owner first, so that later commands meet a Process.

    Step commands usually name a defined step, and a step report usually the step
    started last, so that histories get past "no such step" to the interesting states.
    """
    first = []
    defined = STEP_IDS
    if draw(st.integers(0, 19)) > 0:
        steps = draw(_plausible_steps)
        defined = [str(d["id"]) for d in steps]
        first = [Raw("process.create", {"type": "scan", "steps": steps}, OWNER, 1)]
    # A drawn length, not st.lists: lists average a handful of elements, too few to
    # walk a Process through retry and restart.
    length = draw(st.integers(min_value=0, max_value=80))
    started: list[str] = []
    out = []
    for _ in range(length):
        name = draw(_names)
        payload = dict(draw(PAYLOADS[name]))
        if "step_id" in payload and draw(st.integers(0, 9)) < 7:
            reporting = name in ("process.step_complete", "process.step_fail")
            payload["step_id"] = draw(
                st.sampled_from(started[-1:] if reporting and started else defined)
            )
        if name == "process.step_start":
            started.append(payload["step_id"])
        account = draw(_accounts)
        out.append(Raw(name, payload, account, draw(st.integers(min_value=0, max_value=2**62))))
    return first + out


def _command(n: int, raw: Raw) -> c.Command | None:
    try:
        body = c.parse_body(raw.name, raw.payload)
    except c.InvalidCommand as exc:
        assert exc.message and str(exc) == exc.message
        return None
    return c.Command(
        command_id=f"cmd-{n}",
        aggregate_type=p.AGGREGATE,
        aggregate_id=PID,
        issued_at=raw.issued_at,
        account=raw.account,
        actor=f"actor-{n % 3}",
        correlation_id="corr",
        causation_id=f"cause-{n}",
        body=body,
    )


# -- the run --------------------------------------------------------------------------------


def _check_state(state: p.ProcessState) -> None:
    assert math.isfinite(state.progress) and 0.0 <= state.progress <= 100.0
    assert state.status in p.STATUSES
    assert state.attempt >= 1
    assert all(step.status in p.STEP_STATUSES for step in state.steps)
    assert len({step.step_id for step in state.steps}) == len(state.steps)
    assert state.success is (state.status == p.COMPLETED)


def _check_events(state: p.ProcessState | None, cmd: c.Command, events: list[e.Event]) -> None:
    assert events, "an accepted command emits at least one event"
    start = state.seq if state is not None else 0
    assert [ev.seq for ev in events] == list(range(start + 1, start + 1 + len(events)))
    for ev in events:
        assert ev.event_id == e.event_id_for("process", PID, ev.seq)
        assert ev.occurred_at == cmd.issued_at
        assert (ev.account, ev.actor, ev.command_id) == (cmd.account, cmd.actor, cmd.command_id)
        assert ev.type == ev.data.TYPE


def _replay(log: list[e.Event]) -> p.ProcessState | None:
    state = None
    for event in log:
        state = p.evolve(state, event)
    return state


def _wire(event: e.Event) -> e.Event:
    """The event as a consumer reads it: every event decide emits must encode."""
    return serde.decode_event(CODEC, serde.encode_event(CODEC, event))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(history=histories())
def test_any_history_keeps_every_invariant(history: list[Raw]) -> None:
    state: p.ProcessState | None = None
    log: list[e.Event] = []
    for n, raw in enumerate(history):
        cmd = _command(n, raw)
        if cmd is None:
            continue
        before = process_to_dict(state) if state is not None else None
        was_deleted = state is not None and state.deleted
        try:
            events = p.decide(state, cmd)  # anything but Rejected fails the test
        except Rejected as rejected:
            assert rejected.code in CODES and rejected.message
            assert (process_to_dict(state) if state is not None else None) == before
            if was_deleted:
                is_create = isinstance(cmd.body, c.CreateProcess)
                assert rejected.code == (ALREADY_EXISTS if is_create else NOT_FOUND)
            if state is not None and cmd.account != state.account:
                assert rejected.code in (NOT_FOUND, ALREADY_EXISTS)
            continue

        assert not was_deleted, "a deleted process accepts nothing"
        assert p.decide(state, cmd) == events, "deciding is deterministic"
        _check_events(state, cmd, events)
        prior_status = state.status if state is not None else None
        prior_attempt = state.attempt if state is not None else 1
        for event in events:
            state = p.evolve(state, event)
            _check_state(state)
        assert state is not None and state.seq == events[-1].seq
        assert state.account == (log[0].account if log else cmd.account)  # never changes
        log += events
        assert _replay(log) == state, "replay equals live"

        kinds = {ev.type for ev in events}
        if prior_status in p.TERMINAL:
            assert kinds <= RESUMING, f"{prior_status} moved by {kinds}"
        if prior_status in p.TERMINAL and state.status not in p.TERMINAL:
            assert kinds & {"process.retried", "process.restarted"}
        if "process.retried" in kinds or "process.restarted" in kinds:
            assert state.attempt == prior_attempt + 1
        else:
            assert state.attempt == prior_attempt
        if "process.retried" in kinds:
            assert prior_status == p.FAILED

    # Replay equals live also from the bytes a consumer reads.
    replayed: p.ProcessState | None = None
    for event in log:
        replayed = p.evolve(replayed, _wire(event))
    assert replayed == state
    assert [ev.seq for ev in log] == list(range(1, len(log) + 1))
    if state is not None:
        assert process_from_dict(process_to_dict(state)) == state


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), split=st.integers(min_value=0, max_value=40))
def test_a_decider_rebuilt_mid_history_decides_the_same(history: list[Raw], split: int) -> None:
    """A decider that crashed after ``split`` commands rebuilds its state from the log
    and, for the remaining commands, emits exactly the events the first one would have."""
    commands = [cmd for n, raw in enumerate(history) if (cmd := _command(n, raw)) is not None]

    def run(
        state: p.ProcessState | None, cmds: list[c.Command]
    ) -> tuple[p.ProcessState | None, list[e.Event]]:
        out: list[e.Event] = []
        for cmd in cmds:
            try:
                events = p.decide(state, cmd)
            except Rejected:
                continue
            for event in events:
                state = p.evolve(state, event)
            out += events
        return state, out

    live, all_events = run(None, commands)
    head_state, head = run(None, commands[:split])
    rebuilt: p.ProcessState | None = None
    for event in head:
        rebuilt = p.evolve(rebuilt, event)
    assert rebuilt == head_state
    tail_state, tail = run(rebuilt, commands[split:])
    assert head + tail == all_events
    assert tail_state == live
