// Building the page from API data without innerHTML: every value becomes a text node
// or an attribute set through the DOM, so nothing the API returns is parsed as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h("div", {class: "x", onclick: f}, "text", otherNode). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** An SVG element, the same way. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** The colour family of a status, shared by badges, bars and graph nodes. */
export function tone(status) {
  switch (status) {
    case "pending":
    case "queued":
      return "queued";
    case "running":
    case "working":
      return "active";
    case "waiting_review":
      return "review";
    case "completed":
    case "passed":
      return "ok";
    case "failed":
      return "bad";
    default:
      return "muted"; // cancelled, skipped, unknown
  }
}

export function label(status) {
  return String(status ?? "unknown").replace(/_/g, " ");
}

export function badge(status) {
  return h("span", { class: `badge tone-${tone(status)}`, dataset: { status: String(status) } }, label(status));
}

export function progressBar(value, status) {
  const pct = Math.max(0, Math.min(100, Number(value) || 0));
  const fill = h("span", { class: "bar-fill" });
  fill.style.width = `${pct}%`;
  return h(
    "span",
    {
      class: `bar tone-${tone(status)}`,
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": Math.round(pct),
    },
    fill,
  );
}
