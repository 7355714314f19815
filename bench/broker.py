"""How long the local Kafka broker takes to answer, and how much memory it holds.

Three rounds, each on a fresh log dir: a cold start (format the KRaft storage, start the
JVM, wait until the broker answers), the java process's resident memory, a stop, then a
restart on the same log dir (the resume path of ``runledger up``). Jars must be cached
already (``make setup``). The last line is ``ratio: <restart s / cold start s>``: below 1
means a resume is cheaper than a first start.

    .venv/bin/python bench/broker.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from runledger.broker import LocalKafka, fetch_jars, jars_cached
from runledger.settings import Settings

ROUNDS = 3


def rss_mib(pid: int) -> float:
    """VmRSS of a process in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def timed_start(broker: LocalKafka) -> tuple[float, float]:
    """Seconds until the broker answers, and its RSS in MiB right after."""
    began = time.perf_counter()
    broker.start(timeout=120)
    seconds = time.perf_counter() - began
    assert broker.pid is not None
    return seconds, rss_mib(broker.pid)


def main() -> int:
    settings = Settings.from_env()
    if not jars_cached(settings.cache_dir, settings.kafka_version):
        print("Kafka jars are not cached; run `make setup` first", file=sys.stderr)
        return 1
    libs = fetch_jars(settings.cache_dir, settings.kafka_version)
    cold: list[float] = []
    warm: list[float] = []
    print(f"Kafka {settings.kafka_version}, heap 512m, {ROUNDS} rounds")
    print(f"{'round':>5} {'cold s':>8} {'RSS MiB':>8} {'restart s':>10} {'RSS MiB':>8}")
    for round_no in range(1, ROUNDS + 1):
        with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
            broker = LocalKafka(libs, Path(tmp))
            try:
                cold_s, cold_rss = timed_start(broker)
                broker.stop()
                warm_s, warm_rss = timed_start(broker)
            finally:
                broker.stop()
        cold.append(cold_s)
        warm.append(warm_s)
        print(f"{round_no:>5} {cold_s:>8.2f} {cold_rss:>8.0f} {warm_s:>10.2f} {warm_rss:>8.0f}")
    print(
        f"median cold start {statistics.median(cold):.2f} s, "
        f"median restart {statistics.median(warm):.2f} s"
    )
    print(f"ratio: {statistics.median(warm) / statistics.median(cold):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
