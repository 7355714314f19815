"""The target guard drilled as an attacker with an account's token would: every way of
writing a private address into a Site URL, a ``navigate`` step, a webhook or Slack URL.

The resolver here answers a public address for *every* name it is asked about, as a
public DNS name that the attacker controls would. So what these tests see refused, the
guard refused by reading the address itself, the way Chromium reads it, and not because
the system resolver happened to parse ``127.1`` or ``2130706433`` as an address. The
lookups are recorded: an address form must never reach the resolver at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence

import pytest

from runners.egress_proxy import EgressProxy
from runners.errors import TargetInvalid, TargetRefused
from runners.guard import TargetGuard
from runners.resolution_cache import RESOLUTION_TTL_S
from streams.domain.commands import InvalidCommand
from streams.domain.site import http_url

PUBLIC = "93.184.216.34"


class AnswersPublic:
    """A resolver that says every name is public, and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        return [PUBLIC]


def _guard() -> tuple[TargetGuard, AnswersPublic]:
    resolver = AnswersPublic()
    return TargetGuard(allow_private=False, resolver=resolver), resolver


# (host as written in the URL, the address Chromium goes to, the guard's reason)
ADDRESS_FORMS = [
    ("127.0.0.1", "127.0.0.1", "loopback"),
    ("127.1", "127.0.0.1", "loopback"),
    ("0", "0.0.0.0", "unspecified"),
    ("0.0.0.0", "0.0.0.0", "unspecified"),
    ("2130706433", "127.0.0.1", "loopback"),
    ("0x7f000001", "127.0.0.1", "loopback"),
    ("0X7F.1", "127.0.0.1", "loopback"),
    ("017700000001", "127.0.0.1", "loopback"),
    ("0177.0.0.01", "127.0.0.1", "loopback"),
    ("127.000.000.001", "127.0.0.1", "loopback"),
    ("127.0.0.1.", "127.0.0.1", "loopback"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254", "link-local"),
    ("2852039166", "169.254.169.254", "link-local"),
    ("169.254.169.254", "169.254.169.254", "link-local"),
    ("10.1.2.3", "10.1.2.3", "private"),
    ("012.1.2.3", "10.1.2.3", "private"),
    ("172.16.0.1", "172.16.0.1", "private"),
    ("172.31.255.254", "172.31.255.254", "private"),
    ("192.168.0.1", "192.168.0.1", "private"),
    ("0xc0a80001", "192.168.0.1", "private"),
    ("100.64.0.1", "100.64.0.1", "not globally routable"),
    ("100.127.255.254", "100.127.255.254", "not globally routable"),
    ("[::1]", "::1", "loopback"),
    ("[::]", "::", "unspecified"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1", "loopback"),
    ("[0:0:0:0:0:ffff:7f00:1]", "::ffff:7f00:1", "loopback"),
    ("[::ffff:a9fe:a9fe]", "::ffff:a9fe:a9fe", "link-local"),
    ("[fc00::1]", "fc00::1", "private"),
    ("[fd00:ec2::254]", "fd00:ec2::254", "private"),
    ("[fe80::1]", "fe80::1", "link-local"),
    ("[fe80::1%25eth0]", "fe80::1", "link-local"),
    ("[fec0::1]", "fec0::1", "site-local"),
    ("[feff::1]", "feff::1", "site-local"),
    # What Chromium folds to an address: full-width digits, ideographic full stops,
    # percent-escapes in the host.
    ("１２７.０.０.１", "127.0.0.1", "loopback"),
    ("127。0。0。1", "127.0.0.1", "loopback"),
    ("%31%32%37.0.0.1", "127.0.0.1", "loopback"),
]


@pytest.mark.parametrize(("host", "address", "reason"), ADDRESS_FORMS)
@pytest.mark.parametrize("scheme", ["http", "HTTPS", "hTtP"])
def test_every_way_of_writing_a_private_address_is_refused_without_a_lookup(
    scheme: str, host: str, address: str, reason: str
) -> None:
    guard, resolver = _guard()
    url = f"{scheme}://{host}:8080/latest/meta-data/"
    with pytest.raises(TargetRefused) as refused:
        asyncio.run(guard.check_url(url))
    assert (refused.value.address, refused.value.reason) == (address, reason)
    assert resolver.asked == []


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST.",
        "ｌｏｃａｌｈｏｓｔ",
        "app.localhost",
        "app.ｌｏｃａｌｈｏｓｔ",
        "local\u00adhost",
        "app.local\u200bhost",
        "LOCAL\u00adHOST.",
        "ip6-localhost",
    ],
)
def test_loopback_names_in_any_form_are_refused_without_a_lookup(host: str) -> None:
    guard, resolver = _guard()
    with pytest.raises(TargetRefused) as refused:
        asyncio.run(guard.check_url(f"http://{host}/"))
    assert refused.value.reason == "a loopback name"
    assert resolver.asked == []


