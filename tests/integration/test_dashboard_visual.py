"""The dashboard as it looks, in a real Chromium at a desktop (1440×900) and a phone
(390×844) width: no view scrolls sideways, no long id, title, message or traceback
spills out of its card, no view logs a console error, a FlowRun's graph names its nodes
and says their status in words, a failed case node still links to its CaseRun, a
history row holds a traceback in three lines, the selected row is scrolled into view,
and the empty states are one short sentence rather than blank boxes.

Runs are driven by commands as a runner would (no runner needed): the layout is what
is under test, not the runners.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from schemas import default_codec
from streams.bus import CommandBus
from streams.domain import caserun as cr
from streams.domain import flowrun as fr
from streams.domain.commands import Body
from streams.topics import Topics
from tests.integration.chromium import browser_session
from tests.integration.conftest import Stack, start_stack
from tests.integration.flow_helpers import CASE_STEPS, command, edge, node
from tests.integration.test_api_process_events import send

pytestmark = pytest.mark.integration

VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
URL_PART = "/category/very/long/path/that/keeps/going?utm_source=newsletter&utm_campaign=x" * 3
TRACEBACK = (
    'Traceback (most recent call last):\n  File "/srv/worker/jobs/crawl.py", line 212, in run\n'
    f"TimeoutError: navigation to https://shop.example.com{URL_PART} exceeded 30000 ms; "
    + "14 requests still pending. "
    * 12
)
EMPTY_ACCOUNT = "nobody-yet"
LONG_TYPE = "customer.acme-corporation.nightly-full-site-regression-with-visual-diff-and-more"
ASSERT_FAILED = "text 'Thanks, Ada!' does not equal '" + "Thanks, Grace Hopper! " * 10 + "'"

# Every element of a card that is not inside a scroll box of its own must end within
# the card; and the page must not scroll sideways.
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const se = document.scrollingElement;
  if (se.scrollWidth > innerWidth) problems.push(`page ${se.scrollWidth} > ${innerWidth}`);
  const scrolls = ['auto', 'scroll', 'hidden', 'clip'];
  const clips = (el) => scrolls.includes(getComputedStyle(el).overflowX);
  for (const card of document.querySelectorAll('.card, .tile')) {
    if (!card.offsetParent) continue;
    const right = card.getBoundingClientRect().right + 1;
    for (const el of card.querySelectorAll('*')) {
      let inner = false;
      for (let a = el.parentElement; a && a !== card; a = a.parentElement) {
        if (clips(a)) inner = true;
      }
      if (inner || !el.getClientRects().length) continue;
      const r = el.getBoundingClientRect();
      if (r.width && r.right > right) {
        const what = `${el.tagName}.${el.getAttribute('class')}`;
        problems.push(`${what} ends at ${Math.round(r.right)}, its card at ${Math.round(right)}`);
      }
    }
  }
  return problems.slice(0, 10);
}"""


@dataclass(frozen=True)
class Seeded:
    oldest: str  # the first Process created: the last row of the list
    long: str  # a failed Process with a long type, message and traceback
    flowrun: str
    caserun: str


@pytest.fixture(scope="module")
def ui_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"RUNLEDGER_SSE_WINDOW_S": "5", "RUNLEDGER_SSE_HEARTBEAT_S": "0.5"}
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("ui-visual"), env)
    try:
        yield running
    finally:
        running.stop()


async def _drive(stack: Stack, steps: list[tuple[str, str, Body]]) -> None:
    bus = CommandBus(stack.bootstrap, Topics(stack.prefix), default_codec())
    await bus.start()
    try:
        for aggregate, aggregate_id, body in steps:
            outcome = await bus.execute(command(bus, aggregate, aggregate_id, body), 30)
            assert outcome is not None and outcome.accepted, outcome
    finally:
        await bus.stop()


