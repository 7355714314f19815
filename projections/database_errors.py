"""How a duckdb error leaves the read side: as StoreError, with the duckdb error as its cause.

Shared by :mod:`projections.database` (the node's own file) and
:mod:`projections.database_readonly` (other read models, opened read-only), so the
store, ``verify`` and ``export`` take plain values and never see the driver.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

import duckdb

from projections.errors import StoreError, StoreFull

# How DuckDB says a file could not grow: it puts the system's own words in its message
# ("Could not write file ...: No space left on device") and keeps no errno.
_NO_ROOM = tuple(os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG))


def store_error(message: str, exc: duckdb.Error | OSError) -> StoreError:
    """``message: exc`` as StoreFull when the disk had no room for a write, else StoreError."""
    text = str(exc)
    if any(reason in text for reason in _NO_ROOM):
        return StoreFull(f"{message}: {text}")
    return StoreError(f"{message}: {text}")


@contextlib.contextmanager
def failing(message: str) -> Iterator[None]:
    """Raise a duckdb error of the block as StoreError ``message: error``."""
    try:
        yield
    except duckdb.Error as exc:
        raise store_error(message, exc) from exc
