"""The Site aggregate: a web site (its http/https URL) that flows and cases run against."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

from streams.domain import commands as c
from streams.domain import events as e
from streams.domain.commands import InvalidCommand
from streams.domain.definition import require_live, require_new
from streams.domain.envelope import event
from streams.domain.rejection import INVALID, Rejected

AGGREGATE = "site"
MAX_URL = 2_000


@dataclass(frozen=True, slots=True)
class CreateSite(c.Body):
    NAME: ClassVar[str] = "site.create"
    site_url: str


@dataclass(frozen=True, slots=True)
class DeleteSite(c.Body):
    NAME: ClassVar[str] = "site.delete"


def http_url(
    value: Any, field: str, *, required: bool = True, credentials: bool = True
) -> str | None:
    """``value`` when it is an absolute http(s) URL with a host; InvalidCommand otherwise.
    ``credentials=False`` also refuses a ``user:password@`` part: a Site's URL is shown
    by every read of the Site and its runs, and the ledger keeps it forever."""
    if value is None or value == "":
        if required:
            raise InvalidCommand(field, f"{field} is required")
        return None
    if not isinstance(value, str):
        raise InvalidCommand(field, f"{field} must be a string")
    if len(value) > MAX_URL:
        raise InvalidCommand(field, f"{field} is longer than {MAX_URL} characters")
    if value != value.strip() or any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise InvalidCommand(field, f"{field} must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise InvalidCommand(field, f"{field} is not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidCommand(field, f"{field} must be an http or https URL")
    if not parts.hostname:
        raise InvalidCommand(field, f"{field} must name a host")
    if not credentials and "@" in parts.netloc:
        raise InvalidCommand(
            field, f"{field} must not carry credentials (user:password@): the ledger keeps them"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidCommand(field, f"{field} is not valid Unicode text") from exc
    return value


BODY_PARSERS: dict[str, Callable[[Mapping[str, Any]], c.Body]] = {
    CreateSite.NAME: lambda data: CreateSite(
        http_url(data.get("site_url"), "site_url", credentials=False) or ""
    ),
    DeleteSite.NAME: lambda data: DeleteSite(),
}


@dataclass(frozen=True, slots=True)
class SiteState:
    """A Site after its events; times are microseconds, UTC."""

    id: str
    account: str
    site_url: str
    created_by: str
    time_created: int
    seq: int = 0
    deleted: bool = False
    time_deleted: int | None = None


def evolve(state: SiteState | None, ev: e.Event) -> SiteState:
    """The Site after ``ev``; ValueError for an event that cannot follow ``state``."""
    data = ev.data
    if state is None:
        if not isinstance(data, e.SiteCreated):
            raise ValueError(f"{ev.type} cannot be the first event of a site")
        return SiteState(
            ev.aggregate_id, ev.account, data.site_url, ev.actor, ev.occurred_at, ev.seq
        )
    if isinstance(data, e.SiteDeleted):
        return replace(state, seq=ev.seq, deleted=True, time_deleted=ev.occurred_at)
    raise ValueError(f"{ev.type} cannot follow seq {state.seq} of site {state.id}")


def decide(state: SiteState | None, cmd: c.Command) -> list[e.Event]:
    """The events of a site command; Rejected when it does not fit ``state``."""
    body = cmd.body
    if isinstance(body, CreateSite):
        require_new(AGGREGATE, state, cmd)
        return [event(AGGREGATE, 1, cmd, e.SiteCreated(body.site_url))]
    if isinstance(body, DeleteSite):
        live: SiteState = require_live(AGGREGATE, state, cmd)
        return [event(AGGREGATE, live.seq + 1, cmd, e.SiteDeleted())]
    raise Rejected(INVALID, f"{cmd.name} is not a site command")
