"""A new user's walkthrough of the token commands on a real stack: a revoke of a token
the account does not have (never issued, revoked already, another account's) is the
answer "no", exit 1, naming the account; a created token revoked once is revoked. (The
rest of the walkthrough, without a broker: tests/unit/test_cli_walkthrough.py.)"""

from __future__ import annotations

import io
import sys

import pytest

from tests.integration.conftest import Cli, Stack

pytestmark = pytest.mark.integration

NO = (
    "runledger token revoke: account {account!r} has no active token with that value "
    "(revoked already, or another account's)"
)


def _revoke(cli: Cli, monkeypatch: pytest.MonkeyPatch, account: str, token: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
    code, out, err = cli("token", "revoke", "--account", account)
    assert out == ""
    return code, err.strip()


def test_revoke_answers_no_with_exit_1_for_a_token_the_account_does_not_have(
    cli: Cli, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: exit 2 (a usage error) with ``no such active token in this account``."""
    code, out, err = cli("token", "create", "--account", "walk", "--name", "ci")
    assert code == 0, err
    token = out.strip()

    assert _revoke(cli, monkeypatch, "walk-other", token) == (1, NO.format(account="walk-other"))
    assert _revoke(cli, monkeypatch, "walk", "rl_never_issued") == (1, NO.format(account="walk"))
    code, err = _revoke(cli, monkeypatch, "walk", token)
    assert code == 0 and err == "token of account 'walk' revoked"
    assert _revoke(cli, monkeypatch, "walk", token) == (1, NO.format(account="walk"))
