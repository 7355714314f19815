// The overview: Process counts by status, the lists of recent objects and the feed of
// live events.

import { PROCESS_STATUSES } from "./api.js";
import { h, replace, badge, progressBar, tone, label } from "./dom.js";
import { ago, clock, duration, seconds, shortId } from "./format.js";
import { KEEP, MAX_KEPT, titleOf } from "./store.js";

export const TAB_NAMES = { process: "Processes", flowrun: "FlowRuns", caserun: "CaseRuns" };
const EMPTY_HINTS = { process: "POST /process", flowrun: "POST /flowrun", caserun: "POST /caserun" };
const ACTIVE = new Set(["pending", "running", "queued", "working", "waiting_review"]);

export function href(kind, id) {
  return `#/${kind}/${encodeURIComponent(id)}`;
}

/** A duration that the page's ticker keeps current while the run is going. */
export function liveDuration(started, completed) {
  const title = !started ? null : completed ? "took" : "running for";
  const el = h("span", { class: "num", title }, duration(seconds(started, completed)));
  if (started && !completed) el.dataset.runningSince = started;
  return el;
}

export function liveAgo(iso) {
  return h("span", { dataset: { ago: iso ?? "" }, title: iso ? `last change ${iso}` : "" }, ago(iso));
}

export function renderTiles(el, counts, filter, onFilter) {
  replace(
    el,
    PROCESS_STATUSES.map((status) =>
      h(
        "button",
        {
          type: "button",
          class: `tile tone-${tone(status)}${filter === status ? " selected" : ""}`,
          "aria-pressed": filter === status ? "true" : "false",
          dataset: { status },
          onclick: () => onFilter(filter === status ? null : status),
        },
        h("span", { class: "tile-count num" }, counts ? String(counts[status]) : "–"),
        h("span", { class: "tile-label" }, label(status)),
      ),
    ),
  );
}

function runningCount(items) {
  return items.filter((i) => ACTIVE.has(i.status)).length;
}

export function renderTabs(el, store, tab, onTab) {
  replace(
    el,
    Object.entries(TAB_NAMES).map(([kind, name]) => {
      const items = [...store.items[kind].values()];
      const active = runningCount(items);
      return h(
        "button",
        {
          type: "button",
          role: "tab",
          class: `tab${tab === kind ? " selected" : ""}`,
          "aria-selected": tab === kind ? "true" : "false",
          dataset: { kind },
          onclick: () => onTab(kind),
        },
        name,
        h("span", { class: "tab-count num" }, String(store.totals[kind])),
        active ? h("span", { class: "tab-active", title: `${active} in progress` }, `${active} active`) : null,
      );
    }),
  );
}

function partDots(parts) {
  return h(
    "span",
    { class: "dots" },
    parts.map((p) => h("i", { class: `dot tone-${tone(p.status)}`, title: `${p.name}: ${label(p.status)}` })),
  );
}

/** The message or failure of a row, cut to the rest of its second line. */
function rowMessage(item) {
  if (item.exception) return h("span", { class: "row-message bad-text", title: item.exception }, item.exception);
  return item.message ? h("span", { class: "row-message", title: item.message }, item.message) : null;
}

// A row is two lines, whatever it holds: its head, then its progress (or node and step
// dots) with the message beside it. Rows of one height let a list show more of them.
function rowBody(kind, item) {
  if (kind === "process") {
    return h(
      "div",
      { class: "row-progress" },
      progressBar(item.progress, item.status),
      h("span", { class: "pct num" }, `${Math.round(Number(item.progress) || 0)}%`),
      rowMessage(item),
    );
  }
  if (kind === "flowrun") {
    const nodes = (item.nodes ?? []).map((n) => ({ name: String(n.id), status: n.data?.status }));
    return h("div", { class: "row-parts" }, partDots(nodes), h("span", { class: "muted" }, `${nodes.length} nodes`), rowMessage(item));
  }
  const parts = [];
  for (const step of item.steps ?? []) {
    if (step.action?.status) parts.push({ name: `step ${step.index + 1} action`, status: step.action.status });
    if (step.assertion?.status) parts.push({ name: `step ${step.index + 1} assertion`, status: step.assertion.status });
  }
  return h("div", { class: "row-parts" }, partDots(parts), h("span", { class: "muted" }, `${(item.steps ?? []).length} steps`), rowMessage(item));
}

function buildRow(tab, item, isSelected) {
  return h(
    "a",
    {
      class: `row${isSelected ? " selected" : ""}`,
      href: href(tab, item.id),
      role: "listitem",
      dataset: { kind: tab, id: item.id, status: item.status },
    },
    h(
      "div",
      { class: "row-head" },
      badge(item.status),
      h("span", { class: "row-title" }, titleOf(tab, item)),
      h("code", { class: "row-id" }, shortId(item.id)),
      h(
        "span",
        { class: "row-time" },
        // Not started yet: no duration, rather than a "—" to puzzle over.
        item.time_started ? [liveDuration(item.time_started, item.time_completed), h("span", { class: "sep" }, "·")] : null,
        liveAgo(item.time_updated ?? item.time_created),
      ),
    ),
    rowBody(tab, item),
  );
}

const rows = new WeakMap(); // list element -> Map(key -> {sig, el})

/** The rows of ``tab``, newest first; returns how many. A row is rebuilt only when its
 * object changed, and a rebuilt progress bar slides from where the old one was. */
