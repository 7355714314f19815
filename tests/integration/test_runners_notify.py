"""Webhook, Slack and email delivery to local servers started by the tests, and the
dedupe key a re-run delivery carries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path

import pytest

from runners import guard as guard_module
from runners.artifacts import ArtifactStore
from runners.browser import Browser
from runners.errors import NotifyFailed, TargetRefused
from runners.guard import TargetGuard
from runners.jobs_context import JobContext
from runners.jobs_executor import perform
from runners.jobs_notify import delivery_key
from runners.notify import SmtpServer, send_email, send_slack, send_webhook, webhook_from_node
from streams.domain.commands import Command
from streams.jobs import Dispatch
from streams.orchestration import Job
from tests.site.server import TestSite, serve_site
from tests.site.smtp import MailBox, serve_smtp

pytestmark = pytest.mark.integration

ALLOW = TargetGuard(allow_private=True)
REFUSE = TargetGuard(allow_private=False)


@pytest.fixture
def site() -> Iterator[TestSite]:
    with serve_site() as served:
        yield served


@pytest.fixture
def mailbox() -> Iterator[MailBox]:
    with serve_smtp() as box:
        yield box


def test_webhook_is_delivered_with_method_headers_and_payload(site: TestSite) -> None:
    request = webhook_from_node(
        site.url("/hook"), "PUT", '{"X-Run": "run-1"}', '{"status": "passed", "nodes": 3}'
    )
    result = asyncio.run(send_webhook(ALLOW, request, timeout=5))
    assert result.status_code == 200 and result.ok
    (received,) = site.hooks
    assert received.method == "PUT"
    assert received.headers["X-Run"] == "run-1"
    assert received.headers["Content-Type"] == "application/json"
    assert json.loads(received.body) == {"status": "passed", "nodes": 3}


def test_webhook_error_status_is_a_result_and_no_answer_is_an_error(site: TestSite) -> None:
    site.hook_status = 500
    request = webhook_from_node(site.url("/hook"), "POST", "{}", "{}")
    result = asyncio.run(send_webhook(ALLOW, request, timeout=5))
    assert result.status_code == 500 and not result.ok
    slow = webhook_from_node(site.url("/slow?s=3"), "GET", "{}", "{}")
    with pytest.raises(NotifyFailed):
        asyncio.run(send_webhook(ALLOW, slow, timeout=0.5))


def test_webhook_to_a_private_address_is_refused_without_the_setting(site: TestSite) -> None:
    request = webhook_from_node(site.url("/hook"), "POST", "{}", "{}")
    with pytest.raises(TargetRefused) as refused:
        asyncio.run(send_webhook(REFUSE, request))
    assert refused.value.address == "127.0.0.1"
    assert site.hooks == []


def test_a_webhook_goes_to_the_address_the_guard_checked(
    site: TestSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name only the guard's resolver knows: sent to a fresh lookup of the name, the
    # request would fail; pinned to the checked address it arrives, naming its host.
    # (The guard is told loopback is public here, to have a server to reach.)
    monkeypatch.setattr(guard_module, "refusal_reason", lambda address: None)
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return [site.host]

    guard = TargetGuard(allow_private=False, resolver=resolver)
    url = f"http://hooks.example.invalid:{site.port}/hook"
    result = asyncio.run(send_webhook(guard, webhook_from_node(url, "POST", "{}", "{}"), timeout=5))
    assert result.ok and asked == ["hooks.example.invalid"]
    (received,) = site.hooks
    assert received.headers["Host"] == f"hooks.example.invalid:{site.port}"


def test_slack_message_is_posted_in_slacks_format(site: TestSite) -> None:
    result = asyncio.run(send_slack(ALLOW, site.url("/hook"), "Flow failed", {"node": "scan"}))
    assert result.ok
    (received,) = site.hooks
    body = json.loads(received.body)
    assert body["text"] == "Flow failed"
    assert body["blocks"][0]["text"]["text"] == "Flow failed"
    assert received.headers["Content-Type"] == "application/json"


def test_email_is_delivered_to_the_smtp_server(mailbox: MailBox) -> None:
    server = SmtpServer(
        host=mailbox.host,
        port=mailbox.port,
        username="runner",
        password="secret",
        sender="runs@example.com",
    )
    asyncio.run(
        send_email(ALLOW, server, "ops@example.com", "Run failed", "node 2 failed", timeout=5)
    )
    (mail,) = mailbox.messages
    assert mail.sender == "runs@example.com"
    assert mail.recipients == ("ops@example.com",)
    assert mail.login == "runner"
    message = message_from_bytes(mail.data)
    assert message["Subject"] == "Run failed"
    assert "node 2 failed" in message.get_payload()


def test_email_to_a_private_smtp_host_is_refused_and_a_dead_one_fails(mailbox: MailBox) -> None:
    server = SmtpServer(host=mailbox.host, port=mailbox.port)
    with pytest.raises(TargetRefused):
        asyncio.run(send_email(REFUSE, server, "ops@example.com", "s", "b"))
    assert mailbox.messages == []
    dead = SmtpServer(host="127.0.0.1", port=1)
    with pytest.raises(NotifyFailed):
        asyncio.run(send_email(ALLOW, dead, "ops@example.com", "s", "b", timeout=2))


def _dispatch(kind: str, data: dict[str, str], attempt: int = 1) -> Dispatch:
    job = Job(f"job-{kind}-{attempt}", kind, "run-9", "acme", "site-1", "notify", attempt, "{}", "")
    return Dispatch(replace(job, data_json=json.dumps(data)), "http://127.0.0.1/")


async def _deliver(ctx: JobContext, dispatch: Dispatch) -> None:
    reports: list[Command] = []

    async def publish(command: Command) -> None:
        reports.append(command)

    outcome = await perform(ctx, dispatch, publish)
    assert outcome.passed, outcome


def test_a_retried_delivery_carries_the_same_dedupe_key(
    site: TestSite, mailbox: MailBox, tmp_path: Path
) -> None:
    # A runner killed after sending and before committing runs the job again: the same
    # Dispatch goes through ``perform`` twice, as on the re-run.
    smtp = SmtpServer(host=mailbox.host, port=mailbox.port, sender="runs@example.com")
    ctx = JobContext(Browser(), ALLOW, ArtifactStore(tmp_path / "a"), tmp_path / "b", smtp)
    webhook = _dispatch("webhook", {"uri": site.url("/hook"), "payload": '{"n": 1}'})
    slack = _dispatch("slack", {"uri": site.url("/hook"), "message": "run done"})
    email = _dispatch("email", {"email": "ops@example.com", "subject": "run done"})
    for dispatch in (webhook, webhook, slack, slack, email, email):
        asyncio.run(_deliver(ctx, dispatch))

    keys = [h.headers.get("Idempotency-Key") for h in site.hooks]
    assert keys == [delivery_key(webhook.job)] * 2 + [delivery_key(slack.job)] * 2, keys
    ids = [message_from_bytes(m.data)["Message-ID"] for m in mailbox.messages]
    assert ids == [f"<{delivery_key(email.job)}@example.com>"] * 2, ids

    # A retry of the FlowRun is a new attempt of the node: a new notification.
    asyncio.run(_deliver(ctx, _dispatch("webhook", {"uri": site.url("/hook")}, attempt=2)))
    assert site.hooks[-1].headers["Idempotency-Key"] not in keys