def _runs(stack: Stack) -> tuple[str, str]:
    """A FlowRun scan → contact (case, fails) → notify, with an error branch ``alert``
    that starts only if ``contact`` failed; and the CaseRun of ``contact``, failed at its
    last assertion with a long text. Both of account ``acme`` (flow_helpers.ACCOUNT)."""
    run_id, caserun_id = str(uuid.uuid4()), str(uuid.uuid4())
    nodes = [
        node("scan", "scan"),
        node("contact", "case", case_id="case-1"),
        node("notify", "webhook", uri="https://hooks.example.com/x"),
        node("alert", "webhook", uri="https://hooks.example.com/alert", start_if="failed"),
    ]
    edges = [edge("scan", "contact"), edge("contact", "notify"), edge("contact", "alert")]
    for i, e in enumerate(edges):
        e["id"] = f"e{i}"
    create = fr.CreateFlowRun(
        site_id="site-1",
        flow_id="flow-1",
        nodes_json=json.dumps(nodes, sort_keys=True, separators=(",", ":")),
        edges_json=json.dumps(edges, separators=(",", ":")),
        end_on_fail=False,
        title="Nightly smoke (strict greeting)",
    )
    steps = json.dumps(CASE_STEPS, sort_keys=True, separators=(",", ":"))
    case_create = cr.CreateCaseRun("site-1", "case-1", steps, "contact", run_id, "contact")
    case_parts: list[Body] = [case_create]
    for index, step in enumerate(CASE_STEPS):
        for part in ("action", "assertion"):
            if part not in step:
                continue
            case_parts.append(cr.CaseStepStart(index, part))
            last = index == len(CASE_STEPS) - 1 and part == "assertion"
            case_parts.append(
                cr.CaseStepFail(index, part, ASSERT_FAILED)
                if last
                else cr.CaseStepPass(index, part)
            )
    run_steps: list[Body] = [
        create,
        fr.NodeStart("scan"),
        fr.LogFlowRun("scanned https://shop.example.com" + URL_PART, "scan"),
        fr.NodePass("scan"),
        fr.NodeStart("contact"),
    ]
    after: list[Body] = [
        fr.NodeFail("contact", f"step 3 failed: {ASSERT_FAILED}", object_id=caserun_id),
        fr.NodeSkip("notify", "a parent failed"),
        fr.NodeStart("alert"),
        fr.NodePass("alert"),
        fr.CompleteFlowRun(fr.FAILED),
    ]
    plan = [(fr.AGGREGATE, run_id, b) for b in run_steps]
    plan += [(cr.AGGREGATE, caserun_id, b) for b in case_parts]
    plan += [(fr.AGGREGATE, run_id, b) for b in after]
    asyncio.run(_drive(stack, plan))
    return run_id, caserun_id


@pytest.fixture(scope="module")
def seeded(ui_stack: Stack) -> Seeded:
    client = ui_stack.authenticated("acme")
    ui_stack.authenticated(EMPTY_ACCOUNT).close()  # its token, issued before the browser
    steps = [{"id": "fetch", "name": "Fetch the sitemap"}, {"id": "render", "name": "Render"}]
    oldest = str(send(client, "/process", {"type": "the.oldest", "steps": steps}).json()["id"])
    for i in range(14):
        pid = send(client, "/process", {"type": f"page.audit.{i}", "steps": steps}).json()["id"]
        if i % 3:
            send(client, f"/process/{pid}/start")
            send(
                client, f"/process/{pid}/progress", {"progress": 10 + 6 * i, "message": "rendering"}
            )
    long = str(send(client, "/process", {"type": LONG_TYPE, "steps": steps}).json()["id"])
    send(client, f"/process/{long}/start")
    send(client, f"/process/{long}/progress", {"progress": 40, "message": "y" * 400})
    send(client, f"/process/{long}/steps/fetch/start")
    send(client, f"/process/{long}/steps/fetch/fail", {"exception": TRACEBACK})
    send(client, f"/process/{long}/fail", {"exception": TRACEBACK})
    flowrun, caserun = _runs(ui_stack)
    for kind, rid in (("flowrun", flowrun), ("caserun", caserun)):
        r = client.get(f"/{kind}/{rid}", params={"wait": "true"})
        assert r.status_code == 200, r.text
    return Seeded(oldest, long, flowrun, caserun)


