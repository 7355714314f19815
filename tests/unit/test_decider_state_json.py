"""The decider's outcome state JSON is built without ``dataclasses.asdict`` for speed;
it must be the very same JSON, byte for byte, for any Process state."""

from __future__ import annotations

import json
from dataclasses import asdict

from hypothesis import given
from hypothesis import strategies as st

from streams.decider import _state_json, process_state_dict
from streams.domain.process import ProcessState, StepState
from streams.domain.snapshot import process_from_dict

_text = st.text(max_size=8) | st.sampled_from(["", "\ud800", "ünïcødé ✓", '"quoted"\n'])
_maybe_text = st.none() | _text
_micros = st.integers(min_value=0, max_value=2**62)
_maybe_micros = st.none() | _micros

_steps = st.builds(
    StepState,
    step_id=_text,
    name=_text,
    order=st.integers(min_value=-(2**40), max_value=2**40),
    enabled=st.booleans(),
    status=st.sampled_from(["pending", "running", "completed", "failed"]),
    time_started=_maybe_micros,
    time_completed=_maybe_micros,
    message=_maybe_text,
    exception=_maybe_text,
)

_states = st.builds(
    ProcessState,
    id=_text,
    account=_text,
    type=_text,
    created_by=_text,
    site=_maybe_text,
    info_json=st.sampled_from(["{}", '{"a":[1,2]}']),
    time_created=_micros,
    seq=st.integers(min_value=0, max_value=2**40),
    status=st.sampled_from(["pending", "running", "completed", "failed", "cancelled"]),
    progress=st.floats(min_value=0, max_value=100) | st.just(-0.0),
    success=st.booleans(),
    exception=_maybe_text,
    object_id=_maybe_text,
    result_summary_json=st.none() | st.just('{"ok":true}'),
    message=_maybe_text,
    attempt=st.integers(min_value=1, max_value=50),
    time_started=_maybe_micros,
    time_completed=_maybe_micros,
    time_updated=_micros,
    deleted=st.booleans(),
    steps=st.lists(_steps, max_size=4).map(tuple),
)


@given(_states)
def test_the_state_json_is_asdicts_json(state: ProcessState) -> None:
    assert process_state_dict(state) == asdict(state)
    expected = json.dumps(asdict(state), separators=(",", ":"))
    assert _state_json(state) == expected


@given(_states)
def test_the_state_json_reads_back_as_the_state(state: ProcessState) -> None:
    text = _state_json(state)
    assert text is not None
    assert process_from_dict(json.loads(text)) == state
