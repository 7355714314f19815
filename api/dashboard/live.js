// The account-wide Server-Sent Events stream, GET /stream?token=… (EventSource cannot
// send an Authorization header). The node closes each stream after its window; the
// browser reconnects with Last-Event-ID and the node resumes without a gap.

// Every event type of a Process, FlowRun or CaseRun (schemas/avro); EventSource only
// delivers named events to listeners of that name.
export const EVENT_TYPES = [
  "process.created", "process.started", "process.progress", "process.log",
  "process.step_started", "process.step_completed", "process.step_failed",
  "process.waiting_review", "process.completed", "process.failed", "process.cancelled",
  "process.retried", "process.restarted", "process.deleted",
  "flowrun.created", "flowrun.node_started", "flowrun.node_passed", "flowrun.node_failed",
  "flowrun.node_skipped", "flowrun.log", "flowrun.completed", "flowrun.cancelled",
  "flowrun.retried", "flowrun.deleted",
  "caserun.created", "caserun.step_started", "caserun.step_passed", "caserun.step_failed",
  "caserun.completed", "caserun.cancelled", "caserun.deleted",
];

const SLOW_RECONNECT_MS = 5000;

/**
 * Follow the stream until stop() is called.
 * onEvent(type, {state, event}); onStatus("live" | "reconnecting" | "down");
 * onBroken(): the browser gave up (a non-200 answer, e.g. a revoked token): the caller
 * checks the token, then calls restart() (events in between are lost: reload lists).
 */
export function follow(token, { onEvent, onStatus, onBroken }) {
  let source = null;
  let stopped = false;
  let slowTimer = null;

  function open() {
    source = new EventSource(`/stream?token=${encodeURIComponent(token)}`);
    source.addEventListener("open", () => {
      clearTimeout(slowTimer);
      slowTimer = null;
      onStatus("live");
    });
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => {
        let data;
        try {
          data = JSON.parse(message.data);
        } catch {
          return;
        }
        onEvent(type, data);
      });
    }
    source.addEventListener("error", () => {
      if (stopped) return;
      if (source.readyState === EventSource.CLOSED) {
        clearTimeout(slowTimer);
        onStatus("down");
        onBroken();
        return;
      }
      // The window ended and the browser is reconnecting: only say so if it is slow.
      // Counted from the first error: a node that is down makes the browser retry (and
      // fail) every few seconds, and restarting the count at each would never say so.
      if (slowTimer !== null) return;
      slowTimer = setTimeout(() => {
        slowTimer = null;
        if (!stopped && source.readyState !== EventSource.OPEN) onStatus("reconnecting");
      }, SLOW_RECONNECT_MS);
    });
  }

  open();
  return {
    stop() {
      stopped = true;
      clearTimeout(slowTimer);
      source?.close();
    },
    restart() {
      if (stopped) return;
      source?.close();
      open();
    },
  };
}
