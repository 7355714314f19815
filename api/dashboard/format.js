// Times and durations as people read them.

export function ms(iso) {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/** Seconds between two ISO times; a run still going counts up to now. */
export function seconds(started, completed) {
  const a = ms(started);
  if (a === null) return null;
  const b = ms(completed) ?? Date.now();
  return Math.max(0, (b - a) / 1000);
}

export function duration(secs) {
  if (secs === null || secs === undefined) return "—";
  if (secs < 1) return `${Math.round(secs * 1000)} ms`;
  if (secs < 60) return `${secs.toFixed(secs < 10 ? 1 : 0)} s`;
  const m = Math.floor(secs / 60);
  if (m < 60) return `${m}m ${String(Math.floor(secs % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

export function ago(iso) {
  const t = ms(iso);
  if (t === null) return "—";
  const secs = Math.max(0, (Date.now() - t) / 1000);
  if (secs < 5) return "just now";
  if (secs < 60) return `${Math.floor(secs)} s ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}

export function clock(iso) {
  const t = ms(iso);
  return t === null ? "—" : new Date(t).toLocaleTimeString([], { hour12: false });
}

export function when(iso) {
  const t = ms(iso);
  if (t === null) return "—";
  const d = new Date(t);
  const sameDay = d.toDateString() === new Date().toDateString();
  const time = d.toLocaleTimeString([], { hour12: false });
  return sameDay ? `today ${time}` : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

export function shortId(id) {
  return String(id ?? "").slice(0, 8);
}
