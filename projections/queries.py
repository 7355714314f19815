"""What the API reads, as typed values: Processes, their events, token owners.

Every read is scoped by account, so another account's Process is simply not found.
Calls block (DuckDB does the work): call them from a worker thread
(``starlette.concurrency.run_in_threadpool`` or ``asyncio.to_thread``); each thread
reads through its own cursor. StoreError passes through.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from projections import rows, tables
from projections.store import Store
from streams.domain.case import CaseState
from streams.domain.caserun import CaseRunState
from streams.domain.flow import FlowState
from streams.domain.flowrun import FlowRunState
from streams.domain.process import AGGREGATE, ProcessState, StepState
from streams.domain.site import SiteState

T = TypeVar("T")

_PROCESS_COLUMNS = tables.PROCESSES.select_list("p")
_EVENT_COLUMNS = tables.EVENTS.select_list()
# Above every seq: the bound of an as-of read when no event is later than its time.
_NO_SEQ = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing: ``count`` matches in all, ``items`` on this page.

    Unpacks as ``count, items = page``.
    """

    count: int
    items: list[T]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.count, self.items))


class TokenOwner(NamedTuple):
    account: str
    name: str


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")


class Queries:
    """The read API over a node's store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get_process(self, account: str, process_id: str) -> ProcessState | None:
        """The Process with its steps; None when absent, deleted or of another account."""
        with self.store.snapshot():  # the row and its steps from the same commit
            found = self.store.query(
                f"SELECT {_PROCESS_COLUMNS} FROM processes p "
                "WHERE p.id = ? AND p.account = ? AND NOT p.deleted",
                (process_id, account),
            )
            if not found:
                return None
            return self._with_steps(found)[0]

    def list_processes(
        self,
        account: str,
        *,
        limit: int,
        offset: int,
        type: str | None = None,  # noqa: A002 - the API's filter is called type
        object_id: str | None = None,
        site: str | None = None,
        status: str | None = None,
    ) -> Page[ProcessState]:
        """The account's Processes (not deleted) matching every given filter, oldest first
        (``time_created``, then ``id``); ValueError for a negative limit or offset."""
        _check_page(limit, offset)
        where = ["p.account = ?", "NOT p.deleted"]
        params: list[Any] = [account]
        for column, value in (
            ("type", type),
            ("object_id", object_id),
            ("site", site),
            ("status", status),
        ):
            if value is not None:
                where.append(f"p.{column} = ?")
                params.append(value)
        condition = " AND ".join(where)
        with self.store.snapshot():  # count, rows and steps from the same commit
            count, found = self._counted(
                f"processes p WHERE {condition}", _PROCESS_COLUMNS, "p.time_created, p.id",
                params, limit, offset,
            )  # fmt: skip
            return Page(count, self._with_steps(found))

    def list_events(
        self,
        account: str,
        aggregate_id: str,
        *,
        limit: int,
        offset: int,
        aggregate_type: str = AGGREGATE,
    ) -> Page[rows.EventRow]:
        """The account's events of one aggregate in seq order (a deleted Process's too)."""
        _check_page(limit, offset)
        condition = "account = ? AND aggregate_type = ? AND aggregate_id = ?"
        params = [account, aggregate_type, aggregate_id]
        with self.store.snapshot():
            count, found = self._counted(
                f"events WHERE {condition}", _EVENT_COLUMNS, "seq", params, limit, offset
            )
        return Page(count, [rows.event_from_row(r) for r in found])

    def events_after(
        self, account: str, aggregate_id: str, aggregate_type: str, seq: int, limit: int
    ) -> list[rows.EventRow]:
        """At most ``limit`` of the account's events of one aggregate after ``seq``, in
        seq order: a stream's next backlog page. Unlike ``list_events`` it counts
        nothing and skips nothing, so its cost follows the rows it returns, not the
        aggregate's whole history; ValueError for a negative seq or limit."""
        if seq < 0 or limit < 0:
            raise ValueError("seq and limit must not be negative")
        found = self.store.query(
            f"SELECT {_EVENT_COLUMNS} FROM events "
            "WHERE account = ? AND aggregate_type = ? AND aggregate_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            [account, aggregate_type, aggregate_id, seq, limit],
        )
        return [rows.event_from_row(r) for r in found]

    def events_until(
        self, account: str, aggregate_id: str, aggregate_type: str, at: int
    ) -> list[rows.EventRow]:
        """The account's events of one aggregate that an as-of fold at ``at``
        (microseconds) reads: in seq order, up to the first whose ``occurred_at`` is
        later than ``at`` (``history.state_as_of`` stops there, even if a later seq has
        an earlier time). Reads only that prefix, not the whole history."""
        where = "account = ? AND aggregate_type = ? AND aggregate_id = ?"
        key = [account, aggregate_type, aggregate_id]
        found = self.store.query(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE {where} AND seq < coalesce("
            f"(SELECT min(seq) FROM events WHERE {where} AND epoch_us(occurred_at) > ?), "
            f"{_NO_SEQ}) ORDER BY seq",
            [*key, *key, at],
        )
        return [rows.event_from_row(r) for r in found]

    def last_event(
        self, account: str, aggregate_id: str, aggregate_type: str
    ) -> rows.EventRow | None:
        """The account's newest event of one aggregate (highest seq); None if it has none."""
        found = self.store.query(
            f"SELECT {_EVENT_COLUMNS} FROM events "
            "WHERE account = ? AND aggregate_type = ? AND aggregate_id = ? "
            "ORDER BY seq DESC LIMIT 1",
            [account, aggregate_type, aggregate_id],
        )
        return rows.event_from_row(found[0]) if found else None

    def events_of(self, aggregate_id: str) -> list[rows.EventRow]:
        """Every event of every aggregate with this id, any account (for tools)."""
        found = self.store.query(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE aggregate_id = ? "
            "ORDER BY aggregate_type, seq",
            (aggregate_id,),
        )
        return [rows.event_from_row(r) for r in found]

    def events_since(
        self,
        account: str,
        cursor: dict[int, int],
        aggregate_types: Sequence[str],
        limit: int | None = None,
    ) -> list[rows.EventRow]:
        """The account's events of ``aggregate_types`` past ``cursor`` (per partition, the
        last offset already seen; a partition it lacks is read from its start), in
        (partition, offset) order; the first ``limit`` of them when given (a page: the
        next one starts from a cursor moved past this one's rows)."""
        if not aggregate_types:
            return []
        marks = ", ".join("?" for _ in aggregate_types)
        seen = [f'(partition = {int(p)} AND "offset" <= {int(o)})' for p, o in cursor.items()]
        condition = f"account = ? AND aggregate_type IN ({marks})"
        if seen:
            condition += f" AND NOT ({' OR '.join(seen)})"
        found = self.store.query(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE {condition} "
            f'ORDER BY partition, "offset"{"" if limit is None else f" LIMIT {int(limit)}"}',
            [account, *aggregate_types],
        )
        return [rows.event_from_row(r) for r in found]

    def last_positions(self) -> dict[int, int]:
        """The last offset of an applied event per partition (none yet: absent)."""
        found = self.store.query('SELECT partition, max("offset") FROM events GROUP BY partition')
        return {int(p): int(o) for p, o in found}

    # -- definitions: Sites, Flows, Cases ------------------------------------------------

    def _get_definition(self, cls: type[T], account: str, id_: str) -> T | None:
        table = rows.DEFINITION_TABLES[cls]
        found = self.store.query(
            f"SELECT {table.select_list()} FROM {table.name} "
            "WHERE id = ? AND account = ? AND NOT deleted",
            (id_, account),
        )
        return cls(*found[0]) if found else None

    def _list_definitions(
        self, cls: type[T], account: str, limit: int, offset: int, site_id: str | None = None
    ) -> Page[T]:
        _check_page(limit, offset)
        table = rows.DEFINITION_TABLES[cls]
        condition = "account = ? AND NOT deleted"
        params: list[Any] = [account]
        if site_id is not None:
            condition += " AND site_id = ?"
            params.append(site_id)
        with self.store.snapshot():
            count, found = self._counted(
                f"{table.name} WHERE {condition}", table.select_list(), "time_created, id",
                params, limit, offset,
            )  # fmt: skip
        return Page(count, [cls(*row) for row in found])

    def get_site(self, account: str, site_id: str) -> SiteState | None:
        """The Site; None when absent, deleted or of another account."""
        return self._get_definition(SiteState, account, site_id)

    def list_sites(self, account: str, *, limit: int, offset: int) -> Page[SiteState]:
        """The account's Sites (not deleted), oldest first; ValueError for a negative page."""
        return self._list_definitions(SiteState, account, limit, offset)

    def get_flow(self, account: str, flow_id: str) -> FlowState | None:
        """The Flow; None when absent, deleted or of another account."""
        return self._get_definition(FlowState, account, flow_id)

    def list_flows(self, account: str, *, limit: int, offset: int) -> Page[FlowState]:
        """The account's Flows (not deleted), oldest first; ValueError for a negative page."""
        return self._list_definitions(FlowState, account, limit, offset)

    def get_case(self, account: str, case_id: str) -> CaseState | None:
        """The Case; None when absent, deleted or of another account."""
        return self._get_definition(CaseState, account, case_id)

    def list_cases(
        self, account: str, *, limit: int, offset: int, site_id: str | None = None
    ) -> Page[CaseState]:
        """The account's Cases (not deleted), of one Site if ``site_id``, oldest first."""
        return self._list_definitions(CaseState, account, limit, offset, site_id)

    # -- runs: FlowRuns, CaseRuns ----------------------------------------------------------

    def _get_run(self, table: tables.Table, account: str, id_: str) -> tuple[Any, ...] | None:
        found = self.store.query(
            f"SELECT {table.select_list()} FROM {table.name} "
            "WHERE id = ? AND account = ? AND NOT deleted",
            (id_, account),
        )
        return found[0] if found else None

    def _list_runs(
        self, table: tables.Table, account: str, limit: int, offset: int, site_id: str | None
    ) -> tuple[int, list[tuple[Any, ...]]]:
        _check_page(limit, offset)
        condition = "account = ? AND NOT deleted"
        params: list[Any] = [account]
        if site_id is not None:
            condition += " AND site_id = ?"
            params.append(site_id)
        with self.store.snapshot():
            return self._counted(
                f"{table.name} WHERE {condition}", table.select_list(), "time_created, id",
                params, limit, offset,
            )  # fmt: skip

    def get_flowrun(self, account: str, flowrun_id: str) -> FlowRunState | None:
        """The FlowRun with its nodes and logs; None when absent, deleted or another
        account's."""
        row = self._get_run(tables.FLOWRUNS, account, flowrun_id)
        return None if row is None else rows.flowrun_from_row(row)

    def list_flowruns(
        self, account: str, *, limit: int, offset: int, site_id: str | None = None
    ) -> Page[FlowRunState]:
        """The account's FlowRuns (not deleted), of one Site if ``site_id``, oldest first
        (``time_created``, then ``id``); ValueError for a negative limit or offset."""
        count, found = self._list_runs(tables.FLOWRUNS, account, limit, offset, site_id)
        return Page(count, [rows.flowrun_from_row(r) for r in found])

    def get_caserun(self, account: str, caserun_id: str) -> CaseRunState | None:
        """The CaseRun with its steps; None when absent, deleted or another account's."""
        row = self._get_run(tables.CASERUNS, account, caserun_id)
        return None if row is None else rows.caserun_from_row(row)

    def list_caseruns(
        self, account: str, *, limit: int, offset: int, site_id: str | None = None
    ) -> Page[CaseRunState]:
        """The account's CaseRuns (not deleted), of one Site if ``site_id``, oldest first."""
        count, found = self._list_runs(tables.CASERUNS, account, limit, offset, site_id)
        return Page(count, [rows.caserun_from_row(r) for r in found])

    def token_account(self, token_hash: str) -> TokenOwner | None:
        """Whose token this is (account, token name); None if unknown or revoked."""
        found = self.store.query(
            "SELECT account, name FROM tokens WHERE token_hash = ? AND NOT revoked", (token_hash,)
        )
        return TokenOwner(*found[0]) if found else None

    def _counted(
        self, source: str, columns: str, order: str, params: list[Any], limit: int, offset: int
    ) -> tuple[int, list[tuple[Any, ...]]]:
        """How many rows ``FROM source`` has, and one page of ``columns`` of them in
        ``order``: both read inside the caller's snapshot (see ``Store.snapshot``)."""
        count = self.store.query(f"SELECT count(*) FROM {source}", params)
        found = self.store.query(
            f"SELECT {columns} FROM {source} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return count[0][0], found

    def _with_steps(self, found: Sequence[Sequence[Any]]) -> list[ProcessState]:
        if not found:
            return []
        ids = [row[0] for row in found]
        marks = ", ".join("?" for _ in ids)
        step_rows = self.store.query(
            f"SELECT {tables.STEPS.select_list()} FROM steps WHERE process_id IN ({marks}) "
            "ORDER BY process_id, step_order, step_id",
            ids,
        )
        steps: dict[str, list[StepState]] = defaultdict(list)
        for row in step_rows:
            steps[row[0]].append(rows.step_from_row(row[1:]))
        return [rows.process_from_row(row, tuple(steps.get(row[0], ()))) for row in found]