export function renderList(el, store, tab, filter, selected) {
  let items = store.sorted(tab);
  if (tab === "process" && filter) items = items.filter((i) => i.status === filter);
  if (!items.length) {
    rows.delete(el);
    replace(
      el,
      h(
        "div",
        { class: "empty" },
        filter
          ? `No ${label(filter)} Processes among those loaded.`
          : `No ${TAB_NAMES[tab]} yet. They appear here the moment they are created.`,
        filter ? null : h("span", { class: "hint" }, "Create one with ", h("code", {}, EMPTY_HINTS[tab]), "."),
      ),
    );
    return 0;
  }
  const keep = el.scrollTop;
  const before = rows.get(el) ?? new Map();
  const after = new Map();
  const slides = [];
  for (const item of items) {
    const key = `${tab}/${item.id}`;
    const isSelected = Boolean(selected && selected.kind === tab && selected.id === item.id);
    const sig = `${isSelected}|${JSON.stringify(item)}`;
    const old = before.get(key);
    if (old && old.sig === sig) {
      after.set(key, old);
      continue;
    }
    const row = buildRow(tab, item, isSelected);
    const oldFill = old?.el.querySelector(".bar-fill");
    const newFill = row.querySelector(".bar-fill");
    if (oldFill && newFill && oldFill.style.width !== newFill.style.width) {
      slides.push([newFill, newFill.style.width]);
      newFill.style.width = oldFill.style.width;
    }
    after.set(key, { sig, el: row });
  }
  rows.set(el, after);
  replace(
    el,
    filter && tab === "process"
      ? h("div", { class: "filter-note" }, "Showing ", badge(filter), " only — click the tile again to show all.")
      : null,
    [...after.values()].map((r) => r.el),
  );
  el.scrollTop = keep;
  if (slides.length) {
    requestAnimationFrame(() =>
      requestAnimationFrame(() => {
        for (const [fill, width] of slides) fill.style.width = width;
      }),
    );
  }
  return items.length;
}

/** The line under the list: how many of how many it shows, and "Show older" while
 * there is an older page (the elements are static, so the button keeps focus).
 * ``paging`` is {loading, error} of the tab's last "Show older". */
export function renderMore(el, { tab, filter, shown, total, more, capped, paging }) {
  const noun = filter ? `${label(filter)} Processes` : TAB_NAMES[tab];
  const status = el.querySelector("#list-status");
  const known = total !== null && total !== undefined;
  status.textContent = known ? `Showing ${shown} of ${Math.max(shown, total)} ${noun}` : "";
  if (capped) {
    status.textContent += ` · the dashboard keeps at most ${MAX_KEPT}; page further through GET /${tab}?offset=…`;
  }
  status.hidden = !known || (total === 0 && shown === 0);
  const error = el.querySelector("#list-error");
  error.textContent = paging.error ?? "";
  error.hidden = !paging.error;
  const button = el.querySelector("#list-older");
  button.hidden = !more && !paging.loading;
  // aria-disabled rather than disabled: a disabled button drops the keyboard focus.
  button.setAttribute("aria-disabled", paging.loading ? "true" : "false");
  button.textContent = paging.loading ? "Loading…" : "Show older";
  button.title = filter ? `The next ${KEEP} older Processes of any status` : "";
  el.setAttribute("aria-busy", paging.loading ? "true" : "false");
}

function feedText(entry) {
  const { type, event, state } = entry;
  if (type === "process.progress") return `${Math.round(Number(state.progress) || 0)}%${state.message ? ` · ${state.message}` : ""}`;
  const data = event?.data ?? {};
  return event?.message ?? data.node_id ?? (data.index !== undefined ? `step ${Number(data.index) + 1}` : "") ?? "";
}

function feedItem(entry) {
  return h(
    "li",
    { class: "feed-item", dataset: { type: entry.type, n: String(entry.n) } },
    h("span", { class: "feed-time num" }, clock(entry.event?.created_at)),
    h("i", { class: `dot tone-${tone(entry.event?.status ?? entry.state?.status)}` }),
    h(
      "a",
      { href: href(entry.kind, entry.id), class: "feed-main" },
      h("span", { class: "feed-type" }, entry.type),
      h("span", { class: "feed-title" }, `${entry.title} ${shortId(entry.id)}`),
      h("span", { class: "feed-text muted" }, String(feedText(entry) || "")),
    ),
  );
}

/** Newest first; only entries not shown yet are added, so old ones do not flash again. */
export function renderFeed(el, feed) {
  if (!feed.length) {
    replace(el, h("li", { class: "empty" }, "Waiting for events…"));
    el.dataset.last = "0";
    return;
  }
  const last = Number(el.dataset.last ?? 0);
  if (!el.dataset.last || last === 0) el.replaceChildren();
  const fresh = feed.filter((entry) => entry.n > last);
  el.prepend(...fresh.map(feedItem));
  while (el.children.length > feed.length) el.lastElementChild.remove();
  el.dataset.last = String(feed[0].n);
}

/** Keep durations of running objects and "… ago" texts current. */
export function tick(root) {
  for (const el of root.querySelectorAll("[data-running-since]")) {
    el.textContent = duration(seconds(el.dataset.runningSince, null));
  }
  for (const el of root.querySelectorAll("[data-ago]")) {
    el.textContent = ago(el.dataset.ago || null);
  }
}
