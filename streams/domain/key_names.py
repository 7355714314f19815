"""The key names a Case's ``keyDown`` may press: the ones Playwright's ``press`` accepts.

Playwright splits a key on ``+`` (``Control+Shift+KeyZ``; a ``+`` right after another
separator is the key itself: ``Control++``), and looks every part up in its US keyboard
layout; anything else fails with ``Unknown key`` when the runner presses it. This is that
layout's closure as Playwright builds it: every key code (``KeyA``, ``Digit1``,
``Enter``, ``F1`` to ``F12``, ``Numpad0``, ...), the modifiers by name, the characters
of the keys (``a``, ``A``, ``&``, a space) and ``ControlOrMeta``, which Playwright turns
into ``Control`` or ``Meta`` by platform. Names are case-sensitive (``enter`` is
refused). It is data only: the domain does not import Playwright. Taken from Playwright
1.65's ``server/usKeyboardLayout.ts`` and ``server/input.ts``; an integration test
presses every name here in Chromium, so an upgrade that drops one is noticed.
"""

from __future__ import annotations

from string import ascii_lowercase, ascii_uppercase, digits

# Key codes of the layout: what ``KeyboardEvent.code`` names.
_NAMED_CODES = (
    "Escape",
    "Backquote",
    "Minus",
    "Equal",
    "Backslash",
    "Backspace",
    "Tab",
    "BracketLeft",
    "BracketRight",
    "CapsLock",
    "Semicolon",
    "Quote",
    "Enter",
    "ShiftLeft",
    "ShiftRight",
    "Comma",
    "Period",
    "Slash",
    "ControlLeft",
    "ControlRight",
    "MetaLeft",
    "MetaRight",
    "AltLeft",
    "AltRight",
    "AltGraph",
    "Space",
    "ContextMenu",
    "PrintScreen",
    "ScrollLock",
    "Pause",
    "PageUp",
    "PageDown",
    "Insert",
    "Delete",
    "Home",
    "End",
    "ArrowLeft",
    "ArrowUp",
    "ArrowRight",
    "ArrowDown",
    "AudioVolumeMute",
    "AudioVolumeDown",
    "AudioVolumeUp",
    "MediaTrackNext",
    "MediaTrackPrevious",
    "MediaPlayPause",
    "NumLock",
    "NumpadDivide",
    "NumpadMultiply",
    "NumpadSubtract",
    "NumpadAdd",
    "NumpadDecimal",
    "NumpadEnter",
)
_NUMBERED_CODES = (
    *(f"F{n}" for n in range(1, 13)),
    *(f"Key{letter}" for letter in ascii_uppercase),
    *(f"Digit{digit}" for digit in digits),
    *(f"Numpad{digit}" for digit in digits),
)
# Names Playwright maps onto a code: the left modifier keys, and the platform's one.
_MODIFIERS = ("Shift", "Control", "Alt", "Meta", "ControlOrMeta")
# The characters the main keys type, unshifted and shifted; Enter is also "\n" and "\r".
_CHARACTERS = ascii_lowercase + ascii_uppercase + digits + "`~!@#$%^&*()-_=+[]{}\\|;:'\",<.>/? \n\r"

KEY_NAMES: frozenset[str] = frozenset((*_NAMED_CODES, *_NUMBERED_CODES, *_MODIFIERS, *_CHARACTERS))
EXAMPLES = "Enter, Tab, Escape, ArrowDown, F1, a single character, or a combination: Control+A"

_BY_FOLDED_NAME = {name.casefold(): name for name in KEY_NAMES if len(name) > 1}


def key_parts(key: str) -> list[str]:
    """The parts Playwright presses together, split as its ``Keyboard.press`` does: a
    ``+`` ends a part unless the part is still empty, so ``Control++`` is ``Control``
    and ``+``, and ``Control+`` ends with an empty part."""
    parts: list[str] = []
    building = ""
    for char in key:
        if char == "+" and building:
            parts.append(building)
            building = ""
        else:
            building += char
    parts.append(building)
    return parts


def unknown_key_part(key: str) -> str | None:
    """The first part of ``key`` Playwright would not press (``Entr`` of
    ``Control+Entr``), or None when every part is a key of the layout."""
    for part in key_parts(key):
        if part not in KEY_NAMES:
            return part
    return None


def unknown_key_sentence(key: str, part: str) -> str:
    """Why ``key`` cannot be pressed, naming its unknown ``part`` and, for a name
    written in the wrong case, the right one."""
    if part == "":
        problem = "it has an empty part (a + at its end?)"
    else:
        problem = f"{part!r} is not a key name"
        known = _BY_FOLDED_NAME.get(part.casefold())
        if known is not None:
            problem += f" (key names are case-sensitive: {known!r})"
    return f"{key!r} is not a key a browser runner can press: {problem}; use {EXAMPLES}"
