// The detail pane of one Process, FlowRun or CaseRun. A Process also shows its steps
// (GET /process/{id}/steps) and its event history (GET /process/{id}/events, then the
// live events of the stream); a CaseRun the screenshot of a failing step.

import { h, replace, badge, progressBar, tone } from "./dom.js";
import { when, clock, duration, seconds, shortId } from "./format.js";
import { fitGraphs, graphBox } from "./graph-box.js";
import { liveDuration, href } from "./overview.js";
import { titleOf } from "./store.js";

const HISTORY = 300; // newest events of a Process shown
const NOUNS = { process: "Process", flowrun: "FlowRun", caserun: "CaseRun" };

function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs
      .filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", { title: typeof v === "string" ? v : v.tagName === "CODE" ? v.textContent : null }, v))),
  );
}

function section(title, ...children) {
  return h("section", { class: "detail-section" }, h("h3", {}, title), ...children);
}

/** A history row's message, at most three lines (the full text in its tooltip). */
function historyMessage(e) {
  const text = e.message ?? (e.type === "process.progress" ? `${e.data?.progress ?? ""}%` : "");
  return h("td", { class: "msg" }, h("span", { class: "clamp", title: text.length > 120 ? text : null }, text));
}

function partSummary(part) {
  if (!part || typeof part !== "object") return "";
  const el = part.element ?? {};
  const target = el.selector || el.xpath || "";
  const bits = [part.path, target, part.key, part.value !== undefined && part.value !== "" ? JSON.stringify(part.value) : null];
  if (part.operator && part.operator !== "equals") bits.unshift(part.operator);
  return bits.filter((b) => b !== null && b !== undefined && b !== "").join(" ");
}

export class Detail {
  constructor(el, api, store) {
    this.el = el;
    this.api = api;
    this.store = store;
    this.selected = null;
    this.fetched = null; // an object not among the loaded ones (a deep link)
    this.steps = null;
    this.events = null;
    this.early = []; // live events that came while the history was loading
    this.error = null;
    this.gone = null; // why the selected object is no longer shown
    this.images = new Map(); // artifact hash -> object URL promise
    this.stepsTimer = null;
  }

  close() {
    clearTimeout(this.stepsTimer);
    this.stepsTimer = null;
    for (const p of this.images.values()) p.then((url) => url && URL.revokeObjectURL(url));
    this.images.clear();
  }

  select(selected) {
    this.selected = selected;
    this.fetched = null;
    this.steps = null;
    this.events = null;
    this.early = [];
    this.error = null;
    this.gone = null;
    this.render();
    if (!selected) return;
    const { kind, id } = selected;
    const mine = () => this.selected === selected;
    if (!this.store.get(kind, id)) {
      this.api
        .json(`/${kind}/${encodeURIComponent(id)}`)
        .then((item) => mine() && ((this.fetched = item), this.render()))
        .catch((err) => mine() && ((this.error = err.message), this.render()));
    }
    if (kind === "process") {
      this.loadSteps(selected);
      this.api
        .latest(`/process/${encodeURIComponent(id)}/events`, HISTORY)
        .then((page) => {
          if (!mine()) return;
          // The page may have been read before the newest events were applied: keep the
          // live ones that came meanwhile too.
          const bySeq = new Map((this.events ?? []).map((e) => [e.seq, e]));
          for (const e of [...page.results, ...this.early]) bySeq.set(e.seq, e);
          this.early = [];
          this.events = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
          this.render();
        })
        .catch((err) => mine() && ((this.error = err.message), this.render()));
    }
  }

  loadSteps(selected) {
    this.api
      .json(`/process/${encodeURIComponent(selected.id)}/steps?limit=1000`)
      .then((page) => this.selected === selected && ((this.steps = page.results), this.render()))
      .catch(() => {});
  }

  /** A live event: keep the open Process's history and steps current. */
  onEvent(kind, type, state, event) {
    const sel = this.selected;
    if (!sel || sel.kind !== kind || sel.id !== state.id) return;
    if (type.endsWith(".deleted")) {
      // Gone from the store and from reads: say so rather than "Loading…" for ever.
      this.fetched = null;
      this.gone = `This ${NOUNS[kind]} was deleted.`;
      return;
    }
    if (this.fetched) this.fetched = state;
    if (kind !== "process") return;
    if (this.events === null) {
      this.early.push(event); // merged when the history arrives
    } else if (!this.events.some((e) => e.seq === event.seq)) {
      this.events.push(event);
      this.events.sort((a, b) => a.seq - b.seq);
    }
    if (type !== "process.progress" && type !== "process.log" && !this.stepsTimer) {
      this.stepsTimer = setTimeout(() => {
        this.stepsTimer = null;
        if (this.selected === sel) this.loadSteps(sel);
      }, 150);
    }
  }

