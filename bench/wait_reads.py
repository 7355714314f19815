"""A read that waits for the node (``?wait=true``) against the same read without, same run.

    python bench/wait_reads.py [--requests 200] [--rounds 3]

One broker (``RUNLEDGER_KAFKA_BOOTSTRAP``, else one started for the run), one decider
and one node as child processes, a fresh topic prefix, one Process. Then, ``--rounds``
times and alternating, one client sends N ``GET /process/{id}`` and N
``GET /process/{id}?wait=true`` one after the other (latency, not throughput: a
read-your-writes client waits for each answer). A ``?wait=true`` read asks Kafka for the
end of every partition and waits until the node has applied them: on an idle node
that is one round trip to the broker. The figures are the medians and 99th
percentiles over all rounds; the last line is ``ratio: <median of the plain read /
median of the waiting read>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack  # noqa: E402


def timed(client: httpx.Client, path: str, count: int) -> list[float]:
    """Milliseconds of ``count`` sequential GETs of ``path`` (each must answer 200)."""
    out = []
    for _ in range(count):
        began = time.perf_counter()
        response = client.get(path)
        out.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _stack.quiet_logs()
    print(_stack.machine())
    with _stack.running_stack() as stack:
        headers = {"Authorization": f"Bearer {stack.token}"}
        with httpx.Client(base_url=stack.url, headers=headers, timeout=60) as client:
            created = client.post("/process?wait=true", json={"type": "bench.wait"})
            if created.status_code != 201:
                raise RuntimeError(f"create: {created.status_code} {created.text[:200]}")
            pid = created.json()["id"]
            timed(client, f"/process/{pid}?wait=true", 5)  # warm up both paths
            plain: list[float] = []
            waiting: list[float] = []
            for _ in range(args.rounds):
                plain += timed(client, f"/process/{pid}", args.requests)
                waiting += timed(client, f"/process/{pid}?wait=true", args.requests)
    for name, values in (("GET /process/{id}", plain), ("GET /process/{id}?wait=true", waiting)):
        p99 = _stack.percentile(values, 99)
        print(
            f"{name:32s} median {statistics.median(values):7.2f} ms   p99 {p99:7.2f} ms"
            f"   ({len(values)} requests)"
        )
    print(f"ratio: {statistics.median(plain) / statistics.median(waiting):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
