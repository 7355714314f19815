"""Page snapshots: what the Case explorer saw on a page, and which links it may follow.

:data:`SNAPSHOT_JS` is evaluated in a page and returns its headings, links, forms with
their fields, and buttons, each with a CSS selector that is unique on that page;
:func:`snapshot_from_json` turns that into a typed :class:`PageSnapshot`, dropping what
is unusable. The planners of :mod:`runners.generate` build Case steps from snapshots.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

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
