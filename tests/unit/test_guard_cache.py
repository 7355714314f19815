"""The per-tab resolution cache of the target guard, with an injected resolver counting
its calls and an injected clock (no DNS, no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

import pytest

from runners.errors import TargetInvalid, TargetRefused
from runners.guard import TargetGuard
from runners.resolution_cache import RESOLUTION_TTL_S, ResolutionCache

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeResolver:
    """Answers each host from ``answers`` (the next answer per call, the last one kept);
    an exception in the list is raised. Counts calls per host."""

    def __init__(self, answers: dict[str, list[list[str] | Exception]]) -> None:
        self._answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        await asyncio.sleep(0)  # a real lookup yields to the loop
        queue = self._answers[host]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeOpener:
    """Records where the guard connects; the streams are never used."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Streams:
        self.opened.append((host, port))
        return asyncio.StreamReader(), cast(asyncio.StreamWriter, None)


def _guard(resolver: FakeResolver, clock: FakeClock, opener: FakeOpener) -> TargetGuard:
    return TargetGuard(allow_private=False, resolver=resolver, opener=opener, clock=clock)


def test_the_filter_and_the_proxy_of_a_tab_resolve_a_host_once() -> None:
    resolver = FakeResolver({"example.com": [["93.184.216.34"]]})
    opener = FakeOpener()
    request_filter, connect = _guard(resolver, FakeClock(), opener).page_checks()
    assert request_filter is not None and connect is not None

    async def tab() -> None:
        for path in ("/", "/style.css", "/logo.png"):
            assert await request_filter(f"https://example.com{path}") is None
        await connect("example.com", 443)
        await connect("example.com", 443)

    asyncio.run(tab())
    assert resolver.calls == ["example.com"]
    assert opener.opened == [("93.184.216.34", 443)] * 2


def test_the_proxy_connects_to_the_address_the_filter_approved() -> None:
    # DNS rebinding: the second lookup would answer a private address.
    resolver = FakeResolver({"rebind.example": [["93.184.216.34"], ["10.0.0.7"]]})
    opener = FakeOpener()
    request_filter, connect = _guard(resolver, FakeClock(), opener).page_checks()
    assert request_filter is not None and connect is not None

    async def tab() -> None:
        assert await request_filter("http://rebind.example/") is None
        await connect("rebind.example", 80)

    asyncio.run(tab())
    assert opener.opened == [("93.184.216.34", 80)]
    assert resolver.calls == ["rebind.example"]


def test_concurrent_requests_of_one_host_share_one_lookup() -> None:
    resolver = FakeResolver({"cdn.example": [["93.184.216.34"]]})
    request_filter, _ = _guard(resolver, FakeClock(), FakeOpener()).page_checks()
    assert request_filter is not None

    async def page() -> list[Exception | None]:
        urls = [f"https://cdn.example/img{i}.png" for i in range(20)]
        return await asyncio.gather(*(request_filter(url) for url in urls))

    assert asyncio.run(page()) == [None] * 20
    assert resolver.calls == ["cdn.example"]


def test_a_host_is_resolved_again_once_the_ttl_has_passed() -> None:
    resolver = FakeResolver({"example.com": [["93.184.216.34"]]})
    clock = FakeClock()
    request_filter, connect = _guard(resolver, clock, FakeOpener()).page_checks()
    assert request_filter is not None and connect is not None

    async def tab() -> None:
        await request_filter("https://example.com/")
        clock.now += RESOLUTION_TTL_S - 0.1
        await connect("example.com", 443)
        assert resolver.calls == ["example.com"]
        clock.now += 0.1
        await connect("example.com", 443)
        assert resolver.calls == ["example.com"] * 2
        await request_filter("https://example.com/next")
        assert resolver.calls == ["example.com"] * 2

    asyncio.run(tab())


def test_each_tab_has_its_own_cache() -> None:
    resolver = FakeResolver({"example.com": [["93.184.216.34"]]})
    guard = _guard(resolver, FakeClock(), FakeOpener())

    async def two_tabs() -> None:
        for _ in range(2):
            request_filter, _ = guard.page_checks()
            assert request_filter is not None
            assert await request_filter("https://example.com/") is None

    asyncio.run(two_tabs())
    assert resolver.calls == ["example.com"] * 2
    # Webhooks and SMTP (check_url, check_host on the guard itself) are not cached.
    asyncio.run(guard.check_url("https://example.com/hook"))
    asyncio.run(guard.check_url("https://example.com/hook"))
    assert resolver.calls == ["example.com"] * 4


