"""The target guard, with an injected resolver (no DNS, no network)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence

import pytest

from runners.errors import TargetInvalid, TargetRefused
from runners.guard import Resolver, TargetGuard, refusal_reason


def resolver_for(table: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        return table[host]

    return resolve


def refuse(url: str, guard: TargetGuard | None = None) -> TargetRefused:
    guard = guard or TargetGuard(allow_private=False, resolver=resolver_for({}))
    with pytest.raises(TargetRefused) as caught:
        asyncio.run(guard.check_url(url))
    return caught.value


@pytest.mark.parametrize(
    ("url", "address", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1", "loopback"),
        ("http://127.9.9.9:8080/x", "127.9.9.9", "loopback"),
        ("http://10.0.0.1/", "10.0.0.1", "private"),
        ("http://172.16.5.4/", "172.16.5.4", "private"),
        ("http://192.168.1.1/", "192.168.1.1", "private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
        ("http://0.0.0.0/", "0.0.0.0", "unspecified"),
        ("http://224.0.0.1/", "224.0.0.1", "multicast"),
        ("http://240.0.0.1/", "240.0.0.1", "private"),
        ("http://100.64.0.1/", "100.64.0.1", "not globally routable"),
        ("http://[::1]/", "::1", "loopback"),
        ("http://[::]/", "::", "unspecified"),
        ("http://[fe80::1]/", "fe80::1", "link-local"),
        ("http://[fd00::1]/", "fd00::1", "private"),
        ("http://[ff02::1]/", "ff02::1", "multicast"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe", "link-local"),
    ],
)
def test_private_addresses_are_refused_with_the_address_named(
    url: str, address: str, reason: str
) -> None:
    refused = refuse(url)
    assert refused.address == address
    assert address in str(refused)
    assert refused.reason == reason


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "app.localhost", "ip6-localhost"])
def test_loopback_names_are_refused_without_resolving(host: str) -> None:
    refused = refuse(f"http://{host}:8000/")
    assert "loopback" in str(refused)


def test_a_public_name_resolving_to_a_private_address_is_refused() -> None:
    guard = TargetGuard(
        allow_private=False,
        resolver=resolver_for({"evil.example": ["93.184.216.34", "10.1.2.3"]}),
    )
    refused = refuse("https://evil.example/", guard)
    assert refused.address == "10.1.2.3"
    assert refused.target == "https://evil.example/"


def test_public_targets_pass() -> None:
    guard = TargetGuard(
        allow_private=False,
        resolver=resolver_for({"example.com": ["93.184.216.34", "2606:2800:220:1::248"]}),
    )
    asyncio.run(guard.check_url("https://example.com/page"))
    asyncio.run(guard.check_url("http://8.8.8.8/"))
    asyncio.run(guard.check_host("example.com", 587))


def test_allow_private_lets_everything_through_without_resolving() -> None:
    guard = TargetGuard(allow_private=True, resolver=resolver_for({}))
    for url in ("http://127.0.0.1/", "http://localhost/", "http://[::1]/", "http://10.0.0.1/"):
        asyncio.run(guard.check_url(url))
    assert asyncio.run(guard.request_refusal("http://169.254.169.254/")) is None


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/", "javascript:1", "/x", "http://[::1", "//[bad"],
)
def test_non_web_schemes_are_invalid(url: str) -> None:
    guard = TargetGuard(allow_private=False, resolver=resolver_for({}))
    with pytest.raises(TargetInvalid):
        asyncio.run(guard.check_url(url))


def test_request_refusal_returns_the_error_and_ignores_page_schemes() -> None:
    guard = TargetGuard(allow_private=False, resolver=resolver_for({}))
    refusal = asyncio.run(guard.request_refusal("http://10.0.0.1/pixel.png"))
    assert isinstance(refusal, TargetRefused)
    assert asyncio.run(guard.request_refusal("data:image/png;base64,AAAA")) is None
    assert asyncio.run(guard.request_refusal("about:blank")) is None


def test_refusal_reason_of_a_public_address_is_none() -> None:
    assert refusal_reason(ipaddress.ip_address("1.1.1.1")) is None
    assert refusal_reason(ipaddress.ip_address("2606:4700:4700::1111")) is None


def test_a_page_request_that_is_no_url_is_refused_not_raised() -> None:
    guard = TargetGuard(allow_private=False, resolver=resolver_for({}))
    assert isinstance(asyncio.run(guard.request_refusal("http://[::1")), TargetInvalid)
