"""Issuing and revoking API tokens: commands on the account aggregate."""

from __future__ import annotations

import contextlib
import time
import unicodedata
import uuid

from api.auth import new_token, token_hash
from runledger.settings import Settings
from schemas import default_codec
from streams.bus import CommandBus
from streams.domain.commands import Command, CreateToken, RevokeToken
from streams.topics import Topics

MAX_NAME = 200
# A token command waits at least this long for the decider: a one-off command may reach
# a decider that is still starting, and RUNLEDGER_COMMAND_TIMEOUT_S may be 0.
MIN_WAIT_S = 30.0
# Control and format characters (newlines, escapes, bidi overrides), lone surrogates and
# line/paragraph separators: they would forge lines or colours wherever a name is shown.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class TokenError(Exception):
    """The ledger refused or did not answer a token command."""


def check_name(what: str, value: str) -> None:
    """TokenError unless ``value`` is 1 to 200 printable characters without spaces
    around them: an account is known by its exact name, so ``"acme "`` would be an
    account of its own, and names are printed in audit lines and ``created_by``."""
    if not value or len(value) > MAX_NAME:
        raise TokenError(f"the {what} name must be 1 to {MAX_NAME} characters")
    if value != value.strip():
        raise TokenError(f"the {what} name {value!r} has spaces around it")
    if any(unicodedata.category(ch) in _UNPRINTABLE for ch in value):
        raise TokenError(f"the {what} name {value!r} holds a control character")


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
        wait = max(settings.command_timeout_s * 3, MIN_WAIT_S)
        outcome = await bus.execute(cmd, timeout=wait)
    finally:
        with contextlib.suppress(Exception):
            await bus.stop()
    if outcome is None:
        raise TokenError("the decider did not answer; is the stack running (`runledger up`)?")
    if not outcome.accepted:
        raise TokenError(outcome.reason or "the ledger refused the token command")


async def issue_token(settings: Settings, account: str, name: str) -> str:
    """Create a token for ``account``; returns it (the ledger keeps only its hash)."""
    check_name("account", account)
    check_name("token", name)
    token = new_token()
    await _run(settings, account, CreateToken(token_hash(token), name))
    return token


async def revoke_token(settings: Settings, account: str, token: str) -> None:
    await _run(settings, account, RevokeToken(token_hash(token)))
