"""``rows.payload_json`` writes exactly the bytes the ``json`` module wrote before.

The ``events`` table keeps each payload as JSON text; events stored earlier were
written with ``json`` (compact separators, non-ASCII as is). ``payload_json`` uses
orjson for speed, so it must give the same bytes for every payload, every text and
every float (it falls back to ``json`` where orjson would differ).
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from projections import rows
from projections.fold import decode_all
from schemas import default_codec
from streams.domain import events as e
from tests.unit.test_golden import NAMES, messages

STDLIB_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def test_payload_json_matches_the_stdlib_encoder_for_every_golden_event() -> None:
    codec = default_codec()
    seen = 0
    for name in NAMES:
        _, events, _, _ = decode_all(codec, messages(name))
        for ev in events:
            text = rows.payload_json(ev.data)
            assert text == STDLIB_JSON(json.loads(text))
            seen += 1
    assert seen > 20
    assert rows.payload_json(e.ProcessStarted()) == "{}"


@settings(max_examples=300, deadline=None)
@given(
    progress=st.floats(allow_nan=True, allow_infinity=True),
    message=st.none() | st.text(),
)
def test_floats_and_texts_are_byte_identical_to_the_stdlib_encoder(
    progress: float, message: str | None
) -> None:
    """Tiny floats (1e-05), NaN, infinity and any text, as ``json`` writes them."""
    data = e.ProgressReported(progress, message)
    assert rows.payload_json(data) == STDLIB_JSON({"progress": progress, "message": message})


def test_floats_orjson_would_write_differently_go_through_the_stdlib() -> None:
    for value in (1e-05, 5e-324, -3e-7, float("nan"), float("inf")):
        text = rows.payload_json(e.ProgressReported(value))
        assert text == STDLIB_JSON({"progress": value, "message": None})
    assert rows.payload_json(e.ProgressReported(1e-05)) == '{"progress":1e-05,"message":null}'


@given(st.text())
def test_step_definitions_encode_as_objects_in_field_order(name: str) -> None:
    steps = (e.StepDefinition("s", name, 1), e.StepDefinition(name, "n", 2, False))
    data = e.ProcessCreated("scan", name or None, "{}", steps)
    expected = {
        "process_type": "scan",
        "site": name or None,
        "info_json": "{}",
        "steps": [
            {"step_id": "s", "name": name, "order": 1, "enabled": True},
            {"step_id": name, "name": "n", "order": 2, "enabled": False},
        ],
    }
    assert rows.payload_json(data) == STDLIB_JSON(expected)


def test_given_payload_json_is_used_as_is_and_must_match_the_events() -> None:
    codec = default_codec()
    _, events, _, _ = decode_all(codec, messages(NAMES[0]))
    n = len(events)
    made = [rows.payload_json(ev.data) for ev in events]
    columns = rows.event_columns(events, [0] * n, list(range(n)), None, made)
    assert columns["data"] == rows.event_columns(events, [0] * n, list(range(n)))["data"]
    try:
        rows.event_columns(events, [0] * n, list(range(n)), None, made[1:])
    except ValueError as exc:
        assert "same length" in str(exc)
    else:
        raise AssertionError("a data column of another length must be refused")
