// The public HTTP API, read with the signed-in token.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const KINDS = ["process", "flowrun", "caserun"];
export const PROCESS_STATUSES = ["pending", "running", "waiting_review", "completed", "failed", "cancelled"];

export class Api {
  constructor(token) {
    this.token = token;
  }

  async fetch(path) {
    let response;
    try {
      response = await fetch(path, { headers: { Authorization: this.token }, cache: "no-store" });
    } catch (err) {
      throw new ApiError(0, "unreachable", "The node cannot be reached.");
    }
    if (!response.ok) {
      let error = null;
      try {
        error = (await response.json()).error;
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiError(
        response.status,
        error?.code ?? `http_${response.status}`,
        error?.message ?? `${response.status} ${response.statusText}`,
      );
    }
    return response;
  }

  async json(path) {
    return (await this.fetch(path)).json();
  }

  /** The newest ``n`` items of a list ordered oldest first: {count, offset, results},
   * ``offset`` being the list position of the first (oldest) of them. */
  async latest(path, n) {
    const sep = path.includes("?") ? "&" : "?";
    const head = await this.json(`${path}${sep}limit=1`);
    const offset = Math.max(0, head.count - n);
    const page = await this.json(`${path}${sep}limit=${n}&offset=${offset}`);
    return { count: page.count, offset, results: page.results };
  }

  /** ``limit`` items of a list from position ``offset``, oldest first: {count, results}. */
  async page(path, offset, limit) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await this.json(`${path}${sep}limit=${limit}&offset=${offset}`);
    return { count: page.count, results: page.results };
  }

  async processCounts() {
    const counts = await Promise.all(
      PROCESS_STATUSES.map((s) => this.json(`/process?status=${s}&limit=1`).then((p) => p.count)),
    );
    return Object.fromEntries(PROCESS_STATUSES.map((s, i) => [s, counts[i]]));
  }

  /** An object URL of an artifact (an <img> cannot send the token itself). */
  async artifactUrl(hash) {
    const blob = await (await this.fetch(`/artifact/${encodeURIComponent(hash)}`)).blob();
    return URL.createObjectURL(blob);
  }
}
