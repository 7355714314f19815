"""How a duckdb error leaves the read side: as StoreError, with the duckdb error as its cause.

Shared by :mod:`projections.database` (the node's own file) and
:mod:`projections.database_readonly` (other read models, opened read-only), so the
store, ``verify`` and ``export`` take plain values and never see the driver.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb

from projections.errors import StoreError


@contextlib.contextmanager
def failing(message: str) -> Iterator[None]:
    """Raise a duckdb error of the block as StoreError ``message: error``."""
    try:
        yield
    except duckdb.Error as exc:
        raise StoreError(f"{message}: {exc}") from exc
