"""Review of the runners against the local test site in a real Chromium."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runners.artifacts import ArtifactStore
from runners.browser import Browser, BrowserConfig
from runners.guard import TargetGuard
from runners.scan import ScanResult, scan
from tests.site.server import TestSite

pytestmark = pytest.mark.integration

ALLOW = TargetGuard(allow_private=True)


@pytest.fixture
def site(chromium_site: TestSite) -> TestSite:
    return chromium_site


def test_waiting_for_a_free_page_does_not_count_against_a_scans_timeout(
    site: TestSite, tmp_path: Path
) -> None:
    # One page per runner: the second scan waits ~2 s for the slow one's page. Its own
    # page loads in milliseconds, so its 1.5 s budget (a node's max_wait_time) must not
    # run out while it waits: the page limit must not turn load into failed scans.
    store = ArtifactStore(tmp_path)

    async def go() -> tuple[ScanResult, ScanResult]:
        async with Browser(BrowserConfig(max_pages=1)) as browser:
            slow = asyncio.create_task(
                scan(browser, ALLOW, store, site.url("/slow?s=2"), timeout=10)
            )
            while browser.open_pages == 0:
                await asyncio.sleep(0.01)
            quick = await scan(browser, ALLOW, store, site.url("/"), timeout=1.5)
            return await slow, quick

    slow, quick = asyncio.run(go())
    assert slow.status == 200
    assert quick.status == 200
    assert quick.final_url == site.url("/")
