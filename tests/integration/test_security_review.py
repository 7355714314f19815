"""Found in a security review of tokens and accounts, on the real broker, decider and
node: a token is issued whatever the command timeout, a revocation touches only its own
token, a bad account name is refused with a message, and a 401 names its scheme.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import Any

import httpx
import pytest

from runledger.tokens import issue_token, revoke_token

pytestmark = pytest.mark.integration


def status_once_known(stack: Any, token: str, want: int) -> int:
    """The status of ``GET /process`` with ``token`` once it is ``want`` or 15 s passed:
    a node learns of a new or revoked token from its projection a moment later."""
    deadline = time.monotonic() + 15
    while True:
        r = httpx.get(stack.url + "/process", headers={"Authorization": token}, timeout=10)
        if r.status_code == want or time.monotonic() > deadline:
            return r.status_code
        time.sleep(0.1)


def test_a_token_is_issued_when_commands_answer_202_at_once(stack: Any) -> None:
    # RUNLEDGER_COMMAND_TIMEOUT_S=0 (documented: the API answers 202 without waiting)
    # used to make `runledger token create` give up at once, "is the stack running?"
    settings = replace(stack.settings, command_timeout_s=0.0)
    account = f"zero-{uuid.uuid4().hex[:8]}"
    token = asyncio.run(issue_token(settings, account, account))
    assert status_once_known(stack, token, 200) == 200


def test_revoking_one_token_leaves_the_accounts_other_tokens_working(stack: Any) -> None:
    account = f"two-{uuid.uuid4().hex[:8]}"
    kept = asyncio.run(issue_token(stack.settings, account, "kept"))
    gone = asyncio.run(issue_token(stack.settings, account, "gone"))
    assert status_once_known(stack, gone, 200) == 200
    asyncio.run(revoke_token(stack.settings, account, gone))
    assert status_once_known(stack, gone, 401) == 401
    assert status_once_known(stack, kept, 200) == 200


def test_a_401_from_the_node_names_its_scheme(stack: Any) -> None:
    r = httpx.get(stack.url + "/process", headers={"Authorization": "rl_unknown"}, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"
    assert r.headers["www-authenticate"] == 'Bearer realm="runledger"'
    assert httpx.get(stack.url + "/health", timeout=10).status_code == 200


@pytest.mark.parametrize("account", [" acme", "ac\nme", "\x1b[2Jacme"])
def test_token_create_refuses_an_unusable_account_name(cli: Any, account: str) -> None:
    code, out, err = cli("token", "create", "--account", account)
    assert code == 2
    assert out == ""  # no token printed
    assert f"--account {account!r}" in err and "a name is 1 to 200 printable" in err


def test_token_revoke_reads_the_token_from_stdin_and_the_node_refuses_it(
    stack: Any, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    account = f"cli-{uuid.uuid4().hex[:8]}"
    code, token, _ = cli("token", "create", "--account", account)
    token = token.strip()
    assert code == 0 and status_once_known(stack, token, 200) == 200
    monkeypatch.setattr("sys.stdin", io.StringIO("rl_not_a_token_of_it\n"))
    code, _, err = cli("token", "revoke", "--account", account)
    # No active token with that value: "the answer is no", exit 1, naming the account.
    assert code == 1 and f"account {account!r} has no active token" in err
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = cli("token", "revoke", "--account", account)
    assert code == 2 and "standard input" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    code, out, err = cli("token", "revoke", "--account", account)
    assert (code, out) == (0, "") and "revoked" in err
    assert status_once_known(stack, token, 401) == 401
