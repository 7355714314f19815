"""Why a command does not fit the state it meets."""

from __future__ import annotations

NOT_FOUND = "not_found"
INVALID_STATE = "invalid_state"
ALREADY_EXISTS = "already_exists"
INVALID = "invalid"


class Rejected(Exception):
    """``decide`` refuses a command; ``code`` is machine-readable, the message a sentence.

    Codes: ``not_found`` (no such aggregate for this account), ``invalid_state`` and
    ``already_exists`` (the command does not fit the current state), ``invalid``
    (a field of the command is unusable; ``field`` names it).
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
