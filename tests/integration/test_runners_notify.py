"""Webhook, Slack and email delivery to local servers started by the tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from email import message_from_bytes

import pytest

from runners.errors import NotifyFailed, TargetRefused
from runners.guard import TargetGuard
from runners.notify import SmtpServer, send_email, send_slack, send_webhook, webhook_from_node
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