@pytest.fixture(scope="module")
def browser(seeded: Seeded) -> Iterator[Any]:
    """Started after the data and tokens (see ``browser_session``)."""
    yield from browser_session()


class Page:
    """A signed-in page that records every console error and uncaught exception."""

    def __init__(self, browser: Any, stack: Stack, viewport: str, account: str = "acme") -> None:
        self.context = browser.new_context(viewport=VIEWPORTS[viewport])
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.url = stack.url
        self.token = stack.token(account)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def sign_in(self, hash_: str = "") -> Any:
        from playwright.sync_api import expect

        self.page.goto(f"{self.url}/ui{hash_}")
        self.page.fill("#token", self.token)
        self.page.click("#signin-button")
        expect(self.page.locator("#live")).to_have_attribute("data-state", "live")
        return self.page

    def layout_problems(self) -> list[str]:
        return list(self.page.evaluate(LAYOUT_PROBLEMS))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def pages(browser: Any, ui_stack: Stack) -> Iterator[list[Page]]:
    opened: list[Page] = []
    try:
        yield opened
    finally:
        for p in opened:
            p.close()


def _open(
    pages: list[Page], browser: Any, stack: Stack, viewport: str, account: str = "acme"
) -> Page:
    page = Page(browser, stack, viewport, account)
    pages.append(page)
    return page


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_no_view_scrolls_sideways_spills_out_of_a_card_or_logs_an_error(
    browser: Any, ui_stack: Stack, seeded: Seeded, pages: list[Page], viewport: str
) -> None:
    from playwright.sync_api import expect

    p = _open(pages, browser, ui_stack, viewport)
    page = p.sign_in()
    expect(page.locator(f'.row[data-id="{seeded.long}"]')).to_be_visible()
    seen: dict[str, list[str]] = {"overview": p.layout_problems()}
    page.click('.tile[data-status="failed"]')
    expect(page.locator(".filter-note")).to_be_visible()
    seen["filter"] = p.layout_problems()
    page.click('.tile[data-status="failed"]')
    views = [
        ("process", seeded.long, ".history tbody tr"),
        ("flowrun", seeded.flowrun, ".graph .gnode"),
        ("caserun", seeded.caserun, ".case-step"),
    ]
    for kind, rid, ready in views:
        page.evaluate(f"location.hash = '#/{kind}/{rid}'")
        expect(page.locator(".detail-id")).to_have_text(rid)
        expect(page.locator(ready).first).to_be_visible()
        seen[kind] = p.layout_problems()
    page.click('.tab[data-kind="flowrun"]')
    seen["flowrun list"] = p.layout_problems()
    page.click('.tab[data-kind="caserun"]')
    seen["caserun list"] = p.layout_problems()
    assert {view: problems for view, problems in seen.items() if problems} == {}
    assert p.errors == []


def test_the_flowrun_graph_names_its_nodes_and_says_how_they_went(
    browser: Any, ui_stack: Stack, seeded: Seeded, pages: list[Page]
) -> None:
    from playwright.sync_api import expect

    page = _open(pages, browser, ui_stack, "desktop").sign_in(f"#/flowrun/{seeded.flowrun}")
    graph = page.locator(".graph")
    expect(graph.locator('.gnode[data-node="contact"] .gnode-title')).to_have_text("contact")
    # Two webhook nodes are told apart by their names, their status is in words.
    expect(graph.locator('.gnode[data-node="notify"] .gnode-title')).to_have_text("notify")
    expect(graph.locator('.gnode[data-node="alert"] .gnode-title')).to_have_text("alert")
    expect(graph.locator('.gnode[data-node="contact"] .gnode-state')).to_have_text("failed")
    expect(graph.locator('.gnode[data-node="alert"] .gnode-state')).to_have_text("passed")
    expect(graph.locator('.gnode[data-node="notify"] .gnode-state')).to_have_text("skipped")
    expect(graph.locator(".edge-label")).to_have_text(["if failed"])  # only alert's edge
    # Legible: the graph is not shrunk to unreadable text in the pane.
    scale = page.evaluate(
        "() => { const g = document.querySelector('.graph'); "
        "return g.getBoundingClientRect().width / g.viewBox.baseVal.width; }"
    )
    assert scale >= 0.79, scale
    # The failed case node says why and still links to its CaseRun (the screenshot).
    note = page.locator('.nodes tr[data-node="contact"] td.msg')
    expect(note).to_contain_text("step 3 failed")
    note.get_by_role("link").click()
    expect(page.locator(".detail-id")).to_have_text(seeded.caserun)
    expect(page.locator(".case-step.failed .exception")).to_contain_text("Grace Hopper")


