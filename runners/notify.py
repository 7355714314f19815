"""Notifications a Flow node sends: a webhook, a Slack message, an email.

Each target goes through the guard first, and the connection then goes to an address
the guard checked, never to a second lookup of the name (DNS rebinding), while TLS and
``Host`` still name the host. Builders (``webhook_from_node``, ``slack_message``,
``email_message``, ``with_idempotency_key``) are pure; ``send_*`` do the I/O.

Delivery is at least once: a runner killed after sending and before its job was
committed sends again when the job is re-run. Each delivery therefore carries a key
that is the same for every re-run of the same node attempt (the caller derives it), so
a receiver can drop the repeat: the ``Idempotency-Key`` header on webhook and Slack
requests, the ``Message-ID`` header on emails.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx

from runners.errors import NotifyFailed, TargetInvalid, TargetRefused
from runners.guard import TargetGuard
from runners.request_filter import origin_of, reason_without_url

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
IDEMPOTENCY_HEADER = "Idempotency-Key"
_EXCERPT = 2000


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True)
class WebhookResult:
    """``ok`` is a 2xx answer; ``body_excerpt`` is the first 2000 characters."""

    status_code: int
    ok: bool
    body_excerpt: str


def _json_object(text: str, what: str) -> Mapping[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TargetInvalid(f"node {what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise TargetInvalid(f"node {what} must be a JSON object")
    return value


def webhook_from_node(uri: str, request_type: str, headers: str, payload: str) -> WebhookRequest:
    """A request from a Flow node's ``uri``, ``request_type``, ``headers`` and ``payload``
    (the last two JSON text, as in the FlowRun API). The payload is sent as JSON except
    for GET, which sends none. Raises ``TargetInvalid`` for a bad method or JSON."""
    method = (request_type or "POST").upper()
    if method not in METHODS:
        raise TargetInvalid(f"request type {request_type!r} is not one of {sorted(METHODS)}")
    header_pairs = tuple((str(k), str(v)) for k, v in _json_object(headers, "headers").items())
    body = b""
    if method != "GET":
        body = json.dumps(_json_object(payload, "payload")).encode()
        if not any(name.lower() == "content-type" for name, _ in header_pairs):
            header_pairs += (("Content-Type", "application/json"),)
    return WebhookRequest(uri, method, header_pairs, body)


def with_idempotency_key(request: WebhookRequest, key: str | None) -> WebhookRequest:
    """``request`` with an ``Idempotency-Key: <key>`` header, unless ``key`` is None or
    the node's own headers already set one (the node's choice wins)."""
    if key is None or any(name.lower() == "idempotency-key" for name, _ in request.headers):
        return request
    if "\r" in key or "\n" in key:
        raise TargetInvalid("an idempotency key must not contain line breaks")
    return replace(request, headers=(*request.headers, (IDEMPOTENCY_HEADER, key)))


async def send_webhook(
    guard: TargetGuard, request: WebhookRequest, *, timeout: float = 30.0
) -> WebhookResult:
    """Send ``request`` to an address the guard checked (redirects are not followed:
    they would bypass the guard), trying the next checked address when one refuses
    the connection or does not accept it within ``timeout``. Raises
    ``TargetRefused``/``TargetInvalid`` from the guard and ``NotifyFailed`` when no
    address took the connection or no answer came within ``timeout`` seconds. A
    non-2xx answer is a result, not an error."""
    origin = origin_of(request.url)  # errors name it, not the URL: a Slack URL is a secret
    try:
        checked = await guard.check_url(request.url, use="webhook")
    except TargetRefused as exc:
        raise TargetRefused(origin, exc.address, exc.reason) from None
    except TargetInvalid as exc:
        raise TargetInvalid(reason_without_url(exc, request.url, origin)) from None
    addresses: Sequence[str | None] = checked or (None,)
    refused: list[str] = []
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        for address in addresses:
            url, headers, extensions = pinned(request, address)
            try:
                response = await client.request(
                    request.method,
                    url,
                    headers=headers,
                    content=request.body or None,
                    extensions=extensions,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Raised while opening the connection (TCP, or TLS before any byte of
                # the request): nothing was sent, so the next address may have it.
                # Any later error is final: the receiver may have acted on it.
                refused.append(f"{address or url.host}: {exc!r}")
                continue
            except httpx.HTTPError as exc:
                raise NotifyFailed(f"{request.method} {origin} failed: {exc!r}") from exc
            return WebhookResult(
                response.status_code, response.is_success, response.text[:_EXCERPT]
            )
    raise NotifyFailed(
        f"{request.method} {origin} failed: no address accepted a connection: " + "; ".join(refused)
    )


def pinned(
    request: WebhookRequest, address: str | None
) -> tuple[httpx.URL, list[tuple[str, str]], dict[str, Any]]:
    """The URL, headers and httpx extensions that send ``request`` to ``address`` (an
    IP the guard checked) instead of to what a fresh lookup of its host would answer.

    The request still names its host: in ``Host`` (unless the node set one) and, over
    TLS, as the SNI name the server's certificate is verified against. ``address``
    None (private targets allowed, nothing checked) sends the request as it is.
    """
    url = httpx.URL(request.url)
    headers = list(request.headers)
    if address is None or url.host == address:
        return url, headers, {}
    if not any(name.lower() == "host" for name, _ in headers):
        headers.append(("Host", url.netloc.decode("ascii")))
    sni = url.raw_host.decode("ascii")  # IDNA names in their ASCII form
    extensions: dict[str, Any] = {"sni_hostname": sni} if url.scheme == "https" else {}
    return url.copy_with(host=address), headers, extensions


def slack_message(text: str, fields: Mapping[str, str] | None = None) -> bytes:
    """A Slack incoming-webhook body: ``text`` (the notification fallback) and blocks with
    the text as a section plus one field per ``fields`` item."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{value}"}
                    for name, value in list(fields.items())[:10]  # Slack allows 10 fields
                ],
            }
        )
    return json.dumps({"text": text, "blocks": blocks}).encode()


