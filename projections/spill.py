"""States a replay fold no longer keeps in memory, on disk, so memory stays bounded.

A replay keeps the states of the aggregates it touched lately in memory and moves the
others here (and to the new read model). An event of a moved aggregate that comes later
(a retry long after a failure, a duplicate) finds its state here: ``load`` is the
fold's loader for cache misses, as the store is for the live projector.

SQLite, not DuckDB: this is a key-value lookup of a few thousand keys per batch in the
worker process, while the one DuckDB file of the replay belongs to the main process.
States are stored as nested tuples of their fields (``marshal``): pickling a slotted
dataclass goes through ``dataclasses.fields`` per object and cost ten times more.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import marshal
import sqlite3
from collections.abc import Callable, Collection, Mapping
from functools import cache
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import Any

from projections.errors import StoreError
from projections.fold import State, StreamId

_SEP = "\x1f"  # between aggregate type and id in a key (neither contains it)


def _key(stream: StreamId) -> str:
    return f"{stream[0]}{_SEP}{stream[1]}"


_PLAIN = frozenset({str, int, float, bool, type(None), bytes})


@cache
def _fields_of(cls: type) -> tuple[str, Callable[[Any], tuple[Any, ...]]]:
    """A dataclass's name for :func:`_class` and a getter of all its fields at once."""
    found = dataclasses.fields(cls)
    if not all(f.init for f in found):
        raise TypeError(f"{cls.__qualname__} has a field its __init__ does not take")
    names = [f.name for f in found]
    getter = attrgetter(*names) if len(names) > 1 else lambda v: (getattr(v, names[0]),)
    return f"{cls.__module__}:{cls.__qualname__}", getter


@cache
def _class(name: str) -> type:
    module, _, qualname = name.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def flatten(value: Any) -> Any:
    """``value`` with every dataclass as a list ``[class, *fields]`` (tuples stay tuples;
    the domain's frozen states hold no lists), for ``marshal``."""
    cls = type(value)
    if cls in _PLAIN:
        return value
    if cls is tuple:
        return tuple(map(flatten, value))
    if dataclasses.is_dataclass(cls):
        name, getter = _fields_of(cls)
        return [name, *map(flatten, getter(value))]
    return value


def unflatten(value: Any) -> Any:
    """The inverse of :func:`flatten`."""
    cls = type(value)
    if cls in _PLAIN:
        return value
    if cls is tuple:
        return tuple(map(unflatten, value))
    if cls is list:
        return _class(value[0])(*map(unflatten, value[1:]))
    return value


class StateSpill:
    """Evicted states by stream id in a scratch SQLite file (``":memory:"`` in tests).

    Not shared between processes: each replay worker has its own. Raises StoreError
    when the file cannot be written or read.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        try:
            # One user at a time, but maybe from different threads (asyncio.to_thread).
            con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # A scratch file: a crash loses the replay anyway, so no journal, no fsync.
            con.execute("PRAGMA journal_mode = OFF")
            con.execute("PRAGMA synchronous = OFF")
            con.execute(
                "CREATE TABLE IF NOT EXISTS states (key TEXT PRIMARY KEY, state BLOB NOT NULL) "
                "WITHOUT ROWID"
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the replay spill {self.path}: {exc}") from exc
        self._con: sqlite3.Connection | None = con
        self.stored = 0  # states written (a state written twice counts twice)

    def put(self, states: Mapping[StreamId, State]) -> None:
        """Store ``states``, replacing what an earlier eviction stored for the same ids."""
        if not states:
            return
        rows = [(_key(k), marshal.dumps(flatten(s))) for k, s in states.items()]
        try:
            self._connection.executemany("INSERT OR REPLACE INTO states VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            raise StoreError(f"writing to the replay spill {self.path} failed: {exc}") from exc
        self.stored += len(rows)

    def load(self, keys: Collection[StreamId]) -> dict[StreamId, State]:
        """The stored states of those of ``keys`` that were evicted; absent keys are new."""
        if not keys:
            return {}
        wanted = {_key(k): k for k in keys}
        try:
            found = self._connection.execute(
                "SELECT s.key, s.state FROM states s JOIN json_each(?) j ON s.key = j.value",
                (json.dumps(list(wanted)),),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"reading the replay spill {self.path} failed: {exc}") from exc
        return {wanted[key]: unflatten(marshal.loads(blob)) for key, blob in found}

    @property
    def _connection(self) -> sqlite3.Connection:
        if self._con is None:
            raise StoreError(f"the replay spill {self.path} is closed")
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> StateSpill:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