def test_a_private_address_stays_refused_and_each_refusal_names_its_target() -> None:
    resolver = FakeResolver({"intranet.example": [["10.0.0.5"]]})
    opener = FakeOpener()
    request_filter, connect = _guard(resolver, FakeClock(), opener).page_checks()
    assert request_filter is not None and connect is not None

    async def tab() -> list[Exception | None]:
        refusals = [
            await request_filter("http://intranet.example/"),
            await request_filter("http://intranet.example/admin"),
        ]
        with pytest.raises(TargetRefused) as caught:
            await connect("intranet.example", 80)
        return [*refusals, caught.value]

    first, second, proxied = asyncio.run(tab())
    assert isinstance(first, TargetRefused) and isinstance(second, TargetRefused)
    assert first.target == "http://intranet.example/"
    assert second.target == "http://intranet.example/admin"
    assert isinstance(proxied, TargetRefused) and proxied.address == "10.0.0.5"
    assert resolver.calls == ["intranet.example"]
    assert opener.opened == []


def test_a_failed_lookup_is_kept_no_longer_than_the_ttl() -> None:
    resolver = FakeResolver(
        {"flaky.example": [TargetInvalid("cannot resolve host 'flaky.example'"), ["1.1.1.1"]]}
    )
    clock = FakeClock()
    request_filter, _ = _guard(resolver, clock, FakeOpener()).page_checks()
    assert request_filter is not None

    async def tab() -> tuple[Exception | None, ...]:
        first = await request_filter("https://flaky.example/")
        second = await request_filter("https://flaky.example/x")
        clock.now += RESOLUTION_TTL_S
        third = await request_filter("https://flaky.example/y")
        return first, second, third

    first, second, third = asyncio.run(tab())
    assert isinstance(first, TargetInvalid) and isinstance(second, TargetInvalid)
    assert first is not second  # raised anew to each caller
    assert "flaky.example" in str(second)
    assert third is None
    assert resolver.calls == ["flaky.example"] * 2


def test_an_unexpected_resolver_error_is_not_remembered() -> None:
    resolver = FakeResolver({"example.com": [RuntimeError("resolver broke"), ["1.1.1.1"]]})
    cache = ResolutionCache(resolver, clock=FakeClock())

    async def lookups() -> Sequence[str]:
        with pytest.raises(RuntimeError):
            await cache("example.com", 443)
        return await cache("example.com", 443)

    assert asyncio.run(lookups()) == ("1.1.1.1",)
    assert resolver.calls == ["example.com"] * 2


def test_the_cache_keeps_at_most_max_hosts_dropping_the_oldest() -> None:
    hosts = [f"h{i}.example" for i in range(5)]
    resolver = FakeResolver({host: [["1.1.1.1"]] for host in hosts})
    cache = ResolutionCache(resolver, max_hosts=3, clock=FakeClock())

    async def lookups() -> None:
        for host in hosts:
            await cache(host, 443)
        assert len(cache) == 3
        await cache("h4.example", 443)  # among the newest: still kept
        assert resolver.calls == hosts
        await cache("h0.example", 443)  # the oldest: dropped, so asked again
        assert resolver.calls == [*hosts, "h0.example"]
        assert len(cache) == 3

    asyncio.run(lookups())


def test_expired_hosts_make_room_before_live_ones_are_dropped() -> None:
    hosts = ["old.example", "a.example", "b.example"]
    resolver = FakeResolver({host: [["1.1.1.1"]] for host in hosts})
    clock = FakeClock()
    cache = ResolutionCache(resolver, ttl_s=2.0, max_hosts=2, clock=clock)

    async def lookups() -> None:
        await cache("old.example", 443)
        clock.now += 1.5
        await cache("a.example", 443)
        clock.now += 1.0  # old.example expired, a.example not
        await cache("b.example", 443)
        await cache("a.example", 443)
        assert resolver.calls == hosts

    asyncio.run(lookups())


def test_a_cancelled_caller_does_not_cancel_the_lookup_others_wait_for() -> None:
    release = asyncio.Event()
    calls: list[str] = []

    async def slow(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        await release.wait()
        return ["1.1.1.1"]

    async def callers() -> Sequence[str]:
        cache = ResolutionCache(slow, clock=FakeClock())
        first = asyncio.ensure_future(cache("example.com", 443))
        second = asyncio.ensure_future(cache("example.com", 443))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        release.set()
        return await second

    assert asyncio.run(callers()) == ("1.1.1.1",)
    assert calls == ["example.com"]


def test_allow_private_has_no_page_checks_and_resolves_nothing() -> None:
    resolver = FakeResolver({})
    guard = TargetGuard(allow_private=True, resolver=resolver, clock=FakeClock())
    assert guard.page_checks() == (None, None)
    assert resolver.calls == []
