"""API tokens: ``Authorization: <token>`` or ``Authorization: Bearer <token>``.

Only the sha256 of a token is ever stored (in the ledger, as an account event); a
token resolves to its account through the read model.

A refused request (401) leaves a trace without flooding the log: at most one WARNING
per :data:`REFUSALS_LOG_INTERVAL_S` per node, with how many were refused since the
previous line and the client and reason of the last. The token itself is never logged.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from api.deps import ReadModel
from api.errors import ApiError

log = logging.getLogger(__name__)

TOKEN_PREFIX = "rl_"
_CACHE_SECONDS = 2.0
REFUSALS_LOG_INTERVAL_S = 60.0


def new_token() -> str:
    """A fresh random token; show it once, keep only :func:`token_hash` of it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    account: str
    actor: str


class RefusalLog:
    """Counts refused requests and logs them at most once per ``interval`` seconds: a
    client retrying a revoked token, or a scan of the API, is one line a minute.

    Refusals after a line are counted and reported by the first refusal ``interval``
    seconds later (a burst that then stops is reported with the next one)."""

    def __init__(
        self,
        interval: float = REFUSALS_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.count = 0  # refused since the last line
        self._last_line: float | None = None

    def refused(self, client: str | None, code: str) -> None:
        """One request refused with ``code`` (never the token) from ``client``."""
        self.count += 1
        now = self.clock()
        if self._last_line is not None and now - self._last_line < self.interval:
            return
        since = "" if self._last_line is None else f" in the last {now - self._last_line:.0f} s"
        log.warning(
            "refused %d request%s without a valid API token%s; the last from %s: %s",
            self.count,
            "" if self.count == 1 else "s",
            since,
            client or "an unknown client",
            code,
        )
        self.count = 0
        self._last_line = now


class Authenticator:
    """Resolves a header to a Principal; remembers answers for two seconds.

    The short memory bounds how long a revoked token keeps working on one node.
    """

    def __init__(self, reads: ReadModel, refusals: RefusalLog | None = None) -> None:
        self._reads = reads
        self._cache: dict[str, tuple[float, Principal]] = {}
        self.refusals = refusals or RefusalLog()

    def principal(self, header: str | None, client: str | None = None) -> Principal:
        """The caller ``header`` names; ApiError 401 (counted in :attr:`refusals`, with
        ``client``, the peer's address) when it names none."""
        try:
            return self._resolve(header)
        except ApiError as exc:
            self.refusals.refused(client, exc.code)
            raise

    def _resolve(self, header: str | None) -> Principal:
        if not header:
            raise ApiError(401, "unauthenticated", "send an API token in the Authorization header")
        token = header.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        elif token.lower() == "bearer":  # "Bearer " with its space stripped above
            token = ""
        if not token:
            raise ApiError(401, "unauthenticated", "the Authorization header holds no token")
        digest = token_hash(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
        found = self._reads.token_account(digest)
        if found is None:
            self._cache.pop(digest, None)
            raise ApiError(401, "invalid_token", "this API token is unknown or revoked")
        account, name = found
        principal = Principal(account=account, actor=f"token:{name}")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, principal)
        return principal