  item() {
    const sel = this.selected;
    return sel ? (this.store.get(sel.kind, sel.id) ?? this.fetched) : null;
  }

  render() {
    // Keep the scroll position of long lists (logs, history) across re-renders.
    const scrolls = new Map([...this.el.querySelectorAll("[data-scroll]")].map((e) => [e.dataset.scroll, e.scrollTop]));
    this.el.classList.toggle("idle", !this.selected);
    const sel = this.selected;
    const item = this.item();
    if (!sel) {
      replace(
        this.el,
        h("div", { class: "placeholder" }, h("h2", {}, "Nothing selected"), h("p", { class: "muted" }, "Pick a Process, FlowRun or CaseRun to see its steps, timings and history.")),
      );
    } else if (!item) {
      replace(this.el, h("div", { class: "placeholder" }, h("h2", {}, NOUNS[sel.kind]), h("p", { class: this.error ? "error" : "muted" }, this.error ?? this.gone ?? "Loading…")));
    } else {
      replace(this.el, this.header(sel.kind, item), ...this.body(sel.kind, item));
      fitGraphs(this.el); // drawn or listed, by the width it has now
    }
    for (const e of this.el.querySelectorAll("[data-scroll]")) {
      if (scrolls.has(e.dataset.scroll)) e.scrollTop = scrolls.get(e.dataset.scroll);
    }
  }

  header(kind, item) {
    return h(
      "header",
      { class: "detail-head" },
      h("div", { class: "eyebrow" }, NOUNS[kind], h("a", { class: "close", href: "#/", title: "Close", "aria-label": "Close" }, "×")),
      h("h2", { class: "detail-title" }, titleOf(kind, item)),
      h("div", { class: "detail-meta" }, badge(item.status), h("code", { class: "detail-id", title: item.id }, item.id)),
    );
  }

  body(kind, item) {
    if (kind === "process") return this.processBody(item);
    if (kind === "flowrun") return this.flowrunBody(item);
    return this.caserunBody(item);
  }

  timing(item) {
    return [
      ["Created", when(item.time_created)],
      ["Started", item.time_started ? when(item.time_started) : null],
      ["Finished", item.time_completed ? when(item.time_completed) : null],
      ["Duration", item.time_started ? liveDuration(item.time_started, item.time_completed) : null],
    ];
  }

