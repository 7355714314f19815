"""The dashboard's use of the screen, in a real Chromium: on a phone (390×844) a
FlowRun's graph is a top-to-bottom list of its layers that never scrolls sideways and
still names each node, its task, its status and an error branch's "if failed"; on a
desktop (1440×900) the graph stays drawn, fits its box, and turns into the list when the
window narrows; the overview shows ten rows or more above the fold with the live feed
beside them, and the feed folds to its newest event and stays folded after a reload.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.chromium import browser_session
from tests.integration.conftest import Stack, start_stack
from tests.integration.test_api_process_events import send
from tests.integration.test_dashboard_visual import Page, _runs

pytestmark = pytest.mark.integration

PROCESSES = 24
MIN_ROWS = 10  # fully visible list rows at 1440×900 (the old layout showed 5)

# What keeps the graph from being seen whole: its box scrolls sideways, or a node ends
# outside the box or the window. Empty when it fits.
GRAPH_PROBLEMS = """() => {
  const box = document.querySelector('.graph-wrap');
  if (!box) return ['no graph box'];
  const problems = [];
  const [sw, cw] = [box.scrollWidth, box.clientWidth];
  if (sw > cw) problems.push(`box scrolls: ${sw} > ${cw}`);
  const b = box.getBoundingClientRect();
  const [left, right] = [Math.max(0, b.left), Math.min(innerWidth, b.right)];
  const span = (a, z) => `${Math.round(a)}..${Math.round(z)}`;
  for (const node of box.querySelectorAll('.gnode')) {
    const r = node.getBoundingClientRect();
    if (r.left < left - 1 || r.right > right + 1) {
      problems.push(`${node.dataset.node}: ${span(r.left, r.right)} outside ${span(left, right)}`);
    }
  }
  return problems;
}"""

# List rows whose whole height is on screen: inside the list's box and the window.
ROWS_IN_VIEW = """() => {
  const list = document.getElementById('list').getBoundingClientRect();
  const bottom = Math.min(list.bottom, innerHeight) + 1;
  return [...document.querySelectorAll('#list .row')]
    .map((r) => r.getBoundingClientRect())
    .filter((r) => r.top >= list.top - 1 && r.bottom <= bottom).length;
}"""


@dataclass(frozen=True)
class Seeded:
    flowrun: str
    running: list[str]  # Processes that are running: live progress for the feed


@pytest.fixture(scope="module")
def ui_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"RUNLEDGER_SSE_WINDOW_S": "5", "RUNLEDGER_SSE_HEARTBEAT_S": "0.5"}
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("ui-layout"), env)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def seeded(ui_stack: Stack) -> Seeded:
    """PROCESSES Processes, two in three running with a message; and the FlowRun of
    test_dashboard_visual (scan → contact (failed) → notify, and alert "if failed")."""
    client = ui_stack.authenticated("acme")
    steps = [{"id": "fetch", "name": "Fetch the sitemap"}, {"id": "render", "name": "Render"}]
    running = []
    for i in range(PROCESSES):
        pid = str(
            send(client, "/process", {"type": f"layout.audit.{i}", "steps": steps}).json()["id"]
        )
        if i % 3:
            send(client, f"/process/{pid}/start")
            send(client, f"/process/{pid}/progress", {"progress": 3 * i, "message": "rendering"})
            running.append(pid)
    flowrun, _ = _runs(ui_stack)
    r = client.get(f"/flowrun/{flowrun}", params={"wait": "true"})
    assert r.status_code == 200, r.text
    return Seeded(flowrun, running)


@pytest.fixture(scope="module")
def browser(seeded: Seeded) -> Iterator[Any]:
    """Started after the data and tokens (see ``browser_session``)."""
    yield from browser_session()


@pytest.fixture
def pages(browser: Any, ui_stack: Stack) -> Iterator[list[Page]]:
    opened: list[Page] = []
    try:
        yield opened
    finally:
        for p in opened:
            p.close()


def _open(pages: list[Page], browser: Any, stack: Stack, viewport: str) -> Page:
    page = Page(browser, stack, viewport)
    pages.append(page)
    return page


def _settled(page: Any, script: str, seconds: float = 10) -> list[str]:
    """``script``'s problems once there are none, or the last ones after ``seconds``:
    the graph box picks its layout a frame after a resize."""
    deadline = time.monotonic() + seconds
    problems: list[str] = page.evaluate(script)
    while problems and time.monotonic() < deadline:
        page.wait_for_timeout(100)
        problems = page.evaluate(script)
    return problems


def test_on_a_phone_the_graph_is_seen_whole_and_still_says_how_each_node_went(
    browser: Any, ui_stack: Stack, seeded: Seeded, pages: list[Page]
) -> None:
    from playwright.sync_api import expect

    p = _open(pages, browser, ui_stack, "phone")
    page = p.sign_in(f"#/flowrun/{seeded.flowrun}")
    graph = page.locator(".graph-wrap")
    expect(graph.locator(".gnode").first).to_be_visible()
    assert _settled(page, GRAPH_PROBLEMS) == []
    # Each node in words: its name, its task, its status; the error branch says so.
    for node_id, task, state in [
        ("scan", "scan", "passed"),
        ("contact", "case", "failed"),
        ("notify", "webhook", "skipped"),
        ("alert", "webhook", "passed"),
    ]:
        node = graph.locator(f'.gnode[data-node="{node_id}"]')
        expect(node.locator(".gnode-title")).to_have_text(node_id)
        expect(node.locator(".gnode-state")).to_have_text(state)
        expect(node.locator(".gnode-sub")).to_contain_text(task)
    expect(graph.locator(".edge-label")).to_have_text(["if failed"])
    expect(graph.locator('.gnode[data-node="alert"] .edge-label')).to_be_visible()
    # Two nodes after one: each says where it comes from.
    expect(graph.locator('.gnode[data-node="notify"]')).to_contain_text("after contact")
    # In the order they run: every node below the layer it comes after.
    tops = {
        n: graph.locator(f'.gnode[data-node="{n}"]').evaluate("e => e.getBoundingClientRect().top")
        for n in ("scan", "contact", "notify", "alert")
    }
    assert tops["scan"] < tops["contact"] < min(tops["notify"], tops["alert"]), tops
    # Readable: no text of the graph is smaller than 11 px (the drawn graph shrank to 9).
    smallest = graph.evaluate(
        "g => Math.min(...[...g.querySelectorAll('.gnode *')]"
        ".map((e) => parseFloat(getComputedStyle(e).fontSize)))"
    )
    assert smallest >= 11, smallest
    assert p.layout_problems() == []
    assert p.errors == []


def test_on_a_desktop_the_graph_is_drawn_whole_and_a_narrowing_window_lists_it(
    browser: Any, ui_stack: Stack, seeded: Seeded, pages: list[Page]
) -> None:
    from playwright.sync_api import expect

    p = _open(pages, browser, ui_stack, "desktop")
    page = p.sign_in(f"#/flowrun/{seeded.flowrun}")
    expect(page.locator(".graph-wrap svg.graph .gnode").first).to_be_visible()
    assert _settled(page, GRAPH_PROBLEMS) == []  # the old pane scrolled it by a few px
    # The window narrows to a phone's: the same page lists the graph, seen whole.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.locator(".graph-wrap ol.graph .gnode")).to_have_count(4)
    assert _settled(page, GRAPH_PROBLEMS) == []
    page.set_viewport_size({"width": 1440, "height": 900})
    expect(page.locator(".graph-wrap svg.graph .gnode")).to_have_count(4)
    assert _settled(page, GRAPH_PROBLEMS) == []
    assert p.errors == []  # no ResizeObserver loop either


def test_on_a_desktop_the_list_shows_ten_rows_above_the_fold_and_the_feed_beside(
    browser: Any, ui_stack: Stack, seeded: Seeded, pages: list[Page]
) -> None:
    from playwright.sync_api import expect

    p = _open(pages, browser, ui_stack, "desktop")
    page = p.sign_in()
    expect(page.locator("#list .row")).to_have_count(PROCESSES)
    shown = page.evaluate(ROWS_IN_VIEW)
    assert shown >= MIN_ROWS, shown
    # The live feed is not lost below the fold: it is on screen, with what happens.
    client = ui_stack.client("acme")
    for n, pid in enumerate(seeded.running[:3]):
        send(client, f"/process/{pid}/progress", {"progress": 50 + n, "message": f"page {n}"})
    feed = page.locator("#feed .feed-item")
    expect(feed).to_have_count(3)
    expect(page.locator(".feed-card")).to_be_in_viewport(ratio=1)
    assert page.evaluate(ROWS_IN_VIEW) >= MIN_ROWS  # new events push no row away
    # With a detail open, the list keeps its rows and the feed its place.
    page.locator(f'.row[data-id="{seeded.running[0]}"]').click()
    expect(page.locator(".detail-id")).to_have_text(seeded.running[0])
    assert page.evaluate(ROWS_IN_VIEW) >= MIN_ROWS
    expect(page.locator(".feed-card")).to_be_in_viewport(ratio=1)
    assert p.layout_problems() == []
    assert p.errors == []


def test_the_feed_folds_to_its_newest_event_and_stays_folded(
    browser: Any, ui_stack: Stack, seeded: Seeded, pages: list[Page]
) -> None:
    from playwright.sync_api import expect

    p = _open(pages, browser, ui_stack, "desktop")
    page = p.sign_in(f"#/process/{seeded.running[1]}")
    client = ui_stack.client("acme")
    for n, pid in enumerate(seeded.running[3:6]):
        send(client, f"/process/{pid}/progress", {"progress": 60 + n, "message": f"fold {n}"})
    items = page.locator("#feed .feed-item")
    expect(items).to_have_count(3)
    detail = page.locator("#detail")
    before = detail.evaluate("e => e.getBoundingClientRect().height")
    toggle = page.locator("#feed-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(items.filter(visible=True)).to_have_count(1)
    expect(items.first).to_contain_text("fold 2")  # the newest
    # The detail takes the height the feed gave up.
    assert detail.evaluate("e => e.getBoundingClientRect().height") > before + 60
    page.reload()  # signed in again from this tab's sessionStorage
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    assert p.errors == []
