"""The dashboard at ``/ui``: served without a token under a strict Content-Security-Policy,
no path reaches a file outside ``api/dashboard/``, and in a real Chromium it signs in
with a token, shows the account's Processes and follows new ones live over ``/stream``.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from starlette.testclient import TestClient

from api import ApiDeps, create_app
from api.routes.dashboard import ASSETS, FOLDER
from tests.integration.chromium import launch, require_chromium
from tests.integration.conftest import Stack, start_stack
from tests.integration.test_api_process_events import send

WINDOW_S = 2.0  # short SSE windows: the page must follow across reconnects
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"
ESCAPES = [
    "/ui/../../etc/passwd",
    "/ui/../routes/dashboard.py",
    "/ui/..%2f..%2fetc%2fpasswd",
    "/ui/%2e%2e/%2e%2e/etc/passwd",
    "/ui/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/ui/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/ui/..%5c..%5cetc%5cpasswd",
    "/ui/%252e%252e%252fetc%252fpasswd",
    "/ui/..",
    "/ui/%2e%2e",
    "/ui/.",
    "/ui//etc/passwd",
    "/ui/%2fetc%2fpasswd",
    "/ui/..;/etc/passwd",
    "/ui/index.html%00.js",
    "/ui/__init__.py",
]


@pytest.fixture(scope="module")
def ui_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"RUNLEDGER_SSE_WINDOW_S": str(WINDOW_S), "RUNLEDGER_SSE_HEARTBEAT_S": "0.5"}
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("ui"), env)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def local() -> Iterator[TestClient]:
    # The dashboard's routes touch neither the read model nor the bus.
    app = create_app(ApiDeps(reads=None, commands=None, positions=None))  # type: ignore[arg-type]
    with TestClient(app) as client:
        yield client


def _csp(response: Any) -> dict[str, str]:
    header = response.headers["content-security-policy"]
    return {d.split()[0]: d.strip() for d in header.split(";") if d.strip()}


def test_the_page_is_served_without_a_token_under_a_self_only_policy(local: TestClient) -> None:
    r = local.get("/ui")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    policy = _csp(r)
    assert policy["default-src"] == "default-src 'none'"
    for directive in ("script-src", "style-src", "connect-src"):
        assert policy[directive] == f"{directive} 'self'", policy
    assert policy["img-src"] == "img-src 'self' blob:"  # screenshots fetched with the token
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"
    assert "unsafe" not in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def test_every_file_of_the_folder_is_served_with_the_policy(local: TestClient) -> None:
    names = {p.name for p in FOLDER.iterdir() if p.is_file()}
    assert {"index.html", "app.js", "style.css"} <= names
    assert set(ASSETS) == names
    for name in names:
        r = local.get(f"/ui/{name}")
        assert r.status_code == 200, name
        assert r.content == (FOLDER / name).read_bytes()
        assert "default-src 'none'" in r.headers["content-security-policy"], name
    assert local.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert local.get("/ui/missing.js").status_code == 404


def test_the_page_needs_nothing_the_policy_forbids() -> None:
    html = (FOLDER / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert "<style" not in html and " style=" not in html, "inline style"
    assert not re.search(r"\bon[a-z]+=", html), "inline event handler"
    for url in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert url.startswith("/ui/") and url.removeprefix("/ui/") in ASSETS, url
    for path in FOLDER.glob("*.js"):
        code = path.read_text()
        sink = re.search(
            r"\.(?:inner|outer)HTML\b|insertAdjacentHTML|document\.write|\beval\(", code
        )
        assert sink is None, f"{path.name} uses {sink}: API data must go in as text"
        for module in re.findall(r'from "\./([^"]+)"', code):
            assert module in ASSETS, f"{path.name} imports {module}"


def test_the_stream_listens_to_every_run_event_type_of_the_ledger() -> None:
    # EventSource hands a named event only to listeners of that name.
    code = (FOLDER / "live.js").read_text()
    listed = set(re.findall(r'"((?:process|flowrun|caserun)\.[a-z_]+)"', code))
    released = {
        p.name.split(".v")[0]
        for p in SCHEMAS.glob("*.avsc")
        if p.name.startswith(("process.", "flowrun.", "caserun."))
    }
    assert released and listed == released


def _raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client normalises ``..`` or ``%2e``)."""
    where = urlparse(url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {where.netloc}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


@pytest.mark.integration
def test_no_path_escapes_the_dashboard_folder(ui_stack: Stack) -> None:
    status, body = _raw_get(ui_stack.url, "/ui/style.css")
    assert status == 200 and (FOLDER / "style.css").read_bytes() in body
    for path in ESCAPES:
        status, body = _raw_get(ui_stack.url, path)
        assert status == 404, (path, body[:300])
        assert b"root:" not in body and b"def _serve" not in body, path


def _new_process(client: httpx.Client, kind: str) -> str:
    body = {"type": kind, "steps": [{"id": "fetch", "name": "Fetch"}, {"id": "check"}]}
    return str(send(client, "/process", body).json()["id"])


def _count(client: httpx.Client, status: str) -> int:
    r = client.get("/process", params={"status": status, "limit": 1, "wait": "true"})
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


def _note(problems: list[str], text: str, bad: bool) -> None:
    if bad:
        problems.append(text)


@pytest.mark.integration
def test_chromium_signs_in_and_follows_a_new_process_live(ui_stack: Stack) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    client = ui_stack.authenticated("acme")
    before = _new_process(client, "dashboard.before")
    send(client, f"/process/{before}/progress", {"progress": 30, "message": "warming up"})
    problems: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            # A blocked script, style or connection shows up as a console error.
            page.on("console", lambda m: _note(problems, m.text, m.type == "error"))
            page.on("pageerror", lambda exc: _note(problems, str(exc), True))
            page.goto(ui_stack.url + "/ui")

            page.fill("#token", "rl_not-a-real-token")
            page.click("#signin-button")
            expect(page.locator("#signin-error")).to_be_visible()
            expect(page.locator("#signin-error")).to_contain_text("not accepted")
            expect(page.locator("#dashboard")).to_be_hidden()
            problems.clear()  # the 401 of the wrong token is logged by the browser

            page.fill("#token", ui_stack.token("acme"))
            page.click("#signin-button")
            old_row = page.locator(f'.row[data-id="{before}"]')
            expect(old_row).to_contain_text("dashboard.before")
            expect(old_row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "30")
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
            page.evaluate("window.__sameDocument = true")

            new = _new_process(client, "dashboard.live")
            new_row = page.locator(f'.row[data-id="{new}"]')
            expect(new_row).to_contain_text("dashboard.live", timeout=15_000)
            expect(new_row.locator(".badge")).to_have_text("pending")
            send(client, f"/process/{new}/progress", {"progress": 55, "message": "halfway"})
            bar = new_row.get_by_role("progressbar")
            expect(bar).to_have_attribute("aria-valuenow", "55", timeout=15_000)
            expect(new_row).to_contain_text("halfway")
            expect(new_row.locator(".badge")).to_have_text("running")
            time.sleep(WINDOW_S + 0.5)  # the node has closed the stream; the browser resumes
            send(client, f"/process/{new}/progress", {"progress": 80})
            expect(bar).to_have_attribute("aria-valuenow", "80", timeout=15_000)
            running = page.locator('.tile[data-status="running"] .tile-count')
            expect(running).to_have_text(str(_count(client, "running")), timeout=15_000)

            new_row.click()
            expect(page.locator(".detail-id")).to_have_text(new)
            history = page.locator(".history tbody tr")
            expect(history).to_have_count(4)  # created, started, progress, progress
            send(client, f"/process/{new}/steps/fetch/start")
            expect(history).to_have_count(5, timeout=15_000)
            expect(page.locator('.step[data-step="fetch"] .badge')).to_have_text("running")
            assert page.evaluate("window.__sameDocument") is True  # no reload on the way

            page.click("#signout")
            expect(page.locator("#signin")).to_be_visible()
            assert page.evaluate("sessionStorage.length") == 0
        finally:
            browser.close()
    assert problems == []
