// The dashboard's entry point: sign-in with an API token (kept in this tab's
// sessionStorage), the first load through the list endpoints, then the live stream.

import { Api, ApiError, KINDS } from "./api.js";
import { Detail } from "./detail.js";
import { foldable } from "./fold.js";
import { follow } from "./live.js";
import { TAB_NAMES, renderFeed, renderList, renderMore, renderTabs, renderTiles, tick } from "./overview.js";
import { Store, KEEP } from "./store.js";

const TOKEN_KEY = "runledger.token";
const OPEN_WAIT_MS = 3000;
const SIGNIN_RETRY_MS = 3000;
const $ = (id) => document.getElementById(id);
const NARROW = window.matchMedia("(max-width: 1100px)"); // the one-column layout of style.css

let session = null;
let signinTimer = null; // the next sign-in attempt while the node cannot be reached

function show(view) {
  $("signin").hidden = view !== "signin";
  $("dashboard").hidden = view !== "dashboard";
  $("signout").hidden = view !== "dashboard";
  $("live").hidden = view !== "dashboard";
}

function signinError(text) {
  const el = $("signin-error");
  el.textContent = text ?? "";
  el.hidden = !text;
}

function setLive(state) {
  const words = { live: "live", reconnecting: "reconnecting…", down: "offline", loading: "connecting…" };
  $("live").dataset.state = state;
  $("live-text").textContent = words[state] ?? state;
}

function parseHash() {
  const m = /^#\/(process|flowrun|caserun)\/([A-Za-z0-9._:-]{1,128})$/.exec(location.hash);
  return m ? { kind: m[1], id: m[2] } : null;
}

/** One signed-in session: the store, the stream and the views that follow them. */
class Session {
  constructor(api) {
    this.api = api;
    this.store = new Store();
    this.detail = new Detail($("detail"), api, this.store);
    this.tab = "process";
    this.filter = null;
    this.selected = null;
    this.reveal = false; // the selected row is still to be scrolled into view
    // Per kind, the last "Show older": in flight, or the sentence of its failure.
    this.paging = Object.fromEntries(KINDS.map((k) => [k, { loading: false, error: null }]));
    this.buffer = null; // stream messages that arrive while the lists load
    this.countsTimer = null;
    this.retryMs = 1000;
    this.stream = null;
    this.stopped = false;
    this.ticker = setInterval(() => tick($("dashboard")), 1000);
    this.unsubscribe = this.store.subscribe(() => this.render());
    $("list-older").onclick = () => this.showOlder(this.tab);
  }

  async start() {
    setLive("loading");
    this.onHash();
    await this.sync();
  }

  /** Open the stream first, then read the lists: nothing between the two is missed. */
  async sync() {
    this.buffer = [];
    const opened = new Promise((resolve) => {
      this.stream?.stop();
      this.stream = follow(this.api.token, {
        onEvent: (type, data) => this.onEvent(type, data),
        onStatus: (state) => {
          if (state === "live") {
            this.retryMs = 1000;
            resolve();
          }
          setLive(state);
        },
        onBroken: () => this.onBroken(),
      });
      setTimeout(resolve, OPEN_WAIT_MS);
    });
    await opened;
    let pages;
    let counts;
    try {
      pages = await Promise.all(KINDS.map((kind) => this.api.latest(`/${kind}`, KEEP)));
      counts = await this.api.processCounts();
    } catch (err) {
      this.buffer = null;
      if (!this.stopped && !this.failed(err)) this.retry();
      return;
    }
    if (this.stopped) return;
    KINDS.forEach((kind, i) => this.store.load(kind, pages[i].count, pages[i].offset, pages[i].results));
    for (const kind of KINDS) this.paging[kind].error = null;
    this.store.processCounts = counts;
    const waiting = this.buffer;
    this.buffer = null;
    // Not live: the lists may or may not include what these did (see Store.apply).
    for (const [type, data] of waiting) this.apply(type, data, false);
    this.store.changed();
    this.detail.render();
  }

  onEvent(type, data) {
    if (!data?.state?.id) return;
    if (this.buffer) this.buffer.push([type, data]);
    else this.apply(type, data);
  }

  apply(type, { state, event }, live = true) {
    const kind = type.split(".")[0];
    if (!KINDS.includes(kind)) return;
    this.store.apply(kind, type, state, event, live);
    this.detail.onEvent(kind, type, state, event);
    const sel = this.selected;
    if (sel && sel.kind === kind && sel.id === state.id) this.detail.render();
    if (kind === "process" && type !== "process.progress" && type !== "process.log") this.refreshCounts();
  }

  /** Fetch the page of ``kind`` just older than the loaded ones and add it. A failure
   * is said under the list (a 401 signs out); the stream is not affected. */
  async showOlder(kind) {
    const paging = this.paging[kind];
    if (paging.loading) return;
    const page = this.store.olderPage(kind);
    if (!page) return;
    const generation = this.store.generation;
    paging.loading = true;
    paging.error = null;
    this.render();
    try {
      const { results } = await this.api.page(`/${kind}`, page.offset, page.limit);
      // A reload of the lists meanwhile (the stream broke) starts from the newest again.
      if (!this.stopped && generation === this.store.generation) this.store.older(kind, page, results);
    } catch (err) {
      if (this.stopped || (err instanceof ApiError && err.status === 401 && this.failed(err))) return;
      paging.error = `Older ${TAB_NAMES[kind]} could not be loaded: ${err.message}`;
    } finally {
      paging.loading = false;
    }
    if (!this.stopped) this.render();
  }

