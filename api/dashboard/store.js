// What the page knows: the newest objects of each kind, by id, kept current by the
// stream. Listeners are told once per animation frame, however many events arrived.

import { KINDS } from "./api.js";

export const KEEP = 200; // newest objects kept per kind

export class Store {
  constructor() {
    this.items = Object.fromEntries(KINDS.map((k) => [k, new Map()]));
    this.totals = Object.fromEntries(KINDS.map((k) => [k, 0]));
    this.processCounts = null;
    this.feed = [];
    this.serial = 0;
    this.listeners = new Set();
    this.pending = false;
  }

  clear() {
    for (const kind of KINDS) this.items[kind].clear();
    this.feed = [];
    this.processCounts = null;
    this.changed();
  }

  load(kind, count, results) {
    const map = this.items[kind];
    map.clear();
    for (const item of results) map.set(item.id, item);
    this.totals[kind] = count;
    this.changed();
  }

  /** Apply one stream message; true when it created an object this page had not seen. */
  apply(kind, type, state, event) {
    const map = this.items[kind];
    const known = map.has(state.id);
    if (type.endsWith(".deleted")) {
      if (known) {
        map.delete(state.id);
        this.totals[kind] = Math.max(0, this.totals[kind] - 1);
      }
    } else {
      map.set(state.id, state);
      if (type.endsWith(".created") && !known) this.totals[kind] += 1;
      this.trim(kind);
    }
    this.feed.unshift({ n: ++this.serial, kind, type, id: state.id, title: titleOf(kind, state), event, state });
    this.feed.length = Math.min(this.feed.length, 50);
    this.changed();
    return !known;
  }

  trim(kind) {
    const map = this.items[kind];
    if (map.size <= KEEP) return;
    const oldest = this.sorted(kind).slice(KEEP);
    for (const item of oldest) map.delete(item.id);
  }

  get(kind, id) {
    return this.items[kind]?.get(id) ?? null;
  }

  /** Newest first. */
  sorted(kind) {
    return [...this.items[kind].values()].sort((a, b) =>
      (b.time_created ?? "").localeCompare(a.time_created ?? "") || b.id.localeCompare(a.id),
    );
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      for (const fn of this.listeners) fn();
    });
  }
}

const UUID = /\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;

/** A name to show; ids inside titles ("flowrun <uuid> node x") are cut to 8 digits. */
export function titleOf(kind, item) {
  if (kind === "process") return item.type || "process";
  return (item.title || (kind === "flowrun" ? "FlowRun" : "CaseRun")).replace(UUID, "$1");
}
