"""The guard's per-tab resolution cache under a real Chromium: a guarded scan resolves
its host once for the request filter and the egress proxy together."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from runners.artifacts import ArtifactStore
from runners.browser import Browser
from runners.guard import TargetGuard
from runners.scan import ScanResult, scan
from tests.site.server import TestSite

pytestmark = pytest.mark.integration


@pytest.fixture
def site(chromium_site: TestSite) -> TestSite:
    return chromium_site


def test_a_guarded_scan_resolves_its_host_once_per_tab(site: TestSite, tmp_path: Path) -> None:
    """public.test stands for a public host (8.8.8.8) served by the local test site. The
    page, its stylesheet and its logo each pass the request filter and the egress proxy:
    without the cache that is two lookups per request; with it, one per tab."""
    lookups: list[tuple[str, int]] = []
    opened: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        lookups.append((host, port))
        return ["8.8.8.8"]

    async def to_site(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        opened.append((address, port))
        return await asyncio.open_connection("127.0.0.1", port)

    # A clock that stands still: a scan slower than the cache's TTL on a loaded machine
    # must not make the count flaky (expiry has its unit tests).
    guard = TargetGuard(allow_private=False, resolver=resolve, opener=to_site, clock=lambda: 0.0)
    page = f"http://public.test:{site.port}/"

    async def two_scans() -> list[ScanResult]:
        async with Browser() as browser:
            return [await scan(browser, guard, ArtifactStore(tmp_path), page) for _ in range(2)]

    first, second = asyncio.run(two_scans())
    assert first.status == 200 and second.status == 200
    assert first.requests >= 3  # the page, its stylesheet and its logo
    assert "/" in site.hits and len(site.hits) >= 6
    # scan() checks the URL itself first (not through the tab), then one lookup per tab.
    assert lookups == [("public.test", site.port)] * 4
    assert opened and set(opened) == {("8.8.8.8", site.port)}
