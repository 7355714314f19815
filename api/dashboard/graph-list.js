// A FlowRun's nodes top to bottom, for a box too narrow for the drawn graph (a phone):
// one row of cards per layer, in the order they run, so nothing scrolls sideways and
// no name is shrunk. An arrow joins the layers; a card names its parents where the
// arrow alone does not tell them (several nodes above, or a skipped layer) and says
// "if failed" on an error branch, as the drawn graph does on its edge.

import { h, tone, label } from "./dom.js";
import { duration, seconds } from "./format.js";
import { layers, parentsOf } from "./graph.js";

function nodeCard(id, data, parents, above, siblings) {
  const took = data.time_started ? duration(seconds(data.time_started, data.time_completed)) : "";
  const task = data.task_type ?? "node";
  // The arrow from the layer above says it all when that layer is this one parent and
  // this node is alone in its layer; branches say where they come from.
  const obvious = siblings === 1 && parents.length === 1 && above.length === 1 && above[0] === parents[0];
  const branch = data.start_if === "failed" ? h("span", { class: "edge-label" }, "if failed") : null;
  const from = parents.length && !obvious ? `after ${parents.join(", ")}` : null;
  return h(
    "li",
    {
      class: `gnode tone-${tone(data.status)}`,
      dataset: { node: id },
      title: `${id} (${task}): ${label(data.status)}${data.exception ? ` — ${data.exception}` : ""}`,
    },
    h("span", { class: "gnode-title" }, id),
    h("span", { class: "gnode-sub" }, task, " · ", h("span", { class: "gnode-state" }, label(data.status)), took ? ` ${took}` : ""),
    from || branch ? h("span", { class: "gnode-from" }, from, from && branch ? " " : null, branch) : null,
  );
}

/** An <ol> of the layers of ``nodes`` (FlowRun nodes with run state in data). */
export function flowList(nodes, edges) {
  const byId = new Map(nodes.map((n) => [String(n.id), n]));
  const parents = parentsOf(nodes, edges);
  const rows = layers(nodes, edges);
  return h(
    "ol",
    { class: "graph graph-list", "aria-label": "Flow graph, top to bottom" },
    rows.map((ids, i) =>
      h(
        "li",
        { class: "glayer" },
        h(
          "ul",
          { class: "glayer-nodes" },
          ids.map((id) => nodeCard(id, byId.get(id)?.data ?? {}, parents.get(id), rows[i - 1] ?? [], ids.length)),
        ),
      ),
    ),
  );
}