  /** At most one count refresh a second, however busy the stream is. */
  refreshCounts() {
    if (this.countsTimer) return;
    this.countsTimer = setTimeout(async () => {
      try {
        const counts = await this.api.processCounts();
        if (this.stopped) return;
        this.store.processCounts = counts;
        this.store.changed();
      } catch (err) {
        this.failed(err);
      } finally {
        this.countsTimer = null;
      }
    }, 300);
  }

  async onBroken() {
    try {
      await this.api.json("/process?limit=1");
    } catch (err) {
      if (this.failed(err)) return;
    }
    if (this.stopped) return;
    this.retry();
  }

  retry() {
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 30000);
    setTimeout(() => !this.stopped && this.sync(), wait);
  }

  /** A 401 ends the session; anything else is shown and retried. True if it ended. */
  failed(err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut(`Signed out: ${err.message}.`);
      return true;
    }
    setLive("down");
    return false;
  }

  onHash() {
    this.selected = parseHash();
    if (this.selected) this.tab = this.selected.kind;
    this.detail.select(this.selected);
    this.reveal = Boolean(this.selected);
    this.render();
    // In one column the detail is below the list and the feed: bring it up, or a tap on
    // a row would seem to do nothing.
    if (this.selected && NARROW.matches) $("detail").scrollIntoView({ block: "start" });
  }

  /** Once per selection, when its row is in the list: scroll the list (only the list,
   * not the page) so that the row is in view, e.g. after a deep link to an older one. */
  revealSelected() {
    if (!this.reveal) return;
    const list = $("list");
    const row = list.querySelector(".row.selected");
    if (!row) return;
    this.reveal = false;
    const top = row.getBoundingClientRect().top - list.getBoundingClientRect().top + list.scrollTop;
    if (top < list.scrollTop || top + row.offsetHeight > list.scrollTop + list.clientHeight) {
      list.scrollTop = Math.max(0, top - (list.clientHeight - row.offsetHeight) / 2);
    }
  }

  render() {
    const store = this.store;
    renderTiles($("tiles"), store.processCounts, this.filter, (f) => {
      this.filter = f;
      this.tab = "process";
      this.render();
    });
    renderTabs($("tabs"), store, this.tab, (t) => {
      this.tab = t;
      this.render();
    });
    const filter = this.tab === "process" ? this.filter : null;
    const shown = renderList($("list"), store, this.tab, this.filter, this.selected);
    renderMore($("list-more"), {
      tab: this.tab,
      filter,
      shown,
      total: filter ? (store.processCounts?.[filter] ?? null) : store.totals[this.tab],
      more: store.hasOlder(this.tab),
      capped: store.capped(this.tab),
      paging: this.paging[this.tab],
    });
    renderFeed($("feed"), store.feed);
    this.revealSelected();
  }

  stop() {
    this.stopped = true;
    this.stream?.stop();
    clearInterval(this.ticker);
    clearTimeout(this.countsTimer);
    this.unsubscribe();
    this.detail.close();
  }
}

function signOut(message) {
  clearTimeout(signinTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  session?.stop();
  session = null;
  $("token").value = "";
  signinError(message ?? null);
  show("signin");
  $("token").focus();
}

async function signIn(token) {
  const api = new Api(token);
  await api.json("/process?limit=1"); // 401 for an unknown or revoked token
  sessionStorage.setItem(TOKEN_KEY, token);
  signinError(null);
  show("dashboard");
  session = new Session(api);
  await session.start();
}

function describe(err) {
  if (err instanceof ApiError && err.status === 401) return `That token was not accepted: ${err.message}.`;
  return err instanceof ApiError ? err.message : "Something went wrong while signing in.";
}

/** Sign in with ``token``. Only a refused token (401) is dropped; when the node cannot
 * be reached or fails, the token stays in the field (and in this tab, if it was kept)
 * and the page tries again by itself. */
async function attempt(token) {
  clearTimeout(signinTimer);
  const button = $("signin-button");
  button.disabled = true;
  try {
    await signIn(token);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut(describe(err));
      return;
    }
    session?.stop();
    session = null;
    show("signin");
    $("token").value = token;
    signinError(`${describe(err)} Trying again…`);
    signinTimer = setTimeout(() => attempt(token), SIGNIN_RETRY_MS);
  } finally {
    button.disabled = false;
  }
}

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const token = $("token").value.trim();
  if (token) attempt(token);
});

$("signout").addEventListener("click", () => signOut(null));
foldable($("feed-card"), $("feed-toggle"));
window.addEventListener("hashchange", () => session?.onHash());

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  attempt(saved);
} else {
  show("signin");
}
