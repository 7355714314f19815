"""Pure builders of the notify runner: node configs to requests, Slack and email bodies."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace
from typing import Any

import pytest

from runners.errors import NotifyFailed, TargetInvalid, TargetRefused
from runners.guard import TargetGuard
from runners.jobs_notify import delivery_key
from runners.notify import (
    WebhookRequest,
    email_message,
    message_id,
    pinned,
    send_webhook,
    slack_message,
    webhook_from_node,
    with_idempotency_key,
)
from streams.orchestration import Job


def test_webhook_from_node_sends_the_payload_as_json() -> None:
    request = webhook_from_node(
        "https://hooks.example/x", "post", '{"X-Token": "abc"}', '{"run": "r1", "ok": true}'
    )
    assert request.method == "POST"
    assert ("X-Token", "abc") in request.headers
    assert ("Content-Type", "application/json") in request.headers
    assert json.loads(request.body) == {"run": "r1", "ok": True}


def test_get_webhook_has_no_body_and_empty_configs_are_fine() -> None:
    request = webhook_from_node("https://hooks.example/x", "GET", "{}", '{"a": 1}')
    assert request.body == b""
    assert request.headers == ()
    assert webhook_from_node("https://h.example/", "", "", "").method == "POST"


@pytest.mark.parametrize(
    ("method", "headers", "payload"),
    [("TRACE", "{}", "{}"), ("POST", "not json", "{}"), ("POST", "{}", "[1, 2]")],
)
def test_bad_node_configs_are_invalid(method: str, headers: str, payload: str) -> None:
    with pytest.raises(TargetInvalid):
        webhook_from_node("https://h.example/", method, headers, payload)


def test_slack_message_has_text_and_blocks() -> None:
    body = json.loads(slack_message("Flow *nightly* failed", {"site": "example.com"}))
    assert body["text"] == "Flow *nightly* failed"
    assert body["blocks"][0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "Flow *nightly* failed"},
    }
    assert body["blocks"][1]["fields"] == [{"type": "mrkdwn", "text": "*site*\nexample.com"}]
    assert json.loads(slack_message("hi"))["blocks"][1:] == []


def test_email_message_refuses_header_injection() -> None:
    message = email_message("a@example.com", "b@example.com", "Run failed", "details")
    assert message["Subject"] == "Run failed"
    with pytest.raises(TargetInvalid):
        email_message("a@example.com", "b@example.com\r\nBcc: c@example.com", "s", "b")
    with pytest.raises(TargetInvalid):
        email_message("a@example.com", "nobody", "s", "b")


def _job(attempt: int = 1, node_id: str = "hook", run_id: str = "run-1") -> Job:
    return Job(f"job-{attempt}", "webhook", run_id, "acme", "site-1", node_id, attempt, "{}", "{}")


def test_delivery_key_is_the_same_for_a_rerun_and_new_for_a_new_attempt() -> None:
    key = delivery_key(_job())
    assert key == delivery_key(_job()) == delivery_key(replace(_job(), job_id="other"))
    assert len({key, delivery_key(_job(2)), delivery_key(_job(node_id="b"))}) == 3
    assert key != delivery_key(_job(run_id="run-2"))


def test_idempotency_key_header_is_added_unless_the_node_sets_one() -> None:
    request = webhook_from_node("https://hooks.example/x", "POST", '{"X-A": "1"}', "{}")
    keyed = with_idempotency_key(request, "k-1")
    assert dict(keyed.headers)["Idempotency-Key"] == "k-1"
    assert dict(keyed.headers)["X-A"] == "1"
    assert with_idempotency_key(request, None) == request
    own = webhook_from_node("https://hooks.example/x", "POST", '{"idempotency-key": "mine"}', "{}")
    assert with_idempotency_key(own, "k-1") == own
    with pytest.raises(TargetInvalid):
        with_idempotency_key(request, "k\r\nX-Evil: 1")


def test_email_message_id_is_derived_from_the_key_and_the_senders_domain() -> None:
    key = delivery_key(_job())
    first = email_message("runs@example.com", "ops@example.com", "s", "b", idempotency_key=key)
    again = email_message("runs@example.com", "ops@example.com", "s", "b", idempotency_key=key)
    assert first["Message-ID"] == again["Message-ID"] == f"<{key}@example.com>"
    assert message_id(key, "runledger") == f"<{key}@runledger.invalid>"
    assert email_message("a@b.c", "ops@example.com", "s", "b")["Message-ID"] is None
    with pytest.raises(TargetInvalid):
        message_id("<>", "runs@example.com")


def test_a_pinned_request_names_its_host_in_host_and_sni() -> None:
    request = WebhookRequest("https://bücher.example:8443/hook?a=1", "POST", (("X-A", "1"),))
    url, headers, extensions = pinned(request, "93.184.216.34")
    assert str(url) == "https://93.184.216.34:8443/hook?a=1"
    assert headers == [("X-A", "1"), ("Host", "xn--bcher-kva.example:8443")]
    assert extensions == {"sni_hostname": "xn--bcher-kva.example"}
    v6, _, _ = pinned(WebhookRequest("http://hooks.example.com/x"), "2001:db8::1")
    assert str(v6) == "http://[2001:db8::1]/x"


def test_a_nodes_own_host_header_wins_and_unchecked_requests_go_as_they_are() -> None:
    mine = WebhookRequest("http://hooks.example.com/x", headers=(("host", "other.example"),))
    _, headers, extensions = pinned(mine, "93.184.216.34")
    assert headers == [("host", "other.example")] and extensions == {}
    url, headers, extensions = pinned(WebhookRequest("http://hooks.example.com/x"), None)
    assert str(url) == "http://hooks.example.com/x" and headers == [] and extensions == {}


SECRET_HOOK = "https://hooks.example.com/services/T000/B000/s3cr3tPath?token=s3cr3tQuery"


async def _resolve_private(host: str, port: int) -> list[str]:
    return ["10.1.2.3"]


async def _resolve_nothing(host: str, port: int) -> list[str]:
    raise TargetInvalid(f"cannot resolve host {host!r}")


@pytest.mark.parametrize("resolver", [_resolve_private, _resolve_nothing])
def test_a_refused_or_unresolvable_webhook_names_its_origin_not_its_secret_url(
    resolver: Any,
) -> None:
    """A Slack webhook's URL is its secret; refusals go to the runner's log and the
    ledger, so they name scheme and host only."""
    guard = TargetGuard(resolver=resolver)
    request = WebhookRequest(SECRET_HOOK, body=b"{}")
    with pytest.raises((TargetRefused, TargetInvalid)) as caught:
        asyncio.run(send_webhook(guard, request, timeout=1))
    assert "hooks.example.com" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_a_failed_webhook_names_its_origin_not_its_secret_url() -> None:
    """Nothing listens on the port: the connect fails, and NotifyFailed's text (logged
    by the runner, recorded as the node's exception) has no path or query."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T000/B000/s3cr3tPath?token=s3cr3tQuery"
    request = WebhookRequest(url, body=b"{}")
    with pytest.raises(NotifyFailed) as caught:
        asyncio.run(send_webhook(TargetGuard(allow_private=True), request, timeout=2))
    assert f"http://127.0.0.1:{port}" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
