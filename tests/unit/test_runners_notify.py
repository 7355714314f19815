"""Pure builders of the notify runner: node configs to requests, Slack and email bodies."""

from __future__ import annotations

import json

import pytest

from runners.errors import TargetInvalid
from runners.notify import email_message, slack_message, webhook_from_node


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