async def send_slack(
    guard: TargetGuard,
    webhook_url: str,
    text: str,
    fields: Mapping[str, str] | None = None,
    *,
    timeout: float = 30.0,
    idempotency_key: str | None = None,
) -> WebhookResult:
    """POST a ``slack_message`` to a Slack incoming-webhook URL, with an
    ``Idempotency-Key`` header when ``idempotency_key`` is given; errors as
    ``send_webhook``."""
    request = WebhookRequest(
        webhook_url,
        "POST",
        (("Content-Type", "application/json"),),
        slack_message(text, fields),
    )
    request = with_idempotency_key(request, idempotency_key)
    return await send_webhook(guard, request, timeout=timeout)


@dataclass(frozen=True)
class SmtpServer:
    """Where mail goes. ``starttls`` upgrades the connection before ``username`` logs in."""

    host: str
    port: int = 25
    starttls: bool = False
    username: str = ""
    password: str = ""
    sender: str = "runledger@localhost"


def message_id(key: str, sender: str) -> str:
    """A ``Message-ID`` made of ``key`` (letters, digits, ``-`` and ``.`` kept) at the
    sender's domain (``runledger.invalid`` when the sender has none), as RFC 5322 asks:
    ``<key@domain>``."""
    local = "".join(ch for ch in key if ch.isascii() and (ch.isalnum() or ch in "-.")).strip(".")
    if not local:
        raise TargetInvalid(f"not usable in a Message-ID: {key!r}")
    domain = sender.rpartition("@")[2].strip().strip(">") if "@" in sender else ""
    if not domain or any(not (ch.isascii() and (ch.isalnum() or ch in "-.")) for ch in domain):
        domain = "runledger.invalid"
    return f"<{local}@{domain}>"


def email_message(
    sender: str, to: str, subject: str, body: str, *, idempotency_key: str | None = None
) -> EmailMessage:
    """A plain-text message, with ``Message-ID: message_id(idempotency_key, sender)``
    when a key is given; raises ``TargetInvalid`` for a recipient without ``@`` or
    header injection attempts (line breaks)."""
    for value in (sender, to, subject):
        if "\r" in value or "\n" in value:
            raise TargetInvalid("email headers must not contain line breaks")
    if "@" not in to:
        raise TargetInvalid(f"not an email address: {to!r}")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    if idempotency_key is not None:
        message["Message-ID"] = message_id(idempotency_key, sender)
    message.set_content(body)
    return message


class PinnedSMTP(smtplib.SMTP):
    """An SMTP client that connects to ``addresses`` (the guard's checked addresses of
    ``host``, tried in order) instead of resolving ``host`` again, which a DNS-rebinding
    answer could point at a private address. ``host`` is still what the client names:
    STARTTLS sends it as the SNI name and verifies the certificate against it. No
    addresses (private targets allowed, nothing checked) connects to ``host`` as it is.

    ``_get_socket`` is smtplib's own seam for how the socket is opened (``SMTP_SSL``
    overrides it too); only the TCP connect is tried per address, so an SMTP error
    never sends a message twice."""

    def __init__(self, host: str, port: int, addresses: Sequence[str], timeout: float) -> None:
        self._addresses = tuple(addresses) or (host,)
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        error: OSError | None = None
        for address in self._addresses:
            try:
                return socket.create_connection((address, port), timeout, self.source_address)
            except OSError as exc:
                error = exc
        raise OSError(f"no address of {host} accepted a connection on port {port}: {error}")


def _deliver(
    server: SmtpServer, addresses: Sequence[str], message: EmailMessage, timeout: float
) -> None:
    with PinnedSMTP(server.host, server.port, addresses, timeout) as smtp:
        smtp.ehlo()
        if server.starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if server.username:
            smtp.login(server.username, server.password)
        smtp.send_message(message)


async def send_email(
    guard: TargetGuard,
    server: SmtpServer,
    to: str,
    subject: str,
    body: str,
    *,
    timeout: float = 30.0,
    idempotency_key: str | None = None,
) -> None:
    """Send a plain-text email through ``server`` (smtplib in a worker thread, connected
    to an address the guard checked: see ``PinnedSMTP``), with a ``Message-ID`` derived
    from ``idempotency_key`` when given. Raises
    ``TargetRefused``/``TargetInvalid`` from the guard or the message builder, and
    ``NotifyFailed`` for connection, TLS, login or delivery errors."""
    if not server.host or urlsplit(f"//{server.host}").hostname is None:
        raise TargetInvalid(f"not an SMTP host: {server.host!r}")
    target = f"smtp://{server.host}:{server.port}"
    addresses = await guard.check_host(server.host, server.port, target=target, use="smtp")
    message = email_message(server.sender, to, subject, body, idempotency_key=idempotency_key)
    try:
        await asyncio.to_thread(_deliver, server, addresses, message, timeout)
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyFailed(f"email to {to} via {server.host}:{server.port} failed: {exc}") from exc