def test_userinfo_does_not_hide_the_host() -> None:
    guard, _ = _guard()
    with pytest.raises(TargetRefused) as refused:
        asyncio.run(guard.check_url("http://example.com@127.0.0.1/"))
    assert refused.value.address == "127.0.0.1"
    with pytest.raises(TargetRefused):
        asyncio.run(guard.check_url("http://user:pw@example.com:80@[::1]:8080/"))


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1\\@example.com/", "http://example.com\\@127.0.0.1/", "http://a\\b/"]
)
def test_a_backslash_in_the_authority_is_invalid(url: str) -> None:
    """Chromium ends the host at a backslash, Python's URL parser does not: the guard
    would check example.com while the browser goes to 127.0.0.1."""
    guard, resolver = _guard()
    with pytest.raises(TargetInvalid, match="backslash"):
        asyncio.run(guard.check_url(url))
    assert resolver.asked == []


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "data:text/html,<h1>hi</h1>",
        "javascript:fetch('http://127.0.0.1/')",
        "chrome://version",
        "view-source:http://127.0.0.1/",
        "ftp://127.0.0.1/",
        "ws://example.com/",
        "wss://example.com/",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "//example.com/",
        "http:127.0.0.1",
        "http:/127.0.0.1/",
    ],
)
def test_only_http_and_https_with_a_host_are_targets(url: str) -> None:
    guard, resolver = _guard()
    with pytest.raises(TargetInvalid):
        asyncio.run(guard.check_url(url))
    assert resolver.asked == []


@pytest.mark.parametrize(
    "url",
    ["\thttp://127.0.0.1/", "http://127.0.0.1\n/", "http://loc\talhost/", " http://[::1]/"],
)
def test_whitespace_and_control_characters_do_not_hide_the_host(url: str) -> None:
    """Tabs and line breaks are dropped by browsers and by Python's parser alike."""
    guard, _ = _guard()
    with pytest.raises(TargetRefused):
        asyncio.run(guard.check_url(url))


@pytest.mark.parametrize("host", ["example.com", "1e100.net", "deadbeef.example", "0x.example"])
def test_public_names_still_pass_and_are_resolved(host: str) -> None:
    guard, resolver = _guard()
    assert asyncio.run(guard.check_url(f"https://{host}/")) == (PUBLIC,)
    assert resolver.asked == [host]


@pytest.mark.parametrize(
    ("written", "read"),
    [("8.8.8.8", "8.8.8.8"), ("134744072", "8.8.8.8"), ("0x08080808", "8.8.8.8")],
)
def test_public_addresses_in_browser_forms_pass_as_the_address(written: str, read: str) -> None:
    guard, resolver = _guard()
    assert asyncio.run(guard.check_url(f"http://{written}/")) == (read,)
    assert resolver.asked == []


