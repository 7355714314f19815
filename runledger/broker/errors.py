"""What goes wrong with a broker, said so that the reader knows what to do."""

from __future__ import annotations

import os
import re
from pathlib import Path


class BrokerError(Exception):
    """No broker could be fetched, started or reached; the message says why and what to do."""


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of a tool's output, colour codes removed, for an error message."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)  # Maven colours its output even with -B
    return "\n".join(plain.rstrip().splitlines()[-lines:])


def read_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (read from its last 64 KiB), or a note that
    it does not exist."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
            return tail(f.read().decode("utf-8", "replace"), lines)
    except FileNotFoundError:
        return f"({path} does not exist)"
