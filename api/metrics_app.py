"""What the app itself measures: HTTP requests (by route template) and SSE streams.

:class:`RequestMetrics` is a pure ASGI middleware, not Starlette's
``BaseHTTPMiddleware``: that one runs the response in a task of its own and buffers
it through a stream, which breaks SSE responses (disconnects, the write bound of
api/stream_limits.py) and costs more per request. This one wraps ``send`` and
records one observation per request, on the event loop's thread, so it needs no lock.

Routes are labelled by their template (``/process/{process_id}``), never by the raw
path: ids would make one series per object. A request no route matched is labelled
``unmatched``; a method outside the standard ones is ``other``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import STREAMING
from api.metrics import Family, Sample
from api.stream_limits import StreamSlots

# Upper bounds in seconds, at millisecond scale: a read from the cache answers in well
# under a millisecond, a command waits for the decider (tens of ms), ``?wait=true``
# and command timeouts end at 10 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size  # per bucket (not cumulative), the last one is +Inf
        self.sum = 0.0


class HttpMetrics:
    """Requests counted by (method, route template, status code) and their durations
    by (method, route template). Call from the event loop's thread only."""

    def __init__(self, buckets: Sequence[float] = BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self._requests: dict[tuple[str, str, int], int] = {}
        self._durations: dict[tuple[str, str], _Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        key = (method, route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        histogram = self._durations.get((method, route))
        if histogram is None:
            histogram = self._durations[(method, route)] = _Histogram(len(self.buckets) + 1)
        # bisect_left: a duration equal to a bound belongs in that bound's bucket (le).
        histogram.counts[bisect_left(self.buckets, seconds)] += 1
        histogram.sum += seconds

    def families(self) -> list[Family]:
        requests = tuple(
            Sample(n, (("method", m), ("route", r), ("status", str(s))))
            for (m, r, s), n in sorted(self._requests.items())
        )
        durations: list[Sample] = []
        bounds = [*(repr(b) for b in self.buckets), "+Inf"]
        for (m, r), histogram in sorted(self._durations.items()):
            labels = (("method", m), ("route", r))
            total = 0
            for bound, count in zip(bounds, histogram.counts, strict=True):
                total += count
                durations.append(Sample(total, (*labels, ("le", bound)), "_bucket"))
            durations.append(Sample(histogram.sum, labels, "_sum"))
            durations.append(Sample(total, labels, "_count"))
        return [
            Family(
                "runledger_http_requests_total",
                "counter",
                "HTTP requests answered, by method, route template and status code.",
                requests,
            ),
            Family(
                "runledger_http_request_duration_seconds",
                "histogram",
                "Time from a request's arrival to the end of its answer (to the start of "
                "the answer for an SSE stream), by method and route template.",
                tuple(durations),
            ),
        ]


class RequestMetrics:
    """ASGI middleware: one :meth:`HttpMetrics.observe` per HTTP request.

    The duration runs to the last byte of the answer, except for a stream
    (api/stream_limits.py marks the scope), whose duration is the time to open it: a
    stream is held for its whole window and would make every latency look like 25 s.
    A request whose handler raised is counted as a 500 (Starlette's outermost
    middleware answers it); one that was never answered is not counted."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = perf_counter()
        status = 0
        observed = False

        async def metered_send(message: Message) -> None:
            nonlocal status, observed
            if message["type"] == "http.response.start":
                status = message["status"]
                if scope.get(STREAMING):
                    observed = True
                    self._observe(scope, status, perf_counter() - began)
            await send(message)

        try:
            await self.app(scope, receive, metered_send)
        except Exception:
            status = status or 500
            raise
        finally:
            if status and not observed:
                self._observe(scope, status, perf_counter() - began)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        method = scope["method"]
        self.metrics.observe(method if method in METHODS else "other", route, status, seconds)


def stream_families(slots: StreamSlots) -> list[Family]:
    """The SSE streams of this node: open now, opened and refused (per-account cap)
    since start. No account label: ``/metrics`` needs no token."""
    return [
        Family(
            "runledger_sse_streams_open",
            "gauge",
            "SSE streams open on this node now.",
            (Sample(slots.total_open),),
        ),
        Family(
            "runledger_sse_streams_opened_total",
            "counter",
            "SSE streams opened on this node since it started.",
            (Sample(slots.opened),),
        ),
        Family(
            "runledger_sse_streams_refused_total",
            "counter",
            "SSE streams refused with 429 too_many_streams: the account held every "
            "stream slot the per-account cap allows.",
            (Sample(slots.refused),),
        ),
    ]
