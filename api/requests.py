"""Reading a request: the JSON body, pagination, and read-your-writes options."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import URL
from starlette.requests import Request

from api.errors import ApiError

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
MAX_WAIT_S = 60.0
_INTEGER = re.compile(r"-?[0-9]{1,20}")


async def json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object; {} for an empty body.

    Raises ApiError 413 (too large), 415 (not JSON), 400 (malformed, or not an object).
    """
    declared = ctype_raw = None
    for name, value in request.scope["headers"]:  # one pass over the raw headers
        if name == b"content-length":
            declared = value
        elif name == b"content-type":
            ctype_raw = value
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "body_too_large", f"the body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, "body_too_large", f"the body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    ctype = (ctype_raw or b"").decode("latin-1").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def refuse_unknown(
    body: Mapping[str, Any], known: Collection[str], *, within: str | None = None
) -> None:
    """ApiError 422 ``invalid_field`` on the first field of ``body`` not in ``known``.

    Without it a misspelt field (``confgs`` for ``configs``) is dropped without a word
    and the command carried out as if it were absent. Only objects of a fixed shape are
    checked; ``within`` names such an object nested in the body (``configs``,
    ``steps[2]``), so the error's ``field`` is the path of the unknown one.
    """
    for name in body:
        if name in known:
            continue
        label = _field_label(name)
        path = f"{within}.{label}" if within else label
        if not known:
            message = f"unknown field {path!r}; this request takes no fields"
        else:
            of = f" of {within}" if within else ""
            message = f"unknown field {path!r}; known fields{of}: {', '.join(known)}"
        raise ApiError(422, "invalid_field", message, path)


MAX_FIELD_LABEL = 100


def _field_label(name: str) -> str:
    """How an unknown field is named back: ``""`` for the empty name (an error's
    ``field`` is never empty), a long one cut (it is echoed in the message too)."""
    if not name:
        return '""'
    return name if len(name) <= MAX_FIELD_LABEL else name[:MAX_FIELD_LABEL] + "…"


def one_value(name: str, values: Sequence[str]) -> str | None:
    """The value of query parameter ``name`` from all its ``values``
    (``query_params.getlist``): None when absent or empty; ApiError 400
    ``invalid_query`` when it is given more than once (Starlette would keep the last,
    silently)."""
    if len(values) > 1:
        raise ApiError(
            400, "invalid_query", f"{name} is given {len(values)} times; give it once", name
        )
    return values[0] if values and values[0] else None


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = one_value(name, request.query_params.getlist(name))
    if raw is None:
        return default
    # Plain ASCII digits only: int() also reads "1_000", "+5", " 5" and other scripts'
    # digits, and the next/previous links would then spell the page differently.
    if _INTEGER.fullmatch(raw) is None:
        raise ApiError(400, "invalid_query", f"{name} must be a whole number", name)
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(400, "invalid_query", f"{name} must be between {low} and {high}", name)
    return value


def page_of(request: Request) -> Page:
    return Page(
        limit=_int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_int_param(request, "offset", 0, 0, 10**12),
    )


def page_json(request: Request, page: Page, count: int, results: list[Any]) -> dict[str, Any]:
    """The paginated shape: ``count``, ``next``, ``previous`` (absolute URLs), ``results``."""
    url: URL = request.url
    nxt = None
    if page.offset + page.limit < count:
        nxt = str(url.include_query_params(limit=page.limit, offset=page.offset + page.limit))
    prev = None
    if page.offset > 0:
        back = max(0, min(page.offset - page.limit, count - page.limit))
        prev = str(url.include_query_params(limit=page.limit, offset=back))
    return {"count": count, "next": nxt, "previous": prev, "results": results}


_PREFER_WAIT = re.compile(r"(?:^|[;,])\s*wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
# RFC 7240: preferences are comma-separated; a token is case-insensitive and may carry
# parameters after a ';'.
_PREFER_ASYNC = re.compile(r"(?:^|,)\s*respond-async\s*(?:[;,]|$)", re.IGNORECASE)
_POSITION = re.compile(r"^(\d+):(\d+)$")


@dataclass(frozen=True)
class Wait:
    """Read-your-writes: whether to wait for the node's projection, and for how long.

    ``?wait=true`` (or ``Prefer: wait=N``, N seconds) waits; ``?after=P:O`` names the
    position to wait for (a command's ``Ledger-Position``); without it a read waits
    for everything in the ledger when the request arrived.

    ``respond_async`` (``Prefer: respond-async``) asks a command to answer ``202`` as
    soon as it is durable in Kafka, without waiting for the decider.
    """

    enabled: bool
    timeout: float
    after: tuple[int, int] | None = None
    respond_async: bool = False


def wait_of(request: Request, default_timeout: float) -> Wait:
    """The request's read-your-writes and ``Prefer`` options; ApiError 400 for a bad
    ``wait`` or ``after``. Only what is present is parsed: commands come in by the
    thousand per second, most with neither a query string nor a ``Prefer`` header."""
    has_query = bool(request.scope.get("query_string"))
    prefer_header = ",".join(request.headers.getlist("prefer"))  # may be sent repeatedly
    if not has_query and not prefer_header:
        return Wait(enabled=False, timeout=default_timeout)
    enabled = False
    timeout = default_timeout
    after = None
    if has_query:
        params = request.query_params
        raw = params.get("wait", "").lower()
        if raw not in ("", "true", "false", "1", "0"):
            raise ApiError(400, "invalid_query", "wait must be true or false", "wait")
        enabled = raw in ("true", "1")
        raw_after = params.get("after")
        if raw_after:
            match = _POSITION.match(raw_after)
            if match is None:
                raise ApiError(400, "invalid_query", "after must be PARTITION:OFFSET", "after")
            after = (int(match.group(1)), int(match.group(2)))
            enabled = True
    respond_async = False
    if prefer_header == "respond-async":  # the common form, without a regex
        respond_async = True
    elif prefer_header:
        prefer = _PREFER_WAIT.search(prefer_header)
        if prefer is not None:
            enabled = True
            timeout = min(float(prefer.group(1)), MAX_WAIT_S)
        respond_async = _PREFER_ASYNC.search(prefer_header) is not None
    return Wait(enabled=enabled, timeout=timeout, after=after, respond_async=respond_async)