def test_a_traceback_in_the_history_takes_three_lines_not_a_screen(
    browser: Any, ui_stack: Stack, seeded: Seeded, pages: list[Page]
) -> None:
    from playwright.sync_api import expect

    for viewport in VIEWPORTS:
        page = _open(pages, browser, ui_stack, viewport).sign_in(f"#/process/{seeded.long}")
        failed = page.locator('.history tr:has(code:text-is("process.failed"))')
        expect(failed).to_be_visible()
        line = page.evaluate("parseFloat(getComputedStyle(document.body).lineHeight)")
        height = failed.evaluate("e => e.getBoundingClientRect().height")  # re-rendered live
        assert height < 5 * line, (viewport, height, line)
        # The whole text is still there: in the exception box and the row's tooltip.
        expect(page.locator(".detail > .exception")).to_contain_text("requests still pending")
        assert "requests still pending" in (failed.locator(".clamp").get_attribute("title") or "")


def test_the_selected_row_is_scrolled_into_view_and_on_a_phone_the_detail_too(
    browser: Any, ui_stack: Stack, seeded: Seeded, pages: list[Page]
) -> None:
    from playwright.sync_api import expect

    # A deep link to the oldest Process: its row is at the bottom of a scrolled list.
    page = _open(pages, browser, ui_stack, "desktop").sign_in(f"#/process/{seeded.oldest}")
    row = page.locator(f'.row[data-id="{seeded.oldest}"]')
    expect(row).to_have_class("row selected")
    expect(row).to_be_in_viewport()
    inside = row.evaluate(
        "r => { const a = r.getBoundingClientRect(), b = r.parentElement.getBoundingClientRect();"
        " return b.top <= a.top && a.bottom <= b.bottom; }"
    )
    assert inside
    assert page.evaluate("document.getElementById('list').scrollTop") > 0  # it was scrolled

    phone = _open(pages, browser, ui_stack, "phone").sign_in()
    expect(phone.locator(".detail")).to_be_hidden()  # nothing selected: no empty card
    phone.locator(f'.row[data-id="{seeded.long}"]').click()
    expect(phone.locator(".detail-id")).to_have_text(seeded.long)
    expect(phone.locator(".detail-title")).to_be_in_viewport()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_an_empty_account_shows_short_empty_states(
    browser: Any, ui_stack: Stack, pages: list[Page], viewport: str
) -> None:
    from playwright.sync_api import expect

    p = _open(pages, browser, ui_stack, viewport, account=EMPTY_ACCOUNT)
    page = p.sign_in()
    empty = page.locator("#list .empty")
    expect(empty).to_contain_text("No Processes yet")
    expect(empty.locator("code")).to_have_text("POST /process")
    for selector in ("#list", ".feed-card"):
        height = page.locator(selector).evaluate("e => e.getBoundingClientRect().height")
        assert height < 160, (selector, height)
    page.click('.tab[data-kind="flowrun"]')
    expect(empty.locator("code")).to_have_text("POST /flowrun")
    assert p.layout_problems() == []
    assert p.errors == []
