"""The dashboard as a demanding user and a security reviewer see it, in a real Chromium:
texts from the API are shown as text (never parsed as markup), the detail pane says
when its object was deleted, a node that cannot be reached keeps the token, a revoked
token signs the page out with a reason, and a node that goes away shows as such.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from runledger.tokens import revoke_token
from tests.integration.chromium import browser_session
from tests.integration.conftest import Stack, start_stack
from tests.integration.test_api_process_events import send

WINDOW_S = 2.0
PAYLOAD = "<img src=x onerror=window.__pwned=1>"
LONG = "x" * 5000  # one unbroken word

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ui_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"RUNLEDGER_SSE_WINDOW_S": str(WINDOW_S), "RUNLEDGER_SSE_HEARTBEAT_S": "0.5"}
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("ui-review"), env)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module", autouse=True)
def patient_expectations() -> Iterator[None]:
    """Every ``expect`` waits up to 15 s, not Playwright's 5 s: CI's two cores are busy
    with Kafka, the node and Chromium at once, and a wait is not what these tests check."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    try:
        yield
    finally:
        expect.set_options(timeout=5_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from browser_session(patient=False)  # patient_expectations covers the module


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def _off_loop(fn: Any, *args: Any) -> Any:
    """Run ``fn`` in a thread: Playwright's sync API keeps an event loop running on this
    one, and issuing or revoking a token uses ``asyncio.run``."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def _client(stack: Stack, account: str) -> httpx.Client:
    client: httpx.Client = _off_loop(stack.authenticated, account)
    return client


def _sign_in(page: Any, stack: Stack, token: str) -> None:
    from playwright.sync_api import expect

    page.goto(stack.url + "/ui")
    page.fill("#token", token)
    page.click("#signin-button")
    expect(page.locator("#dashboard")).to_be_visible()
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=15_000)


def test_api_texts_are_shown_as_text_never_as_markup(ui_stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    client = _client(ui_stack, "xss")
    body = {"type": PAYLOAD, "steps": [{"id": "s1", "name": PAYLOAD}, {"id": "s2", "name": LONG}]}
    pid = str(send(client, "/process", body).json()["id"])
    _sign_in(page, ui_stack, ui_stack.token("xss"))
    # Any CSP violation (an injected inline handler or script) is recorded too.
    page.evaluate(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.__violations.push(e.violatedDirective))"
    )
    row = page.locator(f'.row[data-id="{pid}"]')
    expect(row.locator(".row-title")).to_have_text(PAYLOAD)
    # Live: a message and a log line arrive over the stream.
    send(client, f"/process/{pid}/progress", {"progress": 10, "message": PAYLOAD})
    expect(row.locator(".row-message")).to_have_text(PAYLOAD, timeout=15_000)
    row.click()
    expect(page.locator(".detail-title")).to_have_text(PAYLOAD)
    send(client, f"/process/{pid}/log", {"message": PAYLOAD + LONG})
    send(client, f"/process/{pid}/fail", {"exception": PAYLOAD + "\n" + LONG})
    expect(page.locator("#detail .exception")).to_contain_text(PAYLOAD, timeout=15_000)
    logged = page.locator(".history .msg").filter(has_text=PAYLOAD + LONG)
    expect(logged).to_have_count(1, timeout=15_000)
    expect(page.locator('.step[data-step="s1"] .step-name')).to_have_text(PAYLOAD, timeout=15_000)
    expect(page.locator(".feed-text").filter(has_text=PAYLOAD).first).to_be_visible()

    assert page.evaluate("window.__pwned") is None
    # The only pictures of the dashboard are ours; a parsed payload would add an <img>.
    assert page.evaluate("document.querySelectorAll('#dashboard img').length") == 0
    assert page.evaluate("window.__violations") == []
    # Very long texts wrap or clip inside their panes: the page never scrolls sideways.
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def test_the_open_detail_says_when_its_process_is_deleted(ui_stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    client = _client(ui_stack, "deleting")
    pid = str(send(client, "/process", {"type": "doomed"}).json()["id"])
    _sign_in(page, ui_stack, ui_stack.token("deleting"))
    page.locator(f'.row[data-id="{pid}"]').click()
    expect(page.locator(".detail-id")).to_have_text(pid)
    r = client.delete(f"/process/{pid}", params={"wait": "true"})
    assert r.status_code in (200, 202, 204), r.text
    expect(page.locator(f'.row[data-id="{pid}"]')).to_have_count(0, timeout=15_000)
    expect(page.locator("#detail")).to_contain_text("was deleted", timeout=15_000)
    expect(page.locator("#detail")).not_to_contain_text("Loading")


def _unreachable(route: Any) -> None:
    route.abort("connectionrefused")


def test_a_node_that_cannot_be_reached_keeps_the_token(ui_stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    _client(ui_stack, "acme")
    token = ui_stack.token("acme")
    page.goto(ui_stack.url + "/ui")
    page.route("**/process?*", _unreachable)
    page.fill("#token", token)
    page.click("#signin-button")
    expect(page.locator("#signin-error")).to_contain_text("cannot be reached")
    # Nothing was wrong with the token: it stays, so signing in again is one click.
    assert page.input_value("#token") == token
    page.unroute("**/process?*")
    page.click("#signin-button")
    expect(page.locator("#dashboard")).to_be_visible()

    # A reload while the node is away does not forget the token either: the page
    # waits for the node and comes back by itself.
    page.route("**/process?*", _unreachable)
    page.reload()
    expect(page.locator("#signin-error")).to_contain_text("cannot be reached")
    assert page.evaluate("sessionStorage.length") == 1
    page.unroute("**/process?*")
    expect(page.locator("#dashboard")).to_be_visible(timeout=15_000)
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=15_000)


def test_a_revoked_token_signs_the_page_out_with_a_reason(ui_stack: Stack, page: Any) -> None:
    from playwright.sync_api import expect

    _client(ui_stack, "revoked")
    token = ui_stack.token("revoked")
    _sign_in(page, ui_stack, token)
    _off_loop(asyncio.run, revoke_token(ui_stack.settings, "revoked", token))
    # The stream ends after its window; its reconnect is refused and the page asks again.
    expect(page.locator("#signin")).to_be_visible(timeout=20_000)
    expect(page.locator("#signin-error")).to_contain_text("revoked")
    assert page.evaluate("sessionStorage.length") == 0


def test_a_node_that_goes_away_shows_and_the_page_follows_it_back(
    ui_stack: Stack, page: Any
) -> None:
    # It restarts the module's node; the tests after it need it back in any case.
    from playwright.sync_api import expect

    client = _client(ui_stack, "acme")
    _sign_in(page, ui_stack, ui_stack.token("acme"))
    live = page.locator("#live")
    ui_stack.kill("node")
    try:
        expect(live).not_to_have_attribute("data-state", "live", timeout=15_000)
        expect(live).to_be_visible()
    finally:
        ui_stack.start("node")
    expect(live).to_have_attribute("data-state", "live", timeout=30_000)
    pid = _create_when_ready(client)
    expect(page.locator(f'.row[data-id="{pid}"]')).to_contain_text("came.back", timeout=15_000)


def _create_when_ready(client: httpx.Client) -> str:
    deadline = time.monotonic() + 20
    while True:
        r = client.post("/process", json={"type": "came.back"}, params={"wait": "true"})
        if r.status_code in (200, 201) or time.monotonic() > deadline:
            assert r.status_code in (200, 201), r.text
            return str(r.json()["id"])
        time.sleep(0.2)


# The contrast (WCAG 2) of an element's text against what is painted behind it: colours
# are read back through a canvas (computed colours may be color-mix() or color(srgb …)),
# and translucent backgrounds are laid over their ancestors' down to an opaque one.
CONTRAST_JS = """
(selector) => {
  const ctx = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
  const rgba = (css) => {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = "#000";
    ctx.fillStyle = css;
    ctx.fillRect(0, 0, 1, 1);
    const [r, g, b, a] = ctx.getImageData(0, 0, 1, 1).data;
    return [r, g, b, a / 255];
  };
  const over = (top, under) => top.slice(0, 3).map((c, i) => c * top[3] + under[i] * (1 - top[3]));
  const lum = (rgb) => {
    const [r, g, b] = rgb.map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  return [...document.querySelectorAll(selector)].map((el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const bg = rgba(getComputedStyle(e).backgroundColor);
      if (bg[3] > 0) layers.push(bg);
      if (bg[3] === 1) break;
    }
    let back = [255, 255, 255];
    for (const layer of layers.reverse()) back = over(layer, back);
    const text = over(rgba(getComputedStyle(el).color), back);
    const [hi, lo] = [lum(text), lum(back)].sort((a, b) => b - a);
    return { text: el.textContent.trim().slice(0, 30), ratio: (hi + 0.05) / (lo + 0.05) };
  });
}
"""
SMALL_TEXT = [
    ".badge",
    ".tab-active",
    ".row-message",
    ".muted",
    ".row-id",
    "#live-text",
    ".tile-label",
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_small_texts_have_enough_contrast(ui_stack: Stack, browser: Any, scheme: str) -> None:
    from playwright.sync_api import expect

    account = f"colours-{scheme}"
    client = _client(ui_stack, account)
    pids = [str(send(client, "/process", {"type": f"tone.{i}"}).json()["id"]) for i in range(5)]
    send(client, f"/process/{pids[1]}/start")
    send(client, f"/process/{pids[2]}/complete", {"object_id": "o", "result_summary": "{}"})
    send(client, f"/process/{pids[3]}/fail", {"exception": "broken"})
    send(client, f"/process/{pids[4]}/cancel")
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme=scheme)
    try:
        page = context.new_page()
        _sign_in(page, ui_stack, ui_stack.token(account))
        expect(page.locator(".row")).to_have_count(5)
        expect(page.locator('.row .badge[data-status="failed"]')).to_have_count(1)
        low = [
            (selector, found)
            for selector in SMALL_TEXT
            for found in page.evaluate(CONTRAST_JS, selector)
            if found["ratio"] < 4.5  # WCAG AA for text under 18.66px bold / 24px
        ]
    finally:
        context.close()
    assert low == [], "\n".join(map(str, low))


def test_a_live_event_during_the_history_load_is_kept(ui_stack: Stack, page: Any) -> None:
    """The history of a Process opened in the detail pane is fetched, and live events
    came in meanwhile: they were dropped, and the fetched page (read before them) did
    not have them either, so the event never showed until the Process was reopened."""
    from playwright.sync_api import expect

    client = _client(ui_stack, "early")
    pid = str(send(client, "/process", {"type": "early.events"}).json()["id"])
    _sign_in(page, ui_stack, ui_stack.token("early"))

    def stale_history(route: Any) -> None:
        # The page of events (the history is read as a count, then the page): as it is
        # now, before the log below, which reaches the page live meanwhile.
        response = route.fetch()
        if "offset=" in route.request.url:
            send(client, f"/process/{pid}/log", {"message": "written during the load"})
            time.sleep(1.5)
        route.fulfill(response=response)

    page.route("**/process/*/events*", stale_history)
    page.locator(f'.row[data-id="{pid}"]').click()
    logged = page.locator(".history .msg").filter(has_text="written during the load")
    expect(logged).to_have_count(1, timeout=15_000)
