"""The soak bench's load: bounded workers that drive a running stack over HTTP.

Each worker loops until the shared deadline or its own count cap. Every request that
changes state (a ``POST`` or ``DELETE`` that was answered) counts as one command in
:attr:`Tally.commands`, the x axis of the growth figures; every request is counted by
kind and status.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

TRANSPORT_ERRORS = (httpx.HTTPError, OSError, asyncio.TimeoutError)


@dataclass
class Tally:
    """What the load did so far; shared by every worker (one event loop)."""

    deadline: float
    commands: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    recent: list[str] = field(default_factory=list)  # ids of Processes, newest last
    finished: list[str] = field(default_factory=list)  # ids of ended Processes
    flowruns: list[str] = field(default_factory=list)

    def live(self) -> bool:
        return time.monotonic() < self.deadline

    def remember(self, bucket: list[str], item: str, keep: int = 200) -> None:
        bucket.append(item)
        del bucket[:-keep]


class Api:
    """One authenticated client; records every answer in the tally."""

    def __init__(self, url: str, token: str, tally: Tally) -> None:
        self.client = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": token},
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self.tally = tally

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response | None:
        try:
            r = await self.client.request(method, path, json=body, headers=headers)
        except TRANSPORT_ERRORS as exc:
            self.tally.errors[f"{kind}: {type(exc).__name__}"] += 1
            return None
        self.tally.kinds[kind] += 1
        self.tally.statuses[r.status_code] += 1
        if r.status_code >= 500:
            self.tally.errors[f"{kind}: HTTP {r.status_code} {method} {path}"] += 1
        if method in ("POST", "DELETE"):
            self.tally.commands += 1
        return r

    async def close(self) -> None:
        await self.client.aclose()


def _id(r: httpx.Response | None) -> str | None:
    if r is None or r.status_code not in (200, 201):
        return None
    return str(r.json()["id"])


# -- Processes ---------------------------------------------------------------------------

STEPS = [{"id": "fetch"}, {"id": "build"}]


async def process_life(api: Api, i: int) -> None:
    """One Process from create to an end; which end depends on ``i`` (six shapes)."""
    pid = _id(
        await api.call(
            "process.create",
            "POST",
            "/process",
            {"type": "soak.job", "steps": STEPS, "info": {"i": i}},
        )
    )
    if pid is None:
        return
    api.tally.remember(api.tally.recent, pid)
    p = f"/process/{pid}"
    shape = i % 6
    cmd = api.call
    if shape in (0, 1, 2, 4, 5):
        await cmd("process.start", "POST", p + "/start")
    if shape == 0:  # the happy path, every step
        for step in ("fetch", "build"):
            await cmd("process.step", "POST", f"{p}/steps/{step}/start")
            await cmd(
                "process.progress", "POST", p + "/progress", {"progress": 40, "message": step}
            )
            await cmd("process.step", "POST", f"{p}/steps/{step}/complete", {"message": "ok"})
        await cmd("process.log", "POST", p + "/log", {"message": "done", "level": "info"})
        await cmd("process.complete", "POST", p + "/complete", {"object_id": f"obj-{i}"})
    elif shape == 1:  # fail, retry, complete
        await cmd("process.step", "POST", f"{p}/steps/fetch/start")
        await cmd("process.step", "POST", f"{p}/steps/fetch/fail", {"exception": "boom"})
        await cmd("process.fail", "POST", p + "/fail", {"exception": "boom"})
        await cmd("process.retry", "POST", p + "/retry")
        await cmd("process.progress", "POST", p + "/progress", {"progress": 90, "message": "again"})
        await cmd("process.complete", "POST", p + "/complete", {"result_summary": {"ok": True}})
    elif shape == 2:  # cancelled while running
        await cmd("process.progress", "POST", p + "/progress", {"progress": 10, "message": "x"})
        await cmd("process.cancel", "POST", p + "/cancel", {"reason": "soak"})
    elif shape == 3:  # review, approve, restart a step, delete
        await cmd("process.progress", "POST", p + "/progress", {"progress": 99, "message": "y"})
        await cmd("process.review", "POST", p + "/review", {"result_summary": {"n": i}})
        await cmd("process.approve", "POST", p + "/approve")
        await cmd("process.restart", "POST", f"{p}/steps/build/restart")
        await cmd("process.delete", "DELETE", p)
        return
    elif shape == 4:  # deleted while running
        await cmd("process.progress", "POST", p + "/progress", {"progress": 5, "message": "z"})
        await cmd("process.delete", "DELETE", p)
        return
    else:  # failed for good
        await cmd("process.fail", "POST", p + "/fail", {"exception": "gave up"})
    api.tally.remember(api.tally.finished, pid)


async def process_worker(api: Api, start: int, stride: int, cap: int) -> None:
    i = start
    while api.tally.live() and i < cap:
        await process_life(api, i)
        i += stride


# -- reads and 4xx -----------------------------------------------------------------------


async def read_worker(api: Api, pause: float) -> None:
    """Pagination, object reads, as_of reads and requests that must answer 4xx."""
    round_ = 0
    while api.tally.live():
        round_ += 1
        path: str | None = "/process?limit=100" + ("&status=completed" if round_ % 2 else "")
        for _ in range(3):  # walk a few pages through `next`
            r = await api.call("read.list", "GET", path or "")
            if r is None or r.status_code != 200:
                break
            nxt = r.json().get("next")
            if not nxt:
                break
            path = nxt[nxt.index("/process") :] if "/process" in nxt else None
        await api.call("read.list", "GET", f"/flowrun?limit=20&offset={round_ % 50}")
        if api.tally.finished:
            pid = api.tally.finished[round_ % len(api.tally.finished)]
            for tail in ("", "/events", "/steps", "/runstatus"):
                await api.call("read.object", "GET", f"/process/{pid}{tail}")
            at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            await api.call("read.as_of", "GET", f"/process/{pid}?as_of={at}")
            await api.call("read.as_of", "GET", f"/process/{pid}?as_of=2020-01-01T00:00:00Z")
            await api.call("4xx", "POST", f"/process/{pid}/approve")  # 409 (or 404 deleted)
        if api.tally.flowruns:
            fr = api.tally.flowruns[round_ % len(api.tally.flowruns)]
            await api.call("read.object", "GET", f"/flowrun/{fr}/runstatus")
            await api.call("read.as_of", "GET", f"/flowrun/{fr}?as_of=2099-01-01T00:00:00Z")
        await api.call("4xx", "GET", f"/process/{uuid.uuid4()}")  # 404
        await api.call("4xx", "GET", "/process?status=bogus")  # 400
        await api.call("4xx", "POST", "/process", {"type": "x", "bogus": 1})  # 422
        await api.call("4xx", "GET", "/process/x/stream", headers={"Last-Event-ID": "nope"})
        await api.call("4xx", "GET", "/process", headers={"Authorization": "rl_wrong"})  # 401
        await asyncio.sleep(pause)


# -- SSE ---------------------------------------------------------------------------------


async def _read_stream(
    api: Api, kind: str, path: str, last_id: str | None, seconds: float, max_messages: int
) -> str | None:
    """Open a stream, read messages for at most ``seconds`` or ``max_messages``, close
    it; the last ``id:`` seen (or ``last_id``)."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    seen = last_id
    messages = 0
    try:
        async with asyncio.timeout(seconds):
            async with api.client.stream("GET", path, headers=headers) as r:
                api.tally.kinds[kind] += 1
                api.tally.statuses[r.status_code] += 1
                if r.status_code >= 500:
                    api.tally.errors[f"{kind}: HTTP {r.status_code} GET {path}"] += 1
                if r.status_code != 200:
                    return seen
                async for line in r.aiter_lines():
                    if line.startswith("id:"):
                        seen = line[3:].strip()
                    elif line == "":
                        messages += 1
                        if messages >= max_messages:
                            break
    except TimeoutError:
        pass  # the usual end: the client goes away mid-stream
    except TRANSPORT_ERRORS as exc:
        api.tally.errors[f"{kind}: {type(exc).__name__}"] += 1
    return seen


