"""What the API needs from the node, as protocols: reads, commands, positions, a clock."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from api.broadcaster import Broadcaster
from api.metrics import Family
from api.process_cache import ProcessCache
from streams.bus import Submitted
from streams.domain.case import CaseState
from streams.domain.caserun import CaseRunState
from streams.domain.commands import Command
from streams.domain.flow import FlowState
from streams.domain.flowrun import FlowRunState
from streams.domain.process import ProcessState
from streams.domain.site import SiteState
from streams.serde import Outcome


class PageOf(Protocol):
    """A page of a listing: unpacks as ``count, items``."""

    def __iter__(self) -> Iterator[Any]: ...


class ReadModel(Protocol):
    def get_process(self, account: str, process_id: str) -> ProcessState | None: ...

    def list_processes(
        self,
        account: str,
        *,
        limit: int,
        offset: int,
        type: str | None = None,
        object_id: str | None = None,
        site: str | None = None,
        status: str | None = None,
    ) -> PageOf: ...

    def list_events(
        self,
        account: str,
        aggregate_id: str,
        *,
        limit: int,
        offset: int,
        aggregate_type: str = ...,
    ) -> PageOf: ...

    def events_since(
        self,
        account: str,
        cursor: dict[int, int],
        aggregate_types: Sequence[str],
        limit: int | None = None,
    ) -> list[Any]: ...

    def events_after(
        self, account: str, aggregate_id: str, aggregate_type: str, seq: int, limit: int
    ) -> list[Any]: ...

    def events_until(
        self, account: str, aggregate_id: str, aggregate_type: str, at: int
    ) -> list[Any]: ...

    def last_event(self, account: str, aggregate_id: str, aggregate_type: str) -> Any | None: ...

    def last_positions(self) -> dict[int, int]: ...

    def token_account(self, token_hash: str) -> tuple[str, str] | None: ...

    def get_site(self, account: str, site_id: str) -> SiteState | None: ...

    def list_sites(self, account: str, *, limit: int, offset: int) -> PageOf: ...

    def get_flow(self, account: str, flow_id: str) -> FlowState | None: ...

    def list_flows(self, account: str, *, limit: int, offset: int) -> PageOf: ...

    def get_case(self, account: str, case_id: str) -> CaseState | None: ...

    def list_cases(
        self, account: str, *, limit: int, offset: int, site_id: str | None = None
    ) -> PageOf: ...

    def get_flowrun(self, account: str, flowrun_id: str) -> FlowRunState | None: ...

    def list_flowruns(
        self, account: str, *, limit: int, offset: int, site_id: str | None = None
    ) -> PageOf: ...

    def get_caserun(self, account: str, caserun_id: str) -> CaseRunState | None: ...

    def list_caseruns(
        self, account: str, *, limit: int, offset: int, site_id: str | None = None
    ) -> PageOf: ...


class Commands(Protocol):
    """The command bus (``streams.bus.CommandBus``)."""

    node_id: str

    async def execute(self, cmd: Command, timeout: float) -> Outcome | None: ...

    async def submit(self, cmd: Command) -> tuple[int, int]:
        """Publish without waiting for the decision (``Prefer: respond-async``)."""
        ...

    def status(self, command_id: str) -> Submitted | None:
        """What came of a command answered 202 (None: not remembered by this node)."""
        ...

    async def decided(self, command_id: str, timeout: float) -> Submitted | None:
        """:meth:`status` once decided, waiting up to ``timeout`` s for the decision."""
        ...


class Positions(Protocol):
    async def wait_for(self, partition: int, offset: int, timeout: float) -> bool: ...

    async def wait_for_end(self, timeout: float) -> bool: ...

    def applied(self) -> dict[int, int]:
        """The next offset to apply per partition (everything before it is committed)."""
        ...


def _now_micros() -> int:
    return time.time_ns() // 1000


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class ApiDeps:
    reads: ReadModel
    commands: Commands
    positions: Positions
    clock: Callable[[], int] = _now_micros
    new_id: Callable[[], str] = _new_id
    max_body_bytes: int = 1_048_576
    command_timeout_s: float = 10.0
    wait_timeout_s: float = 10.0
    # The node's metric families (projector, identity); the app adds its own.
    metrics: Callable[[], Iterable[Family]] = field(default=lambda: ())
    # Committed Process states for reads by id; None reads the store every time.
    process_cache: ProcessCache | None = None
    # Live events for the SSE streams; None: streams replay the store and then end.
    broadcaster: Broadcaster | None = None
    # Artifact bytes and media type by sha256 hex; None when missing (or no store).
    artifacts: Callable[[str], tuple[bytes, str] | None] | None = None
    sse_window_s: float = 25.0
    sse_heartbeat_s: float = 5.0
    sse_max_streams_per_account: int = 100
    sse_send_timeout_s: float = 10.0
    sse_backlog_page: int = 500
