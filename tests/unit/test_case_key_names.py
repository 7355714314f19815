"""A Case's ``keyDown`` key is checked at create against the names Playwright's
``keyboard.press`` accepts, so a typo is a 422 on its path, not a failed run."""

from __future__ import annotations

import json

import pytest

from streams.domain.case import CreateCase
from streams.domain.commands import InvalidCommand, parse_body
from streams.domain.key_names import KEY_NAMES, unknown_key_part


def _case(key: object) -> dict[str, object]:
    steps = [
        {"action": {"type": "navigate", "path": "/form.html"}},
        {"action": {"type": "keyDown", "key": key, "element": {"selector": "#name"}}},
    ]
    return {"site_id": "s1", "name": "press", "steps": steps}


def _refused(key: object) -> InvalidCommand:
    with pytest.raises(InvalidCommand) as info:
        parse_body("case.create", _case(key))
    return info.value


@pytest.mark.parametrize(
    "key",
    [
        # named keys of the US layout
        "Enter",
        "Tab",
        "Escape",
        "Backspace",
        "Delete",
        "ArrowUp",
        "ArrowDown",
        "ArrowLeft",
        "ArrowRight",
        "F1",
        "F12",
        "Home",
        "End",
        "PageUp",
        "PageDown",
        "Insert",
        "Space",
        "CapsLock",
        "NumpadEnter",
        # key codes, and the modifiers on their own
        "KeyA",
        "Digit7",
        "Shift",
        "Control",
        "Alt",
        "Meta",
        "ControlOrMeta",
        "ShiftRight",
        # single characters (case-sensitive) and their shifted forms
        "a",
        "A",
        "7",
        "&",
        "+",
        " ",
        "?",
        "\n",
        # combinations
        "Control+A",
        "Shift+ArrowLeft",
        "ControlOrMeta+C",
        "Control+Shift+KeyZ",
        "Control++",
        "Shift+Tab",
    ],
)
def test_a_key_playwright_presses_is_kept(key: str) -> None:
    body = parse_body("case.create", _case(key))
    assert unknown_key_part(key) is None
    assert isinstance(body, CreateCase)
    assert json.loads(body.steps_json)[1]["action"]["key"] == key


@pytest.mark.parametrize(
    ("key", "part"),
    [
        ("Entr", "Entr"),
        ("enter", "enter"),
        ("F13", "F13"),
        ("F24", "F24"),
        ("Ctrl+A", "Ctrl"),
        ("Control+Entr", "Entr"),
        ("Control+", ""),
        ("+Control", "+Control"),
        ("Enter ", "Enter "),
        ("é", "é"),
        ("Clear", "Clear"),  # Numpad5's key value, reachable only by its code
        ("ab", "ab"),
    ],
)
def test_an_unknown_key_is_refused_on_its_path(key: str, part: str) -> None:
    assert unknown_key_part(key) == part
    error = _refused(key)
    assert error.field == "steps[1].action.key"
    assert repr(key) in error.message


def test_a_miscased_key_name_is_answered_with_the_right_one() -> None:
    assert "'Enter'" in _refused("enter").message
    assert "'PageDown'" in _refused("Control+pagedown").message


@pytest.mark.parametrize("key", [None, "", 7, ["Enter"]])
def test_a_missing_or_non_text_key_is_refused(key: object) -> None:
    assert _refused(key).field == "steps[1].action.key"


def test_the_names_hold_every_named_key_and_no_unknown_one() -> None:
    assert {"Enter", "F1", "F12", "ArrowUp", "Space", "Shift", "ControlOrMeta"} <= KEY_NAMES
    assert not {"F13", "Ctrl", "Return", "Esc", "Clear", ""} & KEY_NAMES
    assert all(len(name) > 1 or name in "\n\r " or name.isprintable() for name in KEY_NAMES)