@pytest.mark.parametrize(
    "host", ["08.1.1.1", "256.1.1.1", "1.2.3.4.5", "4294967296", "1..2", "0x1g", "example"]
)
def test_what_is_no_browser_address_is_treated_as_a_name(host: str) -> None:
    guard, resolver = _guard()
    asyncio.run(guard.check_host(host, 80))
    assert resolver.asked == [host]


def test_the_smtp_host_is_read_the_same_way() -> None:
    guard, resolver = _guard()
    for host in ("127.1", "2130706433", "ｌｏｃａｌｈｏｓｔ", "[::ffff:10.0.0.1]"):
        with pytest.raises(TargetRefused):
            asyncio.run(guard.check_host(host, 25, target=f"smtp://{host}:25"))
    assert resolver.asked == []


def test_a_resolver_answer_in_a_browser_form_is_read_as_that_address() -> None:
    async def odd(host: str, port: int) -> Sequence[str]:
        return ["2130706433"]

    with pytest.raises(TargetRefused) as refused:
        asyncio.run(TargetGuard(allow_private=False, resolver=odd).check_url("http://a.example/"))
    assert refused.value.address == "127.0.0.1"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "file:///etc/passwd", "javascript:alert(1)", "http://a b/", "http://"],
)
def test_the_api_refuses_what_is_no_http_url_at_create_time(url: str) -> None:
    """A Site URL, a webhook/Slack ``uri`` and an absolute ``navigate`` target go through
    ``http_url`` when the definition is created: HTTP 422 ``invalid_field``. Private
    addresses are refused by the runners, where the deployment's setting is known."""
    with pytest.raises(InvalidCommand):
        http_url(url, "site_url")


def test_closing_the_egress_proxy_with_idle_connections_logs_no_error() -> None:
    """A tab closing while Chromium holds a connection to its proxy open: the handler is
    cancelled, which asyncio's stream callback would report as an unhandled error."""
    errors: list[dict[str, object]] = []

    async def refuse(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        raise TargetRefused(host, host, "loopback")

    async def go() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        proxy = EgressProxy(refuse, lambda asked, why: None)
        port = int((await proxy.start()).rsplit(":", 1)[1])
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET http://exa")  # half a request head: the handler waits
        await writer.drain()
        await asyncio.sleep(0.1)
        await proxy.close()
        writer.close()
        await asyncio.sleep(0.1)

    asyncio.run(go())
    assert errors == []


def test_a_tab_checks_a_host_again_once_its_resolution_expires() -> None:
    """DNS rebinding against a page: the first answer is public, every later one is
    private. Within the TTL the tab keeps the checked answer (the proxy connects where
    the filter approved); after it, the new answer is checked and refused."""
    now = [0.0]
    answers = [[PUBLIC], ["10.0.0.7"]]

    async def rebinding(host: str, port: int) -> Sequence[str]:
        return answers[0] if len(answers) == 1 else answers.pop(0)

    opened: list[str] = []

    async def opener(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        opened.append(address)
        raise OSError("not reachable in this test")

    guard = TargetGuard(
        allow_private=False, resolver=rebinding, opener=opener, clock=lambda: now[0]
    )
    request_filter, connect = guard.page_checks()
    assert request_filter is not None and connect is not None

    async def go() -> tuple[Exception | None, Exception | None]:
        first = await request_filter("http://rebind.example/")
        with pytest.raises(OSError):
            await connect("rebind.example", 80)
        now[0] += RESOLUTION_TTL_S
        return first, await request_filter("http://rebind.example/")

    first, later = asyncio.run(go())
    assert first is None and opened == [PUBLIC]
    assert isinstance(later, TargetRefused) and later.address == "10.0.0.7"


def test_the_address_forms_table_agrees_with_ipaddress() -> None:
    """Guards the table itself: each expected address is one ``ipaddress`` reads."""
    for _, address, _ in ADDRESS_FORMS:
        ipaddress.ip_address(address)
