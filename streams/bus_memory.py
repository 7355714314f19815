"""What the command bus remembers of commands it does not wait for (streams/bus.py):
a submitted command and its outcome (:class:`Submitted`), the decided outcomes of other
nodes' submissions (:class:`OtherNodesOutcomes`), and the callers waiting for a
decision (:class:`DecisionWaiters`). Apart from the bus so that it reads as the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace

from schemas import Codec, DecodeError
from streams import serde

log = logging.getLogger("streams.bus")


@dataclass(slots=True)
class Submitted:
    """A command published without waiting, and its outcome once the decider sent it
    (without its ``state_json``: only the verdict and the event positions are kept)."""

    command_id: str
    account: str
    aggregate_type: str
    aggregate_id: str
    command: str
    outcome: serde.Outcome | None = None
    raw: bytes | None = None  # the outcome's bytes, until someone asks for it


class OtherNodesOutcomes:
    """Outcomes of the commands other nodes submitted, kept as bytes and decoded when
    asked for: the newest ``limit`` of :meth:`keep` (insertion-ordered, oldest first)."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self._kept: dict[str, Submitted | bytes] = {}

    def keep(self, command_id: str, raw: bytes, limit: int) -> None:
        self._kept.pop(command_id, None)
        self._kept[command_id] = raw
        if len(self._kept) > limit:
            del self._kept[next(iter(self._kept))]

    def get(self, command_id: str) -> Submitted | None:
        kept = self._kept.get(command_id)
        if not isinstance(kept, bytes):
            return kept
        try:
            outcome = serde.decode_outcome(self.codec, kept)
        except DecodeError:
            log.warning("undecodable outcome of command %s", command_id)
            del self._kept[command_id]
            return None
        entry = Submitted(
            command_id,
            outcome.account,
            outcome.aggregate_type,
            outcome.aggregate_id,
            outcome.command,
            outcome=replace(outcome, state_json=None),
        )
        self._kept[command_id] = entry
        return entry


class DecisionWaiters:
    """Callers waiting for a command's outcome to be read; false when there are none,
    so the bus's reading loop skips :meth:`wake` cheaply."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}

    def __bool__(self) -> bool:
        return bool(self._waiting)

    async def wait(self, command_id: str, timeout: float) -> None:
        """Return once :meth:`wake` was called for ``command_id``, or after ``timeout``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiting.setdefault(command_id, set())
        waiters.add(future)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            waiters.discard(future)
            if not waiters and self._waiting.get(command_id) is waiters:
                del self._waiting[command_id]

    def wake(self, command_id: str) -> None:
        for future in self._waiting.pop(command_id, ()):
            if not future.done():
                future.set_result(None)
