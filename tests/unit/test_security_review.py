"""Found in a security review of tokens, accounts and configuration: every bad
``RUNLEDGER_*`` value is refused with a message naming the variable (never a silent
default or a traceback further on), and the Authorization header is read as documented.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from api import ApiDeps, create_app
from api.auth import token_hash
from runledger import control
from runledger.settings import Settings, SettingsError
from runledger.stackfile import StackFile
from runledger.tokens import TokenError, issue_token

TOKEN = "rl_security_review"


def settings_with(name: str, value: str) -> Settings:
    return Settings.from_env({f"RUNLEDGER_{name}": value})


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "65536", "70000"])
def test_a_port_outside_1_to_65535_is_refused(value: str) -> None:
    # 70000 used to pass, and `runledger up` then died with an OverflowError traceback
    with pytest.raises(SettingsError, match="RUNLEDGER_PORT"):
        settings_with("PORT", value)


def test_a_port_in_range_is_read() -> None:
    assert settings_with("PORT", "65535").port == 65535
    assert settings_with("PORT", "1").port == 1


@pytest.mark.parametrize("name", ["SSE_WINDOW_S", "SSE_HEARTBEAT_S"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "0", "-2"])
def test_a_stream_interval_must_be_a_finite_positive_number(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"RUNLEDGER_{name}"):
        settings_with(name, value)


@pytest.mark.parametrize("name", ["COMMAND_TIMEOUT_S", "WAIT_TIMEOUT_S"])
@pytest.mark.parametrize("value", ["-1", "-0.5", "nan", "inf", "ten"])
def test_a_timeout_must_be_a_finite_number_of_seconds(name: str, value: str) -> None:
    # a negative timeout used to pass silently
    with pytest.raises(SettingsError, match=f"RUNLEDGER_{name}"):
        settings_with(name, value)


def test_a_wait_timeout_of_zero_is_refused() -> None:
    # every waiting read would answer 504 at once
    with pytest.raises(SettingsError, match="RUNLEDGER_WAIT_TIMEOUT_S"):
        settings_with("WAIT_TIMEOUT_S", "0")


def test_a_command_timeout_of_zero_means_answer_202_at_once() -> None:
    # documented (docs/benchmarks.md): the node answers 202 without waiting
    assert settings_with("COMMAND_TIMEOUT_S", "0").command_timeout_s == 0.0


@pytest.mark.parametrize("name", ["COMMAND_TIMEOUT_S", "WAIT_TIMEOUT_S"])
def test_a_timeout_may_have_a_fraction(name: str) -> None:
    # the value is a float of seconds, like the CLI's own --timeout options
    assert getattr(settings_with(name, "2.5"), name.lower()) == 2.5


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_body_limit_below_one_byte_is_refused(value: str) -> None:
    # 0 used to pass, and then every command with a body answered 413
    with pytest.raises(SettingsError, match="RUNLEDGER_MAX_BODY_BYTES"):
        settings_with("MAX_BODY_BYTES", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", True), ("1", True), ("TRUE", True), (" on ", True)]
    + [("0", False), ("False", False), ("no", False), ("off", False)],
)
def test_booleans_read_the_usual_spellings(value: str, expected: bool) -> None:
    assert settings_with("ALLOW_PRIVATE_TARGETS", value).allow_private_targets is expected


@pytest.mark.parametrize("value", ["maybe", "2", "y e s"])
def test_a_boolean_that_is_neither_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="RUNLEDGER_ALLOW_PRIVATE_TARGETS"):
        settings_with("ALLOW_PRIVATE_TARGETS", value)


@pytest.mark.parametrize(
    "name", ["HOST", "DATA_DIR", "CACHE_DIR", "KAFKA_VERSION", "KAFKA_BOOTSTRAP"]
)
def test_blank_text_is_the_default_not_a_value(name: str) -> None:
    # "   " used to become a host (or folder) named by spaces
    assert getattr(settings_with(name, "   "), name.lower()) == getattr(Settings(), name.lower())


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


# -- stack.json ------------------------------------------------------------------------


def test_the_stack_file_is_owner_only_even_over_a_leftover_temp_file(tmp_path: Path) -> None:
    # a temp file left readable by an older or interrupted writer kept its mode
    leftover = tmp_path / "stack.tmp"
    leftover.write_text("{}")
    leftover.chmod(0o644)
    path = StackFile("http://x", "k", "p", "rl_secret").write(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# -- token issue -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "account",
    ["", "a" * 201, " acme", "acme ", "ac\nme", "ac\tme", "\x1b[31macme", "ac\x7fme", "\ud800"],
)
def test_an_unusable_account_name_is_refused_before_kafka(account: str) -> None:
    # no broker here: the name must be refused before anything is sent
    settings = Settings(kafka_bootstrap="127.0.0.1:1")
    with pytest.raises(TokenError, match="account"):
        asyncio.run(issue_token(settings, account, "label"))


# -- the Authorization header ----------------------------------------------------------


class Reads:
    def token_account(self, digest: str) -> tuple[str, str] | None:
        return ("acme", "review") if digest == token_hash(TOKEN) else None

    def list_processes(self, account: str, *, limit: int, offset: int, **_: object) -> object:
        return 0, []


def client() -> TestClient:
    deps = ApiDeps(reads=Reads(), commands=None, positions=None)  # type: ignore[arg-type]
    return TestClient(create_app(deps), raise_server_exceptions=False)


@pytest.mark.parametrize(
    "header", [TOKEN, f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER   {TOKEN}", f" {TOKEN} "]
)
def test_a_token_is_accepted_in_every_documented_form(header: str) -> None:
    assert client().get("/process", headers={"Authorization": header}).status_code == 200


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer    "])
def test_bearer_without_a_token_says_so(header: str) -> None:
    # "Bearer " used to answer "unknown or revoked", as if a token had been sent
    r = client().get("/process", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"


def test_a_401_tells_the_scheme() -> None:
    # RFC 9110 15.5.2: a 401 carries WWW-Authenticate
    for headers in ({}, {"Authorization": "rl_unknown"}):
        r = client().get("/process", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_a_query_token_is_not_accepted_outside_the_streams() -> None:
    r = client().get(f"/process?token={TOKEN}")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"


def test_the_api_sends_no_cors_headers() -> None:
    # no cross-origin access by default: a page elsewhere cannot read the API
    r = client().get(
        "/process", headers={"Authorization": TOKEN, "Origin": "https://elsewhere.example"}
    )
    assert r.status_code == 200
    assert not [k for k in r.headers if k.lower().startswith("access-control-")]


@pytest.mark.parametrize("value", ["a b.", "x/y.", "ünï.", "a" * 181])
def test_a_topic_prefix_kafka_cannot_name_topics_with_is_refused(value: str) -> None:
    # it used to surface later as "topic a b.ledger.outcomes does not exist"
    with pytest.raises(SettingsError, match="RUNLEDGER_TOPIC_PREFIX"):
        settings_with("TOPIC_PREFIX", value)


@pytest.mark.parametrize("value", ["", "t1a2b3c4.", "team_a-ledger."])
def test_a_topic_prefix_of_kafka_characters_is_read(value: str) -> None:
    assert settings_with("TOPIC_PREFIX", value).topic_prefix == value


# -- the control socket ----------------------------------------------------------------


def test_an_over_long_control_request_is_answered_not_dropped(tmp_path: Path) -> None:
    # a line over the 1 MiB limit used to end the connection without a word (and an
    # "unhandled exception" in the node's log); the client now refuses to send one
    path = tmp_path / control.SOCKET_NAME

    async def echo(request: dict[str, object], report: control.Report) -> dict[str, object]:
        return {}

    async def main() -> None:
        server = control.ControlServer(path, {"echo": echo})
        old = os.umask(0)  # even a permissive umask leaves the socket owner-only
        try:
            assert await server.start()
        finally:
            os.umask(old)
        try:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            reader, writer = await asyncio.open_unix_connection(str(path))

            async def flood() -> None:
                with contextlib.suppress(ConnectionError):
                    writer.write(b"x" * (3 << 19))
                    await writer.drain()

            sending = asyncio.create_task(flood())
            answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
            assert answer["ok"] is False and "longer than" in answer["error"]
            await sending
            writer.close()
            with pytest.raises(control.ControlError, match="longer than"):
                await control.ask(path, {"op": "echo", "pad": "x" * (2 << 20)})
            assert await control.ask(path, {"op": "echo"}) == {}
        finally:
            await server.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("RUNNER_MAX_PAGES", "0", "RUNLEDGER_RUNNER_MAX_PAGES must be from 1"),
        ("RUNNER_MAX_PAGES", "four", "RUNLEDGER_RUNNER_MAX_PAGES must be a whole number"),
        ("SMTP_PORT", "70000", "RUNLEDGER_SMTP_PORT must be from 1 to 65535"),
        ("SMTP_STARTTLS", "maybe", "RUNLEDGER_SMTP_STARTTLS must be true or false"),
    ],
)
def test_runner_settings_are_checked_like_the_others(name: str, value: str, says: str) -> None:
    from runledger.runner import RunnerOptions

    env = {"RUNLEDGER_SMTP_HOST": "mail.example.com", f"RUNLEDGER_{name}": value}
    with pytest.raises(SettingsError, match=says):
        RunnerOptions.from_env(env)


def test_runner_settings_read_the_usual_spellings() -> None:
    from runledger.runner import RunnerOptions

    options = RunnerOptions.from_env(
        {"RUNLEDGER_SMTP_HOST": " mail.example.com ", "RUNLEDGER_SMTP_STARTTLS": "On"}
    )
    assert options.smtp is not None
    assert (options.smtp.host, options.smtp.port, options.smtp.starttls) == (
        "mail.example.com", 25, True,
    )  # fmt: skip
