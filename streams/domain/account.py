"""The Account aggregate: the API tokens of one account, kept only as hashes.

Tokens are events like everything else, so a replay of the log restores who may
call the API.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from streams.domain import commands as c
from streams.domain import envelope
from streams.domain import events as e
from streams.domain.rejection import ALREADY_EXISTS, INVALID, NOT_FOUND, Rejected

AGGREGATE = "account"


@dataclass(frozen=True, slots=True)
class Token:
    token_hash: str
    name: str
    created_at: int
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class AccountState:
    name: str
    seq: int = 0
    tokens: tuple[Token, ...] = ()

    def token(self, token_hash: str) -> Token | None:
        return next((t for t in self.tokens if t.token_hash == token_hash), None)


def evolve(state: AccountState | None, event: e.Event) -> AccountState:
    """The account after ``event``; an account exists from its first event."""
    state = state or AccountState(event.aggregate_id)
    data = event.data
    if isinstance(data, e.TokenCreated):
        token = Token(data.token_hash, data.name, event.occurred_at)
        return replace(state, seq=event.seq, tokens=(*state.tokens, token))
    if isinstance(data, e.TokenRevoked):
        tokens = tuple(
            replace(t, revoked=True) if t.token_hash == data.token_hash else t for t in state.tokens
        )
        return replace(state, seq=event.seq, tokens=tokens)
    raise ValueError(f"{event.type} is not an account event")


def decide(state: AccountState | None, cmd: c.Command) -> list[e.Event]:
    """Events for a token command; Rejected when the token exists / does not exist."""
    body = cmd.body
    if isinstance(body, c.CreateToken):
        if state is not None and state.token(body.token_hash) is not None:
            raise Rejected(ALREADY_EXISTS, "this token already exists")
        payload: e.Payload = e.TokenCreated(body.token_hash, body.name)
    elif isinstance(body, c.RevokeToken):
        token = state.token(body.token_hash) if state is not None else None
        if token is None or token.revoked:
            raise Rejected(NOT_FOUND, "no such active token in this account")
        payload = e.TokenRevoked(body.token_hash)
    else:
        raise Rejected(INVALID, f"{cmd.name} is not an account command")
    return envelope.events(AGGREGATE, state.seq if state is not None else 0, cmd, payload)
