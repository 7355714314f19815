"""API tokens: ``Authorization: <token>`` or ``Authorization: Bearer <token>``.

Only the sha256 of a token is ever stored (in the ledger, as an account event); a
token resolves to its account through the read model.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from api.deps import ReadModel
from api.errors import ApiError

TOKEN_PREFIX = "rl_"
_CACHE_SECONDS = 2.0


def new_token() -> str:
    """A fresh random token; show it once, keep only :func:`token_hash` of it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    account: str
    actor: str


class Authenticator:
    """Resolves a header to a Principal; remembers answers for two seconds.

    The short memory bounds how long a revoked token keeps working on one node.
    """

    def __init__(self, reads: ReadModel) -> None:
        self._reads = reads
        self._cache: dict[str, tuple[float, Principal]] = {}

    def principal(self, header: str | None) -> Principal:
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
