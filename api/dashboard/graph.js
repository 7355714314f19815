// A FlowRun's nodes as a left-to-right graph: a node's column (its layer) is the
// longest path to it from a node without parents, so every edge points right. The
// layers are shared with the top-to-bottom list of graph-list.js.

import { s, tone, label } from "./dom.js";
import { duration, seconds } from "./format.js";

const W = 188;
const H = 58;
const GAP_X = 52;
const GAP_Y = 18;
const PAD = 14;

/** The parents of each node id (sources of the edges into it, known nodes only). */
export function parentsOf(nodes, edges) {
  const parents = new Map(nodes.map((n) => [String(n.id), []]));
  for (const e of edges) {
    const target = parents.get(String(e.target));
    if (target && parents.has(String(e.source))) target.push(String(e.source));
  }
  return parents;
}

/** The node ids by layer: a node's layer is the longest path to it from a root. */
export function layers(nodes, edges) {
  const ids = nodes.map((n) => String(n.id));
  const parents = parentsOf(nodes, edges);
  const depth = new Map();
  const visiting = new Set();
  const depthOf = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0; // a cycle cannot be created, but never loop
    visiting.add(id);
    const d = parents.get(id).reduce((m, p) => Math.max(m, depthOf(p) + 1), 0);
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const cols = [];
  for (const id of ids) {
    const d = depthOf(id);
    (cols[d] ??= []).push(id);
  }
  return cols.map((c) => c ?? []);
}

function clip(text, max) {
  const t = String(text ?? "");
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** An <svg> of ``nodes`` (FlowRun nodes with run state in data) and ``edges``. */
export function flowGraph(nodes, edges) {
  const byId = new Map(nodes.map((n) => [String(n.id), n]));
  const cols = layers(nodes, edges);
  const tallest = Math.max(1, ...cols.map((c) => c.length));
  const width = PAD * 2 + cols.length * W + (cols.length - 1) * GAP_X;
  const height = PAD * 2 + tallest * H + (tallest - 1) * GAP_Y;
  const at = new Map();
  cols.forEach((col, ci) => {
    const offset = ((tallest - col.length) * (H + GAP_Y)) / 2;
    col.forEach((id, ri) => at.set(id, { x: PAD + ci * (W + GAP_X), y: PAD + offset + ri * (H + GAP_Y) }));
  });

  const svg = s("svg", {
    class: "graph",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": "Flow graph",
  });
  // Shrink to the pane, never grow; graph-box.js shows the list instead where this
  // would shrink past legibility.
  svg.style.maxWidth = `${width}px`;
  svg.append(
    s(
      "defs",
      {},
      s(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }),
      ),
    ),
  );
  for (const e of edges) {
    const a = at.get(String(e.source));
    const b = at.get(String(e.target));
    if (!a || !b) continue;
    const x1 = a.x + W;
    const y1 = a.y + H / 2;
    const x2 = b.x;
    const y2 = b.y + H / 2;
    const target = byId.get(String(e.target));
    const status = target?.data?.status;
    svg.append(
      s("path", {
        class: `edge tone-${tone(status)}`,
        d: `M ${x1} ${y1} C ${x1 + GAP_X / 2} ${y1}, ${x2 - GAP_X / 2} ${y2}, ${x2 - 2} ${y2}`,
        "marker-end": "url(#arrow)",
      }),
    );
    // An error branch reads differently from the happy path: say so on its edge.
    if (target?.data?.start_if === "failed") {
      svg.append(s("text", { class: "edge-label", x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, "text-anchor": "middle" }, "if failed"));
    }
  }
  for (const [id, { x, y }] of at) {
    const data = byId.get(id)?.data ?? {};
    const took = data.time_started ? duration(seconds(data.time_started, data.time_completed)) : "";
    // The node's id is the name its Flow gave it ("notify", "alert"): two webhooks are
    // told apart by it, not by their task type. Below: the task, and the status in words
    // (the colour alone is not enough) with its time.
    svg.append(
      s(
        "g",
        { class: `gnode tone-${tone(data.status)}`, transform: `translate(${x} ${y})`, "data-node": id },
        s("title", {}, `${id} (${data.task_type ?? "node"}): ${label(data.status)}${data.exception ? ` — ${data.exception}` : ""}`),
        s("rect", { class: "gnode-box", width: W, height: H, rx: 10 }),
        s("rect", { class: "gnode-stripe", width: 5, height: H - 16, x: 8, y: 8, rx: 2.5 }),
        s("text", { class: "gnode-title", x: 22, y: 24 }, clip(id, 17)),
        s(
          "text",
          { class: "gnode-sub", x: 22, y: 43 },
          clip(data.task_type ?? "node", 9),
          " · ",
          s("tspan", { class: "gnode-state" }, label(data.status)),
          took ? ` ${took}` : "",
        ),
      ),
    );
  }
  return svg;
}