async def sse_worker(api: Api, pause: float) -> None:
    """Object and account streams, opened, read a little, dropped, resumed."""
    round_ = 0
    cursor: str | None = None
    while api.tally.live():
        round_ += 1
        if api.tally.recent:
            pid = api.tally.recent[-1 - round_ % min(20, len(api.tally.recent))]
            seen = await _read_stream(api, "sse.object", f"/process/{pid}/stream", None, 1.5, 5)
            if seen:
                await _read_stream(api, "sse.resume", f"/process/{pid}/stream", seen, 1.0, 20)
        if api.tally.flowruns and round_ % 3 == 0:
            fr = api.tally.flowruns[-1]
            await _read_stream(api, "sse.flowrun", f"/flowrun/{fr}/stream", None, 2.0, 50)
        if round_ % 2 == 0:
            cursor = await _read_stream(api, "sse.account", "/stream", cursor, 2.0, 30)
        if round_ % 10 == 0:  # an abrupt client: headers only, then gone
            await _read_stream(api, "sse.abrupt", "/stream", None, 0.2, 1)
        await asyncio.sleep(pause)


# -- FlowRuns ----------------------------------------------------------------------------


def _flows(site: str) -> dict[str, dict[str, object]]:
    wait = {"timeout": 60, "min_wait_time": 1, "max_wait_time": 2}
    hook = {
        "task_type": "webhook",
        "uri": f"{site}/hook",
        "request_type": "POST",
        "payload": {"soak": 1},
    }
    return {
        "wait": {
            "name": "soak wait then hook",
            "nodes": [
                {"id": "w", "data": {"task_type": "wait", "configs": wait}},
                {"id": "h", "data": hook},
            ],
            "edges": [{"id": "e1", "source": "w", "target": "h"}],
            "configs": {"end_on_fail": True},
        },
        "fail": {
            "name": "soak failing hook",
            "nodes": [
                {
                    "id": "m",
                    "data": {
                        "task_type": "webhook",
                        "uri": f"{site}/missing",
                        "request_type": "GET",
                    },
                },
                {"id": "h", "data": {**hook, "start_if": "failed"}},
            ],
            "edges": [{"id": "e1", "source": "m", "target": "h"}],
            "configs": {"end_on_fail": False},
        },
        "scan": {
            "name": "soak scan",
            "nodes": [
                {"id": "s", "data": {"task_type": "scan", "uri": "/", "type": ["html", "logs"]}},
                {"id": "h", "data": hook},
            ],
            "edges": [{"id": "e1", "source": "s", "target": "h"}],
        },
    }


