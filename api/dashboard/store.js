// What the page knows: the newest objects of each kind, by id, kept current by the
// stream. Listeners are told once per animation frame, however many events arrived.
//
// Each kind's loaded objects are a window of its list (ordered oldest first, as the
// list endpoint pages it): every object from position ``start`` to the newest. The
// first load is the newest KEEP; "Show older" moves ``start`` back a page at a time.
// Until the user asks for older pages, new objects push the oldest out so the window
// stays at KEEP. Once they did, nothing is dropped below MAX_KEPT: what they asked to
// see stays, across tab switches and live events, until sign-out or a full reload of
// the lists after the stream broke (the world may have moved on; it starts again from
// the newest page). Past MAX_KEPT the oldest are dropped and "Show older" is replaced
// by a note: a page holding more rows than that gets slow, and the API pages further.

import { KINDS } from "./api.js";

export const KEEP = 200; // newest objects kept per kind, and the size of an older page
export const MAX_KEPT = 5000; // upper bound of a kind's loaded objects
const GONE_KEPT = 1000; // ids of deleted objects remembered, against stale older pages

export class Store {
  constructor() {
    this.items = Object.fromEntries(KINDS.map((k) => [k, new Map()]));
    this.totals = Object.fromEntries(KINDS.map((k) => [k, 0]));
    this.start = Object.fromEntries(KINDS.map((k) => [k, 0])); // list position of the oldest loaded
    this.edge = Object.fromEntries(KINDS.map((k) => [k, null])); // sort key of the oldest loaded
    this.keep = Object.fromEntries(KINDS.map((k) => [k, KEEP]));
    this.gone = Object.fromEntries(KINDS.map((k) => [k, new Set()])); // deleted while paging
    this.below = Object.fromEntries(KINDS.map((k) => [k, 0])); // deletions below the window, ever
    this.generation = 0; // a reload makes pages fetched before it stale
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

  /** The first load: the newest page, which starts at list position ``offset``. */
  load(kind, count, offset, results) {
    const map = this.items[kind];
    map.clear();
    for (const item of results) map.set(item.id, item);
    this.totals[kind] = count;
    this.start[kind] = offset;
    this.edge[kind] = results.length ? sortKey(results[0]) : null;
    this.keep[kind] = KEEP;
    this.gone[kind].clear();
    this.generation += 1;
    this.changed();
  }

  /** The next older page to fetch, {offset, limit}, or null: all loaded, or MAX_KEPT.
   * From now on the window keeps up to MAX_KEPT, so no trim makes a hole above the
   * page while it is fetched. */
  olderPage(kind) {
    const limit = Math.min(KEEP, this.start[kind], MAX_KEPT - this.items[kind].size);
    if (limit <= 0) return null;
    this.keep[kind] = MAX_KEPT;
    return { offset: this.start[kind] - limit, limit, below: this.below[kind] };
  }

  /** Whether there is an older page to fetch: not all loaded, and below MAX_KEPT. */
  hasOlder(kind) {
    return this.start[kind] > 0 && this.items[kind].size < MAX_KEPT;
  }

  /** Add the older page ``page`` (from olderPage) with its ``results``, oldest first.
   * Objects already here came from the stream and are at least as new, so they stay.
   * False when the window moved meanwhile (trimmed at MAX_KEPT): the page would leave
   * a hole, so it is dropped and can be asked for again. */
  older(kind, page, results) {
    const { offset, limit } = page;
    // Deletions below the window since the request moved ``start`` down; the page may
    // have been read before or after them, so it is placed as if before: at worst it
    // overlaps the window (duplicates, dropped), it never leaves a hole.
    const deleted = this.below[kind] - page.below;
    if (this.start[kind] + deleted !== offset + limit) return false;
    const map = this.items[kind];
    for (const item of results) {
      if (!map.has(item.id) && !this.gone[kind].has(item.id)) map.set(item.id, item);
    }
    // An empty page means positions moved (deletions) past the list's start: all loaded.
    this.start[kind] = results.length ? Math.max(0, offset - deleted) : 0;
    if (results.length) this.edge[kind] = sortKey(results[0]);
    this.changed();
    return true;
  }

  /** Older objects exist but MAX_KEPT are loaded: the page loads no more. */
  capped(kind) {
    return this.start[kind] > 0 && this.items[kind].size >= MAX_KEPT;
  }

  /** Apply one stream message; true when it created an object this page had not seen. */
  apply(kind, type, state, event, live = true) {
    const map = this.items[kind];
    const known = map.has(state.id);
    if (type.endsWith(".deleted")) {
      const gone = this.gone[kind];
      if (known) {
        map.delete(state.id);
        this.totals[kind] = Math.max(0, this.totals[kind] - 1);
      } else if (live && this.start[kind] > 0 && !gone.has(state.id)) {
        // Every newer object is loaded, so this one was below the window: the list is
        // one shorter there. Else ``start`` would overstate where the window begins
        // (by hundreds when old objects are cleaned up), "Show older" would ask for
        // pages past the list's end and take the empty one for "all loaded".
        this.start[kind] -= 1;
        this.below[kind] += 1;
        this.totals[kind] = Math.max(0, this.totals[kind] - 1);
      }
      // A deletion that arrived while the lists loaded (``live`` false) may be in them
      // or not: ``start`` stays, and the next page overlaps the window by one at worst
      // (a duplicate, dropped), which loses nothing, whereas moving ``start`` back one
      // too many would skip an object. Remembered so an older page read before the
      // deletion does not bring it back.
      gone.add(state.id);
      if (gone.size > GONE_KEPT) gone.delete(gone.values().next().value);
    } else if (known || !this.outside(kind, state)) {
      map.set(state.id, state);
      if (type.endsWith(".created") && !known) this.totals[kind] += 1;
      this.trim(kind);
    }
    this.feed.unshift({ n: ++this.serial, kind, type, id: state.id, title: titleOf(kind, state), event, state });
    this.feed.length = Math.min(this.feed.length, 50);
    this.changed();
    return !known;
  }

  /** An object older than the loaded window: shown once its page is loaded. */
  outside(kind, state) {
    const edge = this.edge[kind];
    return this.start[kind] > 0 && edge !== null && compareKeys(sortKey(state), edge) < 0;
  }

  trim(kind) {
    const map = this.items[kind];
    const keep = this.keep[kind];
    if (map.size <= keep) return;
    const sorted = this.sorted(kind);
    for (const item of sorted.slice(keep)) map.delete(item.id);
    this.start[kind] += sorted.length - keep;
    this.edge[kind] = sortKey(sorted[keep - 1]);
  }

  get(kind, id) {
    return this.items[kind]?.get(id) ?? null;
  }

  /** Newest first. */
  sorted(kind) {
    return [...this.items[kind].values()].sort((a, b) => compareKeys(sortKey(b), sortKey(a)));
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

/** Where an object sorts in its list: by ``time_created``, then ``id``, as the API does. */
function sortKey(item) {
  return [item.time_created ?? "", item.id];
}

function compareKeys(a, b) {
  return a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]);
}

const UUID = /\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;

/** A name to show; ids inside titles ("flowrun <uuid> node x") are cut to 8 digits. */
export function titleOf(kind, item) {
  if (kind === "process") return item.type || "process";
  return (item.title || (kind === "flowrun" ? "FlowRun" : "CaseRun")).replace(UUID, "$1");
}
