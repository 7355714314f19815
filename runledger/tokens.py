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
from streams.domain.rejection import NOT_FOUND
from streams.topics import Topics

MAX_NAME = 200
# A token command waits at least this long for the decider: a one-off command may reach
# a decider that is still starting, and RUNLEDGER_COMMAND_TIMEOUT_S may be 0.
MIN_WAIT_S = 30.0
# Control and format characters (newlines, escapes, bidi overrides), lone surrogates and
# line/paragraph separators: they would forge lines or colours wherever a name is shown.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


# What check_name lets through, for the messages that refuse a name.
NAME_RULE = (
    f"a name is 1 to {MAX_NAME} printable characters (spaces inside are allowed), "
    "with no space at either end"
)


class TokenError(Exception):
    """The ledger refused or did not answer a token command."""


class NoActiveToken(TokenError):
    """A revoke named a token the account does not have, or has revoked: the answer is
    no (exit 1), not a usage error."""


def name_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an account or token name, or None when it is
    1 to 200 printable characters without spaces around them: an account is known by
    its exact name, so ``"acme "`` would be an account of its own, and names are
    printed in audit lines and ``created_by``. The decider takes any name; this is the
    rule of the one way names enter the ledger (``runledger token create``)."""
    if not value.strip():
        return "is empty" if not value else "is only spaces"
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long"
    if value != value.strip():
        return "has spaces around it"
    if any(unicodedata.category(ch) in _UNPRINTABLE for ch in value):
        return "holds a control character"
    return None


def check_name(what: str, value: str) -> None:
    """TokenError, saying what is wrong and what is allowed, unless :func:`name_problem`
    finds ``value`` a good ``what`` name."""
    problem = name_problem(value)
    if problem is not None:
        raise TokenError(f"the {what} name {value!r} {problem}: {NAME_RULE}")


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
        if isinstance(body, RevokeToken) and outcome.reason_code == NOT_FOUND:
            raise NoActiveToken(
                f"account {account!r} has no active token with that value "
                "(revoked already, or another account's)"
            )
        raise TokenError(outcome.reason or "the ledger refused the token command")


async def issue_token(settings: Settings, account: str, name: str) -> str:
    """Create a token for ``account``; returns it (the ledger keeps only its hash)."""
    check_name("account", account)
    check_name("token", name)
    token = new_token()
    await _run(settings, account, CreateToken(token_hash(token), name))
    return token


async def revoke_token(settings: Settings, account: str, token: str) -> None:
    """Revoke ``token`` of ``account``; NoActiveToken when the account has no such
    active token, TokenError when the ledger refused otherwise or did not answer."""
    check_name("account", account)
    await _run(settings, account, RevokeToken(token_hash(token)))
