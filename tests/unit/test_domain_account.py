"""The Account aggregate: API tokens kept as hashes, created and revoked by events."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from streams.domain import account as a
from streams.domain import aggregates
from streams.domain import commands as c
from streams.domain import events as e
from streams.domain.rejection import ALREADY_EXISTS, INVALID, NOT_FOUND, Rejected

T0 = 1_767_261_600_000_000
H1 = "1" * 64
H2 = "2" * 64


class Account:
    """One account driven through decide/evolve, keeping every event it emitted."""

    def __init__(self, name: str = "acme") -> None:
        self.name = name
        self.state: a.AccountState | None = None
        self.events: list[e.Event] = []
        self.clock = T0

    def cmd(self, body: c.Body) -> c.Command:
        self.clock += 1_000_000
        return c.Command(
            command_id=f"cmd-{len(self.events) + 1}",
            aggregate_type=a.AGGREGATE,
            aggregate_id=self.name,
            issued_at=self.clock,
            account=self.name,
            actor="admin",
            correlation_id="corr",
            causation_id="cause",
            body=body,
        )

    def do(self, body: c.Body) -> e.Event:
        [event] = a.decide(self.state, self.cmd(body))
        self.state = a.evolve(self.state, event)
        self.events.append(event)
        return event

    def reject(self, body: c.Body) -> Rejected:
        before = self.state
        with pytest.raises(Rejected) as info:
            a.decide(self.state, self.cmd(body))
        assert self.state is before
        return info.value


def test_an_account_exists_from_its_first_token() -> None:
    acct = Account()
    event = acct.do(c.CreateToken(H1, "ci"))
    assert (event.type, event.seq, event.aggregate_type, event.aggregate_id) == (
        "account.token_created",
        1,
        "account",
        "acme",
    )
    assert event.data == e.TokenCreated(H1, "ci")
    assert event.account == "acme"
    assert event.occurred_at == acct.clock
    assert acct.state == a.AccountState("acme", 1, (a.Token(H1, "ci", acct.clock),))


def test_tokens_are_created_and_revoked_independently() -> None:
    acct = Account()
    acct.do(c.CreateToken(H1, "ci"))
    acct.do(c.CreateToken(H2, "laptop"))
    revoked = acct.do(c.RevokeToken(H1))
    assert revoked.data == e.TokenRevoked(H1)
    assert acct.state is not None
    assert acct.state.token(H1) == a.Token(H1, "ci", T0 + 1_000_000, revoked=True)
    assert acct.state.token(H2) == a.Token(H2, "laptop", T0 + 2_000_000)
    assert acct.state.token("3" * 64) is None
    assert [ev.seq for ev in acct.events] == [1, 2, 3]
    assert acct.state.seq == 3


@pytest.mark.parametrize(
    ("setup", "body", "code"),
    [
        ([c.CreateToken(H1, "ci")], c.CreateToken(H1, "again"), ALREADY_EXISTS),
        # A revoked hash stays taken: a token never comes back to life.
        ([c.CreateToken(H1, "ci"), c.RevokeToken(H1)], c.CreateToken(H1, "ci"), ALREADY_EXISTS),
        ([], c.RevokeToken(H1), NOT_FOUND),
        ([c.CreateToken(H1, "ci")], c.RevokeToken(H2), NOT_FOUND),
        ([c.CreateToken(H1, "ci"), c.RevokeToken(H1)], c.RevokeToken(H1), NOT_FOUND),
        ([], c.StartProcess(), INVALID),
        ([c.CreateToken(H1, "ci")], c.DeleteProcess(), INVALID),
    ],
    ids=[
        "create-twice",
        "create-revoked",
        "revoke-in-new-account",
        "revoke-unknown",
        "revoke-twice",
        "process-command-first",
        "process-command-later",
    ],
)
def test_rejections(setup: list[c.Body], body: c.Body, code: str) -> None:
    acct = Account()
    for before in setup:
        acct.do(before)
    rejected = acct.reject(body)
    assert rejected.code == code and rejected.message


def test_events_are_deterministic_and_ids_do_not_collide_with_a_process_of_that_name() -> None:
    acct = Account()
    cmd = acct.cmd(c.CreateToken(H1, "ci"))
    assert a.decide(None, cmd) == a.decide(None, cmd)
    [event] = a.decide(None, cmd)
    assert event.event_id == e.event_id_for("account", "acme", 1)
    assert event.event_id != e.event_id_for("process", "acme", 1)  # a process called "acme"


def test_replay_equals_live() -> None:
    acct = Account()
    for body in [
        c.CreateToken(H1, "ci"),
        c.CreateToken(H2, "laptop"),
        c.RevokeToken(H2),
        c.CreateToken("3" * 64, "cron"),
    ]:
        acct.do(body)
    replayed: Any = None
    for event in acct.events:
        replayed = aggregates.evolve(replayed, event)
    assert replayed == acct.state


def test_evolve_refuses_a_process_event() -> None:
    acct = Account()
    event = acct.do(c.CreateToken(H1, "ci"))
    with pytest.raises(ValueError, match="not an account event"):
        a.evolve(acct.state, replace(event, type="process.started", data=e.ProcessStarted()))


def test_aggregates_route_account_commands_to_the_account() -> None:
    acct = Account()
    events = aggregates.decide(None, acct.cmd(c.CreateToken(H1, "ci")))
    assert [ev.type for ev in events] == ["account.token_created"]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("account.token_create", {"token_hash": H1, "name": "ci"}, c.CreateToken(H1, "ci")),
        ("account.token_create", {"token_hash": H1}, c.CreateToken(H1, "token")),
        ("account.token_revoke", {"token_hash": H1}, c.RevokeToken(H1)),
    ],
)
def test_token_commands_parse(name: str, data: dict[str, Any], expected: c.Body) -> None:
    assert c.parse_body(name, data) == expected


@pytest.mark.parametrize(
    ("name", "data", "field"),
    [
        ("account.token_create", {}, "token_hash"),
        ("account.token_create", {"token_hash": " "}, "token_hash"),
        ("account.token_create", {"token_hash": "x" * 201}, "token_hash"),
        ("account.token_create", {"token_hash": H1, "name": 3}, "name"),
        ("account.token_revoke", {"token_hash": None}, "token_hash"),
    ],
)
def test_token_commands_validate(name: str, data: dict[str, Any], field: str) -> None:
    with pytest.raises(c.InvalidCommand) as info:
        c.parse_body(name, data)
    assert info.value.field == field
