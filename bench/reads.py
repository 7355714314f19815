"""``GET /process/{id}`` requests per second against ``GET /health``, same client, same run.

    python bench/reads.py [--requests 20000] [--concurrency 64] [--processes 1000]
                          [--rounds 3] [--client lean|httpx]

One broker (``RUNLEDGER_KAFKA_BOOTSTRAP``, else one started for the run), one decider
and one node as child processes, a fresh topic prefix. First (not timed) it creates
``--processes`` Processes of three steps each over HTTP, reports progress on half of
them, waits until the node has applied all of it, and reads each Process once (so a
node that caches reads starts warm). Then, ``--rounds`` times and
alternating, it sends N ``GET /health`` and N ``GET /process/{id}`` (ids drawn at
random, fixed seed, every one of them found) from C keep-alive connections. The
figure per endpoint is the median of its rounds.

``/health`` is the cheapest answer the node gives (no auth, no read, a constant
body): it measures the HTTP stack, the client and the machine. The last line is
``ratio: <GET /process/{id} per second / GET /health per second>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack  # noqa: E402

TARGET = 0.6


async def prepare(stack: _stack.Stack, args: argparse.Namespace) -> list[str]:
    conns = _stack.connections(stack, 64, args.client)
    ids: list[str] = []
    steps = [{"id": f"s{k}", "name": f"Step {k}", "order": k} for k in range(1, 4)]

    async def create(conn: _stack.Connection, i: int) -> int:
        body = {"type": "bench.reads", "site": f"site-{i % 17}", "info": {"n": i}, "steps": steps}
        r = await conn.request("POST", "/process", json.dumps(body).encode())
        if r.status == 201:
            ids.append(json.loads(r.body)["id"])
        return r.status

    async def progress(conn: _stack.Connection, i: int) -> int:
        body = json.dumps({"progress": 40, "message": "crawling page 4 of 10"}).encode()
        return (await conn.request("POST", f"/process/{ids[i]}/progress", body)).status

    async def read(conn: _stack.Connection, i: int) -> int:
        return (await conn.request("GET", f"/process/{ids[i]}")).status

    try:
        load = await _stack.drive(args.processes, conns, create, time_limit=args.time_limit)
        if len(ids) < args.processes:
            raise SystemExit(f"could not create the Processes: {dict(load.statuses)}")
        await _stack.drive(len(ids) // 2, conns, progress, time_limit=args.time_limit)
        await _stack.settle(stack)
        await _stack.drive(len(ids), conns, read, time_limit=args.time_limit)
    finally:
        await _stack.close_all(conns)
    return ids


async def measure(
    stack: _stack.Stack, args: argparse.Namespace, paths: list[str], label: str
) -> tuple[float, float]:
    """(requests per second, node CPU seconds per request)."""
    conns = _stack.connections(stack, args.concurrency, args.client)

    async def get(conn: _stack.Connection, i: int) -> int:
        return (await conn.request("GET", paths[i % len(paths)])).status

    try:
        await _stack.drive(min(2_000, args.requests), conns, get, time_limit=args.time_limit)
        cpu0 = stack.cpu()["node"]
        load = await _stack.drive(args.requests, conns, get, time_limit=args.time_limit)
        cpu = stack.cpu()["node"] - cpu0
    finally:
        await _stack.close_all(conns)
    if load.count(200) != load.done or load.errors:
        raise SystemExit(f"{label}: not every answer was 200: {dict(load.statuses)} {load.errors}")
    rate = load.rate(200)
    print(
        f"  {label:<18} {load.done} in {load.seconds:.2f} s = {rate:,.0f}/s; "
        f"node CPU {cpu / load.done * 1e6:.0f} us/request",
        flush=True,
    )
    return rate, cpu / load.done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--processes", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", choices=_stack.CLIENTS, default="lean")
    parser.add_argument("--time-limit", type=float, default=120.0, help="per phase, seconds")
    args = parser.parse_args()
    _stack.quiet_logs()
    uvloop = _stack.use_uvloop()
    print(f"machine: {_stack.machine()}; load average {os.getloadavg()[0]:.2f}")
    print(
        f"{args.requests} requests per round, {args.rounds} rounds, {args.concurrency} "
        f"connections, client {args.client}{' on uvloop' if uvloop else ''}"
    )
    rng = random.Random(7)
    health: list[tuple[float, float]] = []
    reads: list[tuple[float, float]] = []
    with _stack.running_stack() as stack:
        ids = asyncio.run(prepare(stack, args))
        paths = [f"/process/{rng.choice(ids)}" for _ in range(args.requests)]
        for k in range(args.rounds):
            print(f"round {k + 1}:")
            health.append(asyncio.run(measure(stack, args, ["/health"], "GET /health")))
            reads.append(asyncio.run(measure(stack, args, paths, "GET /process/{id}")))
            time.sleep(0.5)
    h, r = statistics.median(x[0] for x in health), statistics.median(x[0] for x in reads)
    h_cpu = statistics.median(x[1] for x in health)
    r_cpu = statistics.median(x[1] for x in reads)
    ratio = r / h
    print(f"median GET /health {h:,.0f}/s, GET /process/{{id}} {r:,.0f}/s")
    print(
        f"median node CPU per request: /health {h_cpu * 1e6:.0f} us, /process/{{id}} "
        f"{r_cpu * 1e6:.0f} us (their ratio {h_cpu / r_cpu:.2f}, less sensitive to other load)"
    )
    verdict = "meets" if ratio >= TARGET else "misses"
    print(f"load average at the end {os.getloadavg()[0]:.2f}; {verdict} the target of {TARGET}")
    print(f"ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
