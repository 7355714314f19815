"""What the account-wide stream (``GET /stream?type=&status=``) lets through."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

from api.broadcaster import STREAMED, Applied
from api.errors import ApiError
from streams.domain import caserun, flowrun, process
from streams.domain.events import PAYLOAD_TYPES

STATUSES = frozenset((*process.STATUSES, *flowrun.RUN_STATUSES, *caserun.RUN_STATUSES))


def streamed_types() -> frozenset[str]:
    """What ``?type=`` may name: a streamed aggregate, or one of its event types."""
    events = (t for t in PAYLOAD_TYPES if t.split(".", 1)[0] in STREAMED)
    return frozenset((*STREAMED, *events))


def filters(request: Request) -> tuple[frozenset[str], frozenset[str]]:
    """``?type=`` and ``?status=`` (each repeated or comma-separated); ApiError 400 for
    a value no streamed event can have, which would otherwise stream nothing, silently."""

    def values(name: str, known: frozenset[str]) -> frozenset[str]:
        found: set[str] = set()
        for raw in request.query_params.getlist(name):
            found.update(v.strip() for v in raw.split(",") if v.strip())
        unknown = sorted(found - known)
        if unknown:
            raise ApiError(
                400,
                "invalid_query",
                f"{name} {unknown[0]!r} is not one of {', '.join(sorted(known))}",
                name,
            )
        return frozenset(found)

    return values("type", streamed_types()), values("status", STATUSES)


def matcher(
    account: str, types: frozenset[str], statuses: frozenset[str]
) -> Callable[[Applied], bool]:
    """Whether an event goes to the stream: the account's, of a type and status asked."""

    def match(a: Applied) -> bool:
        row = a.row
        if row.account != account:
            return False
        if types and row.type not in types and row.aggregate_type not in types:
            return False
        return not statuses or row.status in statuses

    return match
