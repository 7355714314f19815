"""Turning an HTTP command into a ledger command, and its outcome into a response."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from api.auth import Principal
from api.deps import ApiDeps
from api.errors import ApiError, rejection
from api.requests import Wait, wait_of
from api.responses import JSONResponse
from streams.domain.commands import Command, InvalidCommand, parse_body
from streams.domain.process import ProcessState
from streams.domain.snapshot import process_from_dict
from streams.publisher import PublishError
from streams.serde import Outcome

IDEMPOTENCY_NAMESPACE = uuid.UUID("2b7f4c1a-3d8e-4f60-9a1b-5c6d7e8f9012")
MAX_IDEMPOTENCY_KEY = 255


def _bounded_header(request: Request, name: str, code: str) -> str | None:
    """Header ``name``, None when absent; ApiError 400 ``code`` when it is blank or
    longer than ``MAX_IDEMPOTENCY_KEY`` characters."""
    value = request.headers.get(name)
    if value is not None and (not value.strip() or len(value) > MAX_IDEMPOTENCY_KEY):
        raise ApiError(400, code, f"{name} must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return value


def idempotency_key(request: Request) -> str | None:
    return _bounded_header(request, "Idempotency-Key", "invalid_idempotency_key")


def correlation_id(request: Request, default: str) -> str:
    """``X-Correlation-Id`` (it goes into every event the command causes), else
    ``default``; ApiError 400 for a blank or over-long one."""
    given = _bounded_header(request, "X-Correlation-Id", "invalid_correlation_id")
    return default if given is None else given


def derived_id(principal: Principal, key: str, purpose: str) -> str:
    """A stable id from an Idempotency-Key: the same key gives the same command."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{principal.account}\n{key}\n{purpose}"))


class CommandPending(Exception):
    """The command is durable but not decided yet: answer 202.

    Either the client asked for it (``Prefer: respond-async``, then ``requested``) or
    the decider did not answer within the command timeout. ``status_url`` is where to
    follow it, when this node tracks it.
    """

    def __init__(
        self,
        command_id: str,
        aggregate_type: str = "",
        aggregate_id: str = "",
        *,
        status_url: str | None = None,
        requested: bool = False,
    ) -> None:
        super().__init__(command_id)
        self.command_id = command_id
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.status_url = status_url
        self.requested = requested

    def response(self) -> JSONResponse:
        """The ``202``: the command's id, its aggregate and where to follow it. Its
        ``status`` is ``pending``, as ``GET /command/{id}`` says until the decider has
        decided (where ``accepted`` means decided and accepted)."""
        body = {
            "command_id": self.command_id,
            "status": "pending",
            "message": "the command is durable in the ledger; its outcome is not known yet",
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "status_url": self.status_url,
        }
        headers = {"Ledger-Command-Id": self.command_id}
        if self.status_url is not None:
            headers["Location"] = self.status_url
        if self.requested:
            headers["Preference-Applied"] = "respond-async"
        return JSONResponse(body, status_code=202, headers=headers)


@dataclass(frozen=True)
class Accepted:
    outcome: Outcome
    state: ProcessState | None
    applied: bool
    # The decider's state of a non-Process aggregate, as a dict (a Site, Flow, Case).
    snapshot: dict[str, Any] | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Ledger-Command-Id": self.outcome.command_id}
        position = self.outcome.position
        if position is not None:
            headers["Ledger-Position"] = f"{position[0]}:{position[1]}"
        headers["Ledger-Applied"] = "true" if self.applied else "false"
        if self.outcome.duplicate:
            headers["Idempotent-Replayed"] = "true"
        return headers


async def run_command(
    deps: ApiDeps,
    request: Request,
    principal: Principal,
    name: str,
    aggregate_id: str,
    fields: dict[str, Any],
    *,
    aggregate_type: str = "process",
) -> Accepted:
    """Validate, publish and await one command; ApiError for every way it can fail.

    422 for an unusable field, 404/409 for a rejection by the decider, 503 when Kafka
    does not acknowledge, 202 (CommandPending) when the client asked for
    ``Prefer: respond-async`` or the decider has not answered within the command
    timeout: the command is durable and will still be decided.
    """
    wait: Wait = wait_of(request, deps.wait_timeout_s)
    try:
        body = parse_body(name, fields)
    except InvalidCommand as exc:
        raise ApiError(422, "invalid_field", exc.message, exc.field) from exc
    key = idempotency_key(request)
    command_id = derived_id(principal, key, f"{name} {aggregate_id}") if key else deps.new_id()
    cmd = Command(
        command_id=command_id,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        issued_at=deps.clock(),
        account=principal.account,
        actor=principal.actor,
        correlation_id=correlation_id(request, command_id),
        causation_id=command_id,
        body=body,
        reply_to=deps.commands.node_id,
    )
    try:
        if wait.respond_async:
            await deps.commands.submit(cmd)
            outcome = None
        else:
            outcome = await deps.commands.execute(cmd, deps.command_timeout_s)
    except PublishError as exc:
        # Not acknowledged is not "not recorded": a producer that timed out still holds
        # the command and writes it once the broker is back.
        raise ApiError(
            503,
            "ledger_unavailable",
            f"the ledger did not acknowledge the command: {exc}; it may still be recorded "
            "once Kafka is back: retry with the same Idempotency-Key",
        ) from exc
    if outcome is None:
        raise CommandPending(
            command_id,
            aggregate_type,
            aggregate_id,
            status_url=f"/command/{command_id}",
            requested=wait.respond_async,
        )
    if not outcome.accepted:
        status, code = rejection(outcome.reason_code)
        raise ApiError(status, code, outcome.reason or "", outcome.field)
    applied = False
    if outcome.position is not None:
        partition, offset = outcome.position
        if wait.enabled:
            applied = await deps.positions.wait_for(partition, offset, wait.timeout)
        else:  # not waiting, but the node may be there already: say so
            applied = deps.positions.applied().get(partition, 0) > offset
    state = None
    snapshot = None
    if outcome.state_json is not None:
        if aggregate_type == "process":
            state = process_from_dict(json.loads(outcome.state_json))
        else:
            snapshot = json.loads(outcome.state_json)
    return Accepted(outcome=outcome, state=state, applied=applied, snapshot=snapshot)