async def flow_worker(api: Api, site_url: str, pause: float, cap: int, scans: int) -> None:
    """FlowRuns of three Flows: wait then webhook (most), a failing webhook with an
    error branch (retried later), a scan of the local site (``scans`` of them)."""
    site_id = _id(await api.call("site.create", "POST", "/site", {"site_url": site_url}))
    if site_id is None:
        api.tally.errors["flow: no site"] += 1
        return
    flows = {}
    for name, body in _flows(site_url).items():
        flow_id = _id(await api.call("flow.create", "POST", "/flow", body))
        if flow_id is None:
            api.tally.errors[f"flow: no flow {name}"] += 1
            return
        flows[name] = flow_id
    failed: list[str] = []
    i = scanned = 0
    while api.tally.live() and i < cap:
        i += 1
        kind = "wait"
        if i % 5 == 0:
            kind = "fail"
        elif i % 12 == 0 and scanned < scans:
            kind, scanned = "scan", scanned + 1
        body = {"site_id": site_id, "flow_id": flows[kind]}
        run = _id(await api.call(f"flowrun.{kind}", "POST", "/flowrun", body))
        if run is None:
            await asyncio.sleep(pause)
            continue
        api.tally.remember(api.tally.flowruns, run, keep=50)
        if kind == "fail":
            failed.append(run)
        if i % 7 == 0:
            await api.call("flowrun.cancel", "POST", f"/flowrun/{run}/cancel", {"reason": "soak"})
        if i % 11 == 0 and len(api.tally.flowruns) > 10:
            await api.call("flowrun.delete", "DELETE", f"/flowrun/{api.tally.flowruns[-10]}")
        if len(failed) > 3:  # a few seconds later: it has failed; retry it once
            await api.call("flowrun.retry", "POST", f"/flowrun/{failed.pop(0)}/retry")
        await asyncio.sleep(pause)


async def run_load(
    tally: Tally,
    url: str,
    token: str,
    site_url: str,
    *,
    process_workers: int,
    max_processes: int,
    max_flowruns: int,
    scans: int,
) -> None:
    """Drive the stack until ``tally.deadline`` (or the caps), counting in ``tally``."""
    api = Api(url, token, tally)
    try:
        tasks = [
            process_worker(api, w, process_workers, max_processes) for w in range(process_workers)
        ]
        tasks += [read_worker(api, 0.2), sse_worker(api, 0.1), sse_worker(api, 0.3)]
        tasks.append(flow_worker(api, site_url, 1.0, max_flowruns, scans))
        await asyncio.gather(*tasks)
    finally:
        with contextlib.suppress(*TRANSPORT_ERRORS):
            await api.close()
