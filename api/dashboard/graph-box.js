// A FlowRun's graph in its box: drawn left to right while the box shows the drawing at
// MIN_SCALE of its size or more, else the top-to-bottom list of its layers. The box
// never scrolls sideways, on a phone or in a narrow pane, and no text is shrunk past
// reading.
//
// The choice needs the box's width, known once it is in the page: the caller calls
// fitGraphs() right after inserting it (before the browser paints, so the wrong one is
// never seen), and a ResizeObserver fits it again when the box's width changes later.
// The observer only schedules the fit for the next frame: changing the box's content
// inside its callback would resize what it observes and make Chromium report a loop.

import { h, replace } from "./dom.js";
import { flowGraph } from "./graph.js";
import { flowList } from "./graph-list.js";

const MIN_SCALE = 0.8;
const fits = new WeakMap(); // box -> its fit()

/** A ``.graph-wrap`` of ``nodes`` and ``edges``: drawn until fitGraphs() measures it. */
export function graphBox(nodes, edges) {
  const drawn = flowGraph(nodes, edges);
  const natural = drawn.viewBox.baseVal.width;
  const box = h("div", { class: "graph-wrap", dataset: { layout: "drawn" } }, drawn);
  let width = null;
  const fit = () => {
    if (!box.isConnected || !box.clientWidth) return; // not shown (yet): no width to fit
    const style = getComputedStyle(box);
    const inner = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    if (inner === width) return;
    width = inner;
    const layout = inner >= natural * MIN_SCALE ? "drawn" : "list";
    if (layout === box.dataset.layout) return;
    box.dataset.layout = layout;
    replace(box, layout === "drawn" ? drawn : flowList(nodes, edges));
  };
  fits.set(box, fit);
  let pending = false;
  const observer = new ResizeObserver(() => {
    if (!box.isConnected) {
      observer.disconnect(); // the detail was re-rendered: this box is gone
      return;
    }
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      fit();
    });
  });
  observer.observe(box);
  return box;
}

/** Fit every graph box under ``root`` to its width (call after inserting them). */
export function fitGraphs(root) {
  for (const box of root.querySelectorAll(".graph-wrap")) fits.get(box)?.();
}
