"""Issuing and revoking API tokens: commands on the account aggregate."""

from __future__ import annotations

import contextlib
import time
import uuid

from api.auth import new_token, token_hash
from runledger.settings import Settings
from schemas import default_codec
from streams.bus import CommandBus
from streams.domain.commands import Command, CreateToken, RevokeToken
from streams.topics import Topics


class TokenError(Exception):
    """The ledger refused or did not answer a token command."""


async def _run(settings: Settings, account: str, body: CreateToken | RevokeToken) -> None:
    bus = CommandBus(settings.kafka_bootstrap, Topics(settings.topic_prefix), default_codec())
    try:
        await bus.start()  # inside: a failed start is stopped too (no "Unclosed" noise)
        command_id = str(uuid.uuid4())
        cmd = Command(
            command_id=command_id,
            aggregate_type="account",
            aggregate_id=account,
            issued_at=time.time_ns() // 1000,
            account=account,
            actor="cli",
            correlation_id=command_id,
            causation_id=command_id,
            body=body,
            reply_to=bus.node_id,
        )
        outcome = await bus.execute(cmd, timeout=settings.command_timeout_s * 3)
    finally:
        with contextlib.suppress(Exception):
            await bus.stop()
    if outcome is None:
        raise TokenError("the decider did not answer; is the stack running (`runledger up`)?")
    if not outcome.accepted:
        raise TokenError(outcome.reason or "the ledger refused the token command")


async def issue_token(settings: Settings, account: str, name: str) -> str:
    """Create a token for ``account``; returns it (the ledger keeps only its hash)."""
    if not account or len(account) > 200:
        raise TokenError("the account name must be 1 to 200 characters")
    token = new_token()
    await _run(settings, account, CreateToken(token_hash(token), name))
    return token


async def revoke_token(settings: Settings, account: str, token: str) -> None:
    await _run(settings, account, RevokeToken(token_hash(token)))