  processBody(p) {
    const pct = Math.round(Number(p.progress) || 0);
    return [
      h(
        "div",
        { class: "big-progress" },
        h("div", { class: "big-progress-top" }, h("span", { class: "big-pct num" }, `${pct}%`), h("span", { class: "muted" }, p.message ?? "")),
        progressBar(p.progress, p.status),
      ),
      p.exception ? h("pre", { class: "exception" }, p.exception) : null,
      facts([
        ["Attempt", String(p.attempt)],
        ...this.timing(p),
        ["Site", p.site ? h("code", {}, p.site) : null],
        ["Object", p.object_id ? h("code", {}, p.object_id) : null],
        ["Created by", p.created_by],
      ]),
      section(
        "Steps",
        this.steps === null
          ? h("p", { class: "muted" }, "Loading…")
          : this.steps.length
            ? h(
                "ol",
                { class: "steps" },
                this.steps.map((st) =>
                  h(
                    "li",
                    { class: `step tone-${tone(st.status)}${st.enabled ? "" : " disabled"}`, dataset: { step: st.id } },
                    h("i", { class: `dot tone-${tone(st.status)}` }),
                    h("span", { class: "step-name" }, st.name || st.id),
                    st.enabled ? null : h("span", { class: "muted" }, "disabled"),
                    badge(st.status),
                  ),
                ),
              )
            : h("p", { class: "muted" }, "This Process has no steps."),
      ),
      section(
        "History",
        this.events === null
          ? h("p", { class: "muted" }, "Loading…")
          : h(
              "div",
              { class: "scroll", dataset: { scroll: "history" } },
              h(
                "table",
                { class: "history" },
                h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "time"), h("th", {}, "event"), h("th", {}, "status"), h("th", {}, "message"))),
                h(
                  "tbody",
                  {},
                  [...this.events].reverse().map((e) =>
                    h(
                      "tr",
                      { dataset: { seq: String(e.seq) } },
                      h("td", { class: "num muted" }, String(e.seq)),
                      h("td", { class: "num", title: e.created_at }, clock(e.created_at)),
                      h("td", {}, h("code", {}, e.type)),
                      h("td", {}, badge(e.status)),
                      historyMessage(e),
                    ),
                  ),
                ),
              ),
            ),
      ),
    ];
  }

  flowrunBody(run) {
    const nodes = run.nodes ?? [];
    return [
      facts([["Attempt", String(run.attempt)], ...this.timing(run), ["End on fail", run.configs?.end_on_fail ? "yes" : "no"], ["Flow", run.flow ? h("code", {}, run.flow) : null]]),
      section("Graph", graphBox(nodes, run.edges ?? [])),
      section(
        "Nodes",
        h(
          "div",
          { class: "table-wrap" },
          h(
          "table",
          { class: "nodes" },
          h("thead", {}, h("tr", {}, h("th", {}, "node"), h("th", {}, "task"), h("th", {}, "status"), h("th", {}, "started"), h("th", {}, "took"), h("th", {}, "note"))),
          h(
            "tbody",
            {},
            nodes.map((n) => {
              const d = n.data ?? {};
              // A failed case node keeps its link: the CaseRun has the failing step's screenshot.
              const caserun =
                d.task_type === "case" && d.object_id
                  ? h("a", { class: "note-link", href: href("caserun", d.object_id) }, `CaseRun ${shortId(d.object_id)} →`)
                  : null;
              const note = d.exception ?? d.reason ?? (d.attempt > 1 ? `attempt ${d.attempt}` : null);
              return h(
                "tr",
                { dataset: { node: String(n.id) } },
                h("td", {}, h("code", {}, String(n.id))),
                h("td", {}, d.task_type ?? ""),
                h("td", {}, badge(d.status)),
                h("td", { class: "num" }, clock(d.time_started)),
                h("td", { class: "num" }, d.time_started ? liveDuration(d.time_started, d.time_completed) : "—"),
                h("td", { class: d.exception ? "msg bad-text" : "msg muted" }, note ? h("span", { class: "clamp", title: note }, note) : null, caserun),
              );
            }),
          ),
          ),
        ),
      ),
      section(
        "Logs",
        (run.logs ?? []).length
          ? h(
              "ol",
              { class: "logs scroll", dataset: { scroll: "logs" } },
              run.logs.map((l) => h("li", {}, h("span", { class: "num muted" }, clock(l.timestamp)), l.step ? h("code", {}, l.step) : null, h("span", {}, l.message))),
            )
          : h("p", { class: "muted" }, "No logs yet."),
      ),
    ];
  }

  screenshot(hash) {
    if (!this.images.has(hash)) {
      this.images.set(hash, this.api.artifactUrl(hash).catch(() => null));
    }
    const img = h("img", { class: "shot", alt: "Screenshot of the page when the step failed" });
    const link = h("a", { target: "_blank", rel: "noopener", title: "Open the screenshot in full size" }, img);
    const holder = h("figure", { class: "shot-wrap" }, link, h("figcaption", { class: "muted" }, "page at the failure"));
    this.images.get(hash).then((url) => {
      if (url) {
        img.src = url;
        link.href = url;
      }
      else holder.replaceChildren(h("p", { class: "muted" }, "The screenshot could not be loaded."));
    });
    return holder;
  }

  part(name, part) {
    if (!part || typeof part !== "object" || !part.type) return null;
    const took = part.time_started ? duration(seconds(part.time_started, part.time_completed)) : "";
    return h(
      "div",
      { class: `part tone-${tone(part.status)}` },
      h("span", { class: "part-kind muted" }, name),
      h("span", { class: "part-type" }, part.type),
      h("code", { class: "part-target" }, partSummary(part)),
      h("span", { class: "part-took num muted" }, took),
      part.status ? badge(part.status) : null,
      part.exception ? h("pre", { class: "exception" }, part.exception) : null,
    );
  }

  caserunBody(run) {
    const steps = run.steps ?? [];
    return [
      run.exception ? h("pre", { class: "exception" }, run.exception) : null,
      facts([
        ...this.timing(run),
        ["Case", run.case ? h("code", {}, run.case) : null],
        ["FlowRun", run.flowrun ? h("a", { href: href("flowrun", run.flowrun) }, `${shortId(run.flowrun)} · node ${run.node ?? ""}`) : null],
      ]),
      section(
        "Steps",
        h(
          "ol",
          { class: "case-steps" },
          steps.map((st) => {
            const failed = st.action?.status === "failed" || st.assertion?.status === "failed";
            return h(
              "li",
              { class: `case-step${failed ? " failed" : ""}`, dataset: { index: String(st.index) } },
              h("span", { class: "case-step-n num" }, String(st.index + 1)),
              h("div", { class: "case-step-parts" }, this.part("action", st.action), this.part("assert", st.assertion), st.screenshot ? this.screenshot(st.screenshot) : null),
            );
          }),
        ),
      ),
    ];
  }
}

