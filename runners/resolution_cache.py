"""A short-lived cache of host resolutions, for the requests of one guarded tab.

On a guarded page every request is checked twice: by the request filter before Chromium
sends it, and by the egress proxy when Chromium connects (``runners.guard``). Without a
cache each check resolves the host again: two lookups per request, many per page, and
the proxy could be handed other addresses than the filter approved. A
:class:`ResolutionCache` wraps the guard's resolver for one tab, so the filter and the
proxy see the same answer for a host: one lookup per host and port within ``ttl_s``.

What is cached is the resolver's answer (the addresses, or the ``TargetInvalid`` it
raised), never the verdict: the guard checks the addresses on every call, so a private
address stays refused, and each refusal names its own target. Entries live ``ttl_s``
seconds from the answer (failures too, so a host that did not resolve is asked again
soon after), and at most ``max_hosts`` are kept, the oldest dropped first. Concurrent
lookups of one host (a page's images, fetched in parallel) share one resolution.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from runners.errors import TargetInvalid

# (host, port) -> the addresses the host resolves to, as text (``runners.guard.Resolver``).
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]
Clock = Callable[[], float]

# A few seconds: long enough for one page load's filter and proxy to share lookups,
# short against any DNS TTL worth honouring.
RESOLUTION_TTL_S = 5.0
# A page rarely talks to more than a few dozen hosts; the bound only stops a hostile page
# (one name per request) from growing the cache without end.
RESOLUTION_CACHE_HOSTS = 256


class _Entry:
    """One host's lookup: in flight, then answered at ``answered_at`` (clock seconds)."""

    __slots__ = ("lookup", "answered_at")

    def __init__(self, lookup: asyncio.Task[tuple[str, ...]]) -> None:
        self.lookup = lookup
        self.answered_at: float | None = None


class ResolutionCache:
    """A resolver (``(host, port) -> addresses``) that asks ``resolve`` at most once per
    host and port within ``ttl_s`` seconds of its answer, keeping ``max_hosts`` hosts.

    Raises what ``resolve`` raises. A ``TargetInvalid`` is remembered like an answer
    (and raised anew to each caller); any other error is not remembered."""

    def __init__(
        self,
        resolve: Resolve,
        *,
        ttl_s: float = RESOLUTION_TTL_S,
        max_hosts: int = RESOLUTION_CACHE_HOSTS,
        clock: Clock = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or max_hosts < 1:
            raise ValueError("ttl_s must be positive and max_hosts at least 1")
        self._resolve = resolve
        self._ttl_s = ttl_s
        self._max_hosts = max_hosts
        self._clock = clock
        self._entries: OrderedDict[tuple[str, int], _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        key = (host, port)
        entry = self._entries.get(key)
        if entry is None or self._expired(entry):
            entry = self._start(key)
        # Shielded: one caller cancelled (its tab closing, a timeout) must not cancel
        # the lookup the others are waiting for.
        try:
            return await asyncio.shield(entry.lookup)
        except TargetInvalid as exc:
            # A fresh exception per caller: the remembered one would pile up tracebacks.
            raise TargetInvalid(*exc.args) from exc

    def _expired(self, entry: _Entry) -> bool:
        answered_at = entry.answered_at
        return answered_at is not None and self._clock() - answered_at >= self._ttl_s

    def _start(self, key: tuple[str, int]) -> _Entry:
        self._entries.pop(key, None)
        self._make_room()
        entry = _Entry(asyncio.ensure_future(self._lookup(*key)))
        self._entries[key] = entry
        entry.lookup.add_done_callback(lambda lookup: self._answered(key, entry))
        return entry

    async def _lookup(self, host: str, port: int) -> tuple[str, ...]:
        return tuple(await self._resolve(host, port))

    def _answered(self, key: tuple[str, int], entry: _Entry) -> None:
        entry.answered_at = self._clock()
        lookup = entry.lookup
        # Retrieved here so a lookup whose callers all went away logs no "never
        # retrieved" warning; what is not TargetInvalid is not remembered.
        if lookup.cancelled():
            forget = True
        else:
            error = lookup.exception()
            forget = error is not None and not isinstance(error, TargetInvalid)
        if forget and self._entries.get(key) is entry:
            del self._entries[key]

    def _make_room(self) -> None:
        """Drop expired entries, then the oldest, until one more host fits."""
        if len(self._entries) < self._max_hosts:
            return
        for key in [key for key, entry in self._entries.items() if self._expired(entry)]:
            del self._entries[key]
        while len(self._entries) >= self._max_hosts:
            self._entries.popitem(last=False)
