"""How a runledger process logs: the level, the line format, quiet libraries, no tokens.

Configured once by the CLI (:func:`configure`). The level comes from ``-v`` (DEBUG) or
``RUNLEDGER_LOG_LEVEL`` (default INFO); ``runledger up`` hands the level it was given to
its children (:func:`child_level`), so ``runledger -v up`` makes every service verbose.
Libraries speak at WARNING only: at INFO they log every connection, group join and
HTTP request, which buries the lines that say what the ledger did. With DEBUG the HTTP
client's request lines show too; aiokafka's and faust's debug output (every fetch) never.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping

from runledger.settings import PREFIX, SettingsError, text_setting

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Chatty at INFO; WARNING and above still show (a produce retried, a broker lost).
QUIET_LIBRARIES = ("aiokafka", "faust", "mode", "uvicorn")
# The HTTP client: its INFO line is every request's full URL (a Slack webhook's URL is
# its secret), so only with DEBUG.
HTTP_CLIENT = ("httpx", "httpcore")
# An API token (runledger.tokens): "rl_" and 43 URL-safe base64 characters. Longer runs
# are matched too, so that a token inside a longer word is still caught.
TOKEN = re.compile(r"rl_[A-Za-z0-9_-]{20,}")
REDACTED = "rl_[redacted]"

# Libraries that log every attempt of a retry loop: with the broker away, aiokafka says
# "Unable connect to node" a few hundred times a second in a runner. One line of each
# kind per window is enough to say so (RepeatedLines).
RETRYING_LIBRARIES = ("aiokafka",)
REPEAT_WINDOW_S = 30.0
MAX_KINDS = 1_000

_configured: str | None = None


def level_of(env: Mapping[str, str], verbose: bool) -> int:
    """The level ``-v`` or ``RUNLEDGER_LOG_LEVEL`` asks for (INFO when neither);
    SettingsError for a value that is not debug, info, warning or error."""
    if verbose:
        return logging.DEBUG
    raw = text_setting(env, "LOG_LEVEL")
    if raw is None:
        return logging.INFO
    try:
        return LEVELS[raw.lower()]
    except KeyError:
        raise SettingsError(
            f"{PREFIX}LOG_LEVEL must be one of {', '.join(LEVELS)}, got {raw!r}"
        ) from None


class RedactTokens(logging.Filter):
    """Replaces API tokens in a record's message and traceback with ``rl_[redacted]``.

    No code logs a token on purpose; this keeps one out of the logs when a library or
    an exception message carries it (a header echoed in an error, a URL with a query).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if TOKEN.search(message):
            record.msg, record.args = TOKEN.sub(REDACTED, message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and TOKEN.search(record.exc_text):
            record.exc_text = TOKEN.sub(REDACTED, record.exc_text)
        return True


class RepeatedLines(logging.Filter):
    """Lets through one line of a kind per ``window_s`` from the loggers under
    ``prefixes``; the first line after that says how many like it were left out.

    A kind is the logger, the level and the message's template, so a broker that stays
    away costs a few lines a minute instead of thousands, and a new kind of error still
    shows at once.
    """

    def __init__(
        self,
        prefixes: tuple[str, ...] = RETRYING_LIBRARIES,
        window_s: float = REPEAT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes):
            return True
        kind = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        shown_at, left_out = self._seen.get(kind, (None, 0))
        if shown_at is not None and now - shown_at < self._window_s:
            self._seen[kind] = (shown_at, left_out + 1)
            return False
        if len(self._seen) >= MAX_KINDS:
            self._seen.clear()  # messages with their values in the template: start over
        self._seen[kind] = (now, 0)
        if left_out:
            record.msg = (
                f"{record.msg} [{left_out} more like it in the last {self._window_s:g} s left out]"
            )
        return True


def configure(level: int, *, tool: bool) -> None:
    """Log at ``level`` to stderr in :data:`FORMAT`, libraries quiet, tokens redacted.

    ``tool``: a command that does one thing and exits (``audit``, ``replay``...), whose
    user wants one line about a broker that cannot be reached, not aiokafka's warning
    for every attempt: aiokafka is silenced there unless DEBUG.
    """
    global _configured
    logging.basicConfig(level=level, format=FORMAT)
    debug = level <= logging.DEBUG
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in HTTP_CLIENT:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    if tool and not debug:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    redact = RedactTokens()
    repeated = RepeatedLines()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactTokens) for f in handler.filters):
            handler.addFilter(redact)
        if not debug and not any(isinstance(f, RepeatedLines) for f in handler.filters):
            handler.addFilter(repeated)
    _configured = logging.getLevelName(level)


def child_level() -> str | None:
    """The level name :func:`configure` set, for ``RUNLEDGER_LOG_LEVEL`` of child
    processes; None when logging was not configured here."""
    return _configured
