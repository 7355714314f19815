"""Generating a Case: what the explorer saw (page snapshots) and the planners that turn
it into steps.

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
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

GENERATOR_ENV = "RUNLEDGER_CASE_GENERATOR"
DEFAULT_GENERATOR = "offline"
MAX_LAYERS = 20
MAX_MATCH_TEXT = 120
# What a generated text field is filled with (an e-mail field gets an address).
FILL_TEXT = "runledger test"
FILL_EMAIL = "test@example.com"
FILLABLE = frozenset({"text", "search", "email", "textarea", "tel", "url", ""})

# The snapshot of a page, as one script evaluated in it: unique selectors (an id when it
# is unique, else a tag:nth-of-type path from the nearest element with a unique id).
SNAPSHOT_JS = r"""
() => {
  const LIMIT = 40;
  const esc = (s) => (window.CSS && CSS.escape) ? CSS.escape(s) : s;
  const unique = (sel) => {
    try { return document.querySelectorAll(sel).length === 1; } catch (e) { return false; }
  };
  const selectorOf = (el) => {
    if (el.id && unique('#' + esc(el.id))) return '#' + esc(el.id);
    const parts = [];
    let node = el;
    while (node && node.nodeType === 1 && node !== document.documentElement) {
      if (node !== el && node.id && unique('#' + esc(node.id))) {
        parts.unshift('#' + esc(node.id));
        break;
      }
      const tag = node.tagName.toLowerCase();
      let n = 1, sib = node;
      while ((sib = sib.previousElementSibling)) if (sib.tagName === node.tagName) n++;
      parts.unshift(tag + ':nth-of-type(' + n + ')');
      node = node.parentElement;
    }
    const sel = parts.join(' > ');
    return unique(sel) ? sel : '';
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none';
  };
  const text = (el) => (el.innerText || el.value || '').trim().slice(0, 200);
  const item = (el, extra) => Object.assign(
    {selector: selectorOf(el), text: text(el), visible: visible(el)}, extra || {});
  const all = (sel) => Array.from(document.querySelectorAll(sel)).slice(0, LIMIT);
  const kind = (el) => el.tagName === 'INPUT'
    ? (el.type || 'text').toLowerCase() : el.tagName.toLowerCase();
  return {
    url: location.href,
    title: document.title || '',
    headings: all('h1, h2').map((el) => item(el)),
    links: all('a[href]').map((el) => item(el, {href: el.href, target: el.target || ''})),
    buttons: all('button, input[type=submit], input[type=button]')
      .map((el) => item(el, {type: (el.type || '').toLowerCase()})),
    forms: all('form').map((form) => item(form, {
      fields: Array.from(form.querySelectorAll('input, textarea, select')).slice(0, LIMIT)
        .map((el) => item(el, {type: kind(el), name: el.name || ''})),
    })),
  };
}
"""


@dataclass(frozen=True)
class Element:
    """An element as the explorer saw it; ``selector`` is unique on its page ('' if none
    could be made). ``href``/``target`` for links, ``type``/``name`` for fields."""

    selector: str
    text: str = ""
    visible: bool = True
    href: str = ""
    target: str = ""
    type: str = ""
    name: str = ""


@dataclass(frozen=True)
class Form:
    element: Element
    fields: tuple[Element, ...] = ()


@dataclass(frozen=True)
class PageSnapshot:
    url: str
    title: str = ""
    headings: tuple[Element, ...] = ()
    links: tuple[Element, ...] = ()
    buttons: tuple[Element, ...] = ()
    forms: tuple[Form, ...] = ()

    def selectors(self) -> frozenset[str]:
        elements = [*self.headings, *self.links, *self.buttons]
        for form in self.forms:
            elements.append(form.element)
            elements.extend(form.fields)
        return frozenset(e.selector for e in elements if e.selector)


def _element(raw: Any) -> Element:
    raw = raw if isinstance(raw, Mapping) else {}

    def s(key: str) -> str:
        value = raw.get(key)
        return value if isinstance(value, str) else ""

    return Element(
        selector=s("selector"),
        text=s("text"),
        visible=bool(raw.get("visible", True)),
        href=s("href"),
        target=s("target"),
        type=s("type"),
        name=s("name"),
    )


def _items(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    return value if isinstance(value, list) else []


def snapshot_from_json(raw: Any) -> PageSnapshot:
    """A PageSnapshot from what :data:`SNAPSHOT_JS` returned (unusable parts dropped)."""
    raw = raw if isinstance(raw, Mapping) else {}
    forms = tuple(
        Form(_element(f), tuple(_element(x) for x in _items(f, "fields")))
        for f in _items(raw, "forms")
        if isinstance(f, Mapping)
    )
    return PageSnapshot(
        url=str(raw.get("url") or ""),
        title=str(raw.get("title") or ""),
        headings=tuple(_element(x) for x in _items(raw, "headings")),
        links=tuple(_element(x) for x in _items(raw, "links")),
        buttons=tuple(_element(x) for x in _items(raw, "buttons")),
        forms=forms,
    )


def same_page(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.netloc, pa.path or "/", pa.query) == (
        pb.scheme,
        pb.netloc,
        pb.path or "/",
        pb.query,
    )


def followable(site_url: str, page: PageSnapshot, link: Element) -> bool:
    """A link the Case may click: visible, same origin, opens in the same tab, goes to
    another page (not an anchor of this one, not a download-looking file)."""
    if not (link.selector and link.visible and link.href) or link.target not in ("", "_self"):
        return False
    target, site = urlsplit(link.href), urlsplit(site_url)
    if target.scheme not in ("http", "https") or target.netloc != site.netloc:
        return False
    if same_page(link.href, page.url):
        return False
    return not re.search(r"\.(pdf|zip|png|jpe?g|gif|svg|mp4|mp3)$", target.path, re.I)


def links_to_explore(site_url: str, page: PageSnapshot, limit: int) -> list[str]:
    """The distinct addresses (fragment dropped) of the first ``limit`` followable links."""
    seen: list[str] = []
    for link in page.links:
        if not followable(site_url, page, link):
            continue
        url = urljoin(link.href, urlsplit(link.href)._replace(fragment="").geturl())
        if not any(same_page(url, s) for s in seen):
            seen.append(url)
        if len(seen) >= limit:
            break
    return seen


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
