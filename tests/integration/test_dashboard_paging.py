"""The dashboard's lists beyond their first page, in a real Chromium: a list says how many
of how many it shows, "Show older" fetches the next older page of the list endpoint and
keeps it while live events arrive, the status tiles filter the loaded older objects too,
and a failed fetch says so and can be tried again.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.integration.chromium import launch, require_chromium
from tests.integration.conftest import Stack, start_stack
from tests.integration.test_api_process_events import send

TOTAL = 230  # one page of 200 on the first load, then 30 older ones
WAIT_MS = 30_000

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ui_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("ui-paging"))
    try:
        yield running
    finally:
        running.stop()


def _create(client: httpx.Client, n: int) -> None:
    # No ?wait: the commands are acknowledged once durable in Kafka; one read with
    # ?wait=true afterwards waits for all of them at once.
    r = client.post("/process", json={"type": f"paging.{n}"})
    assert r.status_code == 201, r.text


def _fill(stack: Stack, account: str) -> httpx.Client:
    """TOTAL Processes in ``account``, all applied; a client of the account."""
    client = stack.authenticated(account)  # issues the account's token first
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: _create(stack.client(account), n), range(TOTAL)))
    assert _page(client, limit=1)["count"] == TOTAL
    return client


@contextmanager
def _signed_in(stack: Stack, account: str) -> Iterator[Any]:
    """A page signed in as ``account`` with its first 200 rows shown; no page error
    may have happened by the end."""
    from playwright.sync_api import expect, sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(stack.url + "/ui")
            page.fill("#token", stack.token(account))
            page.click("#signin-button")
            expect(page.locator("#list .row")).to_have_count(200, timeout=WAIT_MS)
            expect(page.locator("#list-status")).to_contain_text(f"200 of {TOTAL}", timeout=WAIT_MS)
            yield page
        finally:
            browser.close()
    assert errors == []


def _page(client: httpx.Client, **params: Any) -> dict[str, Any]:
    r = client.get("/process", params={"wait": "true", **params})
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


@pytest.mark.integration
def test_show_older_loads_the_next_page_and_keeps_it_live(ui_stack: Stack) -> None:
    require_chromium()
    from playwright.sync_api import Route, expect

    client = _fill(ui_stack, "paging")
    oldest = _page(client, limit=1, offset=0)["results"][0]["id"]
    newest = {p["id"] for p in _page(client, limit=200, offset=TOTAL - 200)["results"]}
    assert oldest not in newest

    held: list[Route] = []
    with _signed_in(ui_stack, "paging") as page:
        rows = page.locator("#list .row")
        status = page.locator("#list-status")
        expect(page.locator(f'.row[data-id="{oldest}"]')).to_have_count(0)

        # The older page is the first one of the list: offset 0. Hold the first
        # request to see the button wait, then fail it.
        def is_older(url: str) -> bool:
            return "/process?" in url and "offset=0" in url

        page.route(is_older, lambda route: held.append(route))
        more = page.get_by_role("button", name="Show older")
        more.focus()
        page.keyboard.press("Enter")  # a real button: the keyboard works
        loading = page.locator("#list-more button")
        expect(loading).to_have_text("Loading…", timeout=WAIT_MS)
        expect(loading).to_be_disabled()
        assert len(held) == 1
        held[0].fulfill(
            status=500,
            content_type="application/json",
            body='{"error": {"code": "internal", "message": "the node broke"}}',
        )
        expect(page.locator("#list-error")).to_contain_text("the node broke", timeout=WAIT_MS)
        expect(rows).to_have_count(200)
        page.unroute(is_older)

        expect(more).to_be_focused()  # the keyboard user tries again where they were
        page.keyboard.press("Enter")
        expect(rows).to_have_count(TOTAL, timeout=WAIT_MS)
        oldest_row = page.locator(f'.row[data-id="{oldest}"]')
        expect(oldest_row).to_have_count(1)
        expect(page.locator("#list-error")).to_be_hidden()
        expect(page.get_by_role("button", name="Show older")).to_have_count(0)
        expect(status).to_contain_text(f"{TOTAL} of {TOTAL}")

        # Live events keep the older page: a new Process is added, none dropped,
        # and the oldest one updates in place.
        fresh = str(send(client, "/process", {"type": "paging.fresh"}).json()["id"])
        expect(page.locator(f'.row[data-id="{fresh}"]')).to_have_count(1, timeout=WAIT_MS)
        expect(rows).to_have_count(TOTAL + 1)
        expect(status).to_contain_text(f"{TOTAL + 1} of {TOTAL + 1}")
        send(client, f"/process/{oldest}/progress", {"progress": 40, "message": "old one"})
        bar = oldest_row.get_by_role("progressbar")
        expect(bar).to_have_attribute("aria-valuenow", "40", timeout=WAIT_MS)
        expect(oldest_row).to_contain_text("old one")
        expect(oldest_row.locator(".badge")).to_have_text("running")

        # The status tiles filter the loaded older objects as well.
        page.click('.tile[data-status="running"]')
        expect(rows).to_have_count(1, timeout=WAIT_MS)
        expect(oldest_row).to_have_count(1)
        expect(status).to_contain_text("1 of 1 running", timeout=WAIT_MS)
        page.click('.tile[data-status="pending"]')
        expect(rows).to_have_count(TOTAL, timeout=WAIT_MS)
        expect(oldest_row).to_have_count(0)
        page.click('.tile[data-status="pending"]')  # again: the filter is off
        expect(rows).to_have_count(TOTAL + 1, timeout=WAIT_MS)

        # Switching tabs and back keeps what was loaded.
        page.click('.tab[data-kind="flowrun"]')
        expect(rows).to_have_count(0, timeout=WAIT_MS)
        page.click('.tab[data-kind="process"]')
        expect(rows).to_have_count(TOTAL + 1, timeout=WAIT_MS)
        expect(oldest_row).to_have_count(1)


@pytest.mark.integration
def test_deleting_objects_older_than_the_loaded_page_keeps_count_and_paging_right(
    ui_stack: Stack,
) -> None:
    """Old objects cleaned up while the page is open: the total drops with them, and
    "Show older" then asks for the page that now holds the remaining older ones. The
    window's list position used to stay where it was, so the total stayed too and,
    after enough deletions, "Show older" read past the list's end and took the empty
    page for "all loaded", hiding the older objects left."""
    require_chromium()
    from playwright.sync_api import expect

    client = _fill(ui_stack, "paging-cleanup")
    older = [p["id"] for p in _page(client, limit=TOTAL - 200, offset=0)["results"]]
    deleted, kept = older[:10], older[10:]

    with _signed_in(ui_stack, "paging-cleanup") as page:
        rows = page.locator("#list .row")
        status = page.locator("#list-status")

        for pid in deleted:
            r = client.delete(f"/process/{pid}", params={"wait": "true"})
            assert r.status_code == 200, r.text
        left = TOTAL - len(deleted)
        expect(status).to_contain_text(f"200 of {left}", timeout=WAIT_MS)

        page.get_by_role("button", name="Show older").click()
        expect(rows).to_have_count(left, timeout=WAIT_MS)
        expect(status).to_contain_text(f"{left} of {left}")
        expect(page.get_by_role("button", name="Show older")).to_have_count(0)
        for pid in (kept[0], kept[-1]):
            expect(page.locator(f'.row[data-id="{pid}"]')).to_have_count(1)
        for pid in deleted:
            expect(page.locator(f'.row[data-id="{pid}"]')).to_have_count(0)
