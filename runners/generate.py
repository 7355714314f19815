"""Generating a Case: the planners that turn what the explorer saw into steps.

The ``generate`` job (``runners.jobs_generate``) loads the Site's start page in Chromium,
takes a :class:`PageSnapshot` of it (headings, links, forms with their fields, buttons;
each with a CSS selector that is unique on that page), follows a few same-origin links
and snapshots those pages too. A :class:`Planner` turns the snapshots into Case steps
(``{"action": ..., "assertion": ...}`` as ``POST /case`` takes them); the job then runs
the steps to check that they pass before it records the Case.

:class:`OfflinePlanner` (the default, ``RUNLEDGER_CASE_GENERATOR=offline``) is pure and
deterministic: no network, no model. It opens the start page and checks its heading,
picks the linked page that best fits the prompt (words of the prompt found in the link's
text, address or the page's headings, fields and buttons; a page with a form wins a
tie), clicks through to it and checks something that only that page has, checks its
heading, fills the page's text fields, then spends what is left of ``max_layers`` on
visibility checks of the page's links and buttons. It never submits a form or clicks a
button: a generated Case must not post anything to the site it tests.

A language-model backend is another :class:`Planner`; :func:`planner_from_env` is where
it would be chosen by ``RUNLEDGER_CASE_GENERATOR``. None ships: an unknown name is an
error, never a silent fallback.

The snapshots live in :mod:`runners.page_snapshot`, re-exported here, so callers keep
writing ``generate.PageSnapshot`` or ``generate.snapshot_from_json``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from runners.page_snapshot import (  # noqa: F401 (re-exported: callers write generate.<name>)
    SNAPSHOT_JS,
    Element,
    Form,
    PageSnapshot,
    followable,
    links_to_explore,
    same_page,
    snapshot_from_json,
)

GENERATOR_ENV = "RUNLEDGER_CASE_GENERATOR"
DEFAULT_GENERATOR = "offline"
MAX_LAYERS = 20
MAX_MATCH_TEXT = 120
# What a generated text field is filled with (an e-mail field gets an address).
FILL_TEXT = "runledger test"
FILL_EMAIL = "test@example.com"
FILLABLE = frozenset({"text", "search", "email", "textarea", "tel", "url", ""})


@dataclass(frozen=True)
class PlanRequest:
    """What a planner is given: the site, the budget, the user's prompt, the start page
    and the pages its links led to (by address)."""

    site_url: str
    max_layers: int
    prompt: str
    start: PageSnapshot
    linked: tuple[PageSnapshot, ...] = ()


@dataclass(frozen=True)
class Plan:
    name: str
    steps: list[dict[str, Any]] = field(default_factory=list)


class Planner(Protocol):
    """Turns what the explorer saw into Case steps (at most ``request.max_layers``)."""

    name: str

    async def plan(self, request: PlanRequest) -> Plan: ...


def _el(selector: str) -> dict[str, str]:
    return {"selector": selector, "xpath": ""}


def _no_action() -> dict[str, Any]:
    return {"type": "", "path": "", "value": "", "key": "", "element": _el("")}


def _no_assertion() -> dict[str, Any]:
    return {"type": "", "value": "", "element": _el("")}


def _step(action: dict[str, Any] | None, assertion: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "action": {**_no_action(), **(action or {})},
        "assertion": {**_no_assertion(), **(assertion or {})},
    }


def _short(text: str) -> bool:
    return bool(text) and "\n" not in text and len(text) <= MAX_MATCH_TEXT


def _check_of(element: Element) -> dict[str, Any]:
    """The strongest assertion the snapshot supports: its text, else visible, else exists."""
    if element.visible and _short(element.text):
        return {"type": "match", "operator": "equals", "value": element.text, **_sel(element)}
    return {"type": "visible" if element.visible else "exists", **_sel(element)}


def _sel(element: Element) -> dict[str, Any]:
    return {"element": _el(element.selector)}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def _page_words(page: PageSnapshot) -> set[str]:
    parts = [page.title, *(h.text for h in page.headings), *(b.text for b in page.buttons)]
    for form in page.forms:
        parts.extend(f.name for f in form.fields)
        parts.append("form")
    return _words(" ".join(parts))


def _first_heading(page: PageSnapshot) -> Element | None:
    return next((h for h in page.headings if h.selector and h.visible and h.text), None)


def _fillable(page: PageSnapshot) -> list[Element]:
    return [
        f
        for form in page.forms
        for f in form.fields
        if f.selector and f.visible and f.type in FILLABLE
    ]


def _path_of(site_url: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc != urlsplit(site_url).netloc:
        return url
    path = parts.path or "/"
    return path + (f"?{parts.query}" if parts.query else "")


class OfflinePlanner:
    """The default planner: deterministic, offline (see the module docstring)."""

    name = "offline"

    async def plan(self, request: PlanRequest) -> Plan:
        return plan_offline(request)


def _choose(request: PlanRequest) -> tuple[Element, PageSnapshot] | None:
    """The link to follow and the page it leads to: the best fit for the prompt."""
    wanted = _words(request.prompt)
    best: tuple[tuple[int, int, int], Element, PageSnapshot] | None = None
    for order, link in enumerate(request.start.links):
        if not followable(request.site_url, request.start, link):
            continue
        page = next((p for p in request.linked if same_page(p.url, link.href)), None)
        if page is None:
            continue
        words = _words(f"{link.text} {urlsplit(link.href).path}") | _page_words(page)
        score = (len(wanted & words), 1 if page.forms else 0, -order)
        if best is None or score > best[0]:
            best = (score, link, page)
    return None if best is None else (best[1], best[2])


def plan_offline(request: PlanRequest) -> Plan:
    """Steps from the snapshots, at most ``max_layers`` of them (see the module doc)."""
    layers = max(1, min(request.max_layers, MAX_LAYERS))
    start = request.start
    steps: list[dict[str, Any]] = []
    heading = _first_heading(start)
    start_check = _check_of(heading) if heading else {"type": "exists", "element": _el("body")}
    steps.append(
        _step({"type": "navigate", "path": _path_of(request.site_url, start.url)}, start_check)
    )
    current = start
    chosen = _choose(request)
    name = f"Explore {start.title or _path_of(request.site_url, start.url)}"
    if chosen is not None:
        link, page = chosen
        # After the click, check what only the new page has: the old page may still be
        # showing when the check starts, and must not satisfy it.
        old = start.selectors()
        marks = [
            *(f.element for f in page.forms),
            *page.headings,
            *(f for form in page.forms for f in form.fields),
            *page.buttons,
            *page.links,
        ]
        mark = next((m for m in marks if m.selector and m.visible and m.selector not in old), None)
        if mark is not None:
            steps.append(_step({"type": "click", **_sel(link)}, {"type": "visible", **_sel(mark)}))
            current = page
            name = f"{start.title or 'Start'} → {page.title or link.text or link.href}"
            page_heading = _first_heading(page)
            if page_heading is not None and _short(page_heading.text):
                steps.append(_step(None, _check_of(page_heading)))
    for fillable in _fillable(current):
        value = FILL_EMAIL if fillable.type == "email" else FILL_TEXT
        steps.append(
            _step(
                {"type": "change", **_sel(fillable), "value": value},
                {"type": "visible", **_sel(fillable)},
            )
        )
    checked = {s["assertion"]["element"]["selector"] for s in steps}
    for extra in (*current.buttons, *current.links):
        if extra.selector and extra.visible and extra.selector not in checked:
            steps.append(_step(None, _check_of(extra)))
            checked.add(extra.selector)
    prompt = request.prompt.strip()
    if prompt:
        name = f"{name}: {prompt}"
    return Plan(name[:200], steps[:layers])


def planner_from_env(env: Mapping[str, str] | None = None) -> Planner:
    """The planner ``RUNLEDGER_CASE_GENERATOR`` names (``offline`` when unset)."""
    env = os.environ if env is None else env
    chosen = (env.get(GENERATOR_ENV) or DEFAULT_GENERATOR).strip().lower()
    if chosen == DEFAULT_GENERATOR:
        return OfflinePlanner()
    raise ValueError(
        f"{GENERATOR_ENV}={chosen!r} names no case generator; known: {DEFAULT_GENERATOR}"
    )
