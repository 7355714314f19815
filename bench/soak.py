"""Soak: the whole stack under a mixed load for minutes, watching for resources that grow.

    python bench/soak.py [--minutes 8] [--sample-s 15] [--process-workers 4]

Starts ``runledger up`` (decider, node, orchestrator, runner as child processes) on a
fresh ``RUNLEDGER_TOPIC_PREFIX``, a temporary ``--data-dir`` and a free ``--port``,
against ``RUNLEDGER_KAFKA_BOOTSTRAP`` (required: the soak does not start a broker of
its own), with ``RUNLEDGER_ALLOW_PRIVATE_TARGETS`` set so the runner may reach the local
test site (``tests/site/server.py``, run as a process of its own: it is also the
webhook receiver). Then, for ``--minutes``, the load of ``bench/_soak_load.py``: many
distinct Processes through their whole lifecycle, FlowRuns with wait, webhook and a few
scan nodes, SSE clients that connect, read a little and drop, then resume with
``Last-Event-ID``, paginated list reads, ``as_of`` reads and 4xx requests.

Every ``--sample-s`` seconds, for each service (and the runner's Chromium processes
summed as ``chromium``): RSS, open fds, threads; and the sizes of ``node.duckdb``, its
WAL, the artifacts and the logs. At the end: the samples, a start/middle/end table,
and per service the slope of RSS (and fds, threads) against commands sent, in MB per
10,000 commands, over each half of the run: a slope that stays up in the second half
grows with the number of distinct ids (a leak); one that falls to ~0 is a cache that
reached its bound. Then SIGINT to ``up``, which must report every service ``stopped
... cleanly``.

The last line is ``ratio: <x>``: the largest, over the four services, of RSS at the end
of the load / RSS at its middle (1.0: nothing grew in the second half).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _soak_load  # noqa: E402
import _soak_probe as probe  # noqa: E402
import _stack  # noqa: E402
import httpx  # noqa: E402

ROOT = _stack.ROOT
UP_START_S = 180.0
UP_STOP_S = 150.0
ROWS = (*probe.SERVICES, "chromium")
MEASURES = ("rss_mb", "fds", "threads")
# Thread ids seen so far per service, across samples.
TIDS_SEEN: dict[str, set[int]] = {}


def _uptime() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _start_up(data_dir: Path, port: int, prefix: str, out: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "RUNLEDGER_TOPIC_PREFIX": prefix,
        "RUNLEDGER_ALLOW_PRIVATE_TARGETS": "1",
    }
    argv = [
        sys.executable,
        "-m",
        "runledger",
        "up",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
    ]
    with open(out, "wb") as sink:
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)


def _wait_stack(up: subprocess.Popen[bytes], data_dir: Path, out: Path) -> dict[str, str]:
    deadline = time.monotonic() + UP_START_S
    while time.monotonic() < deadline:
        if up.poll() is not None:
            raise RuntimeError(f"runledger up exited {up.returncode}:\n{out.read_text()}")
        stack = data_dir / "stack.json"
        if stack.exists():
            return dict(json.loads(stack.read_text()))
        time.sleep(0.5)
    raise RuntimeError(f"runledger up did not start within {UP_START_S:.0f} s:\n{out.read_text()}")


def _sample(pids: dict[str, int], data_dir: Path, t: float, commands: int) -> probe.Sample:
    use: dict[str, probe.Usage] = {}
    for name, pid in pids.items():
        u = probe.usage(pid)
        if u is not None:
            use[name] = u
        seen = TIDS_SEEN.setdefault(name, set())
        seen |= probe.thread_ids(pid)
    if "runner" in pids:
        use["chromium"] = probe.group_usage(probe.descendants(pids["runner"]))
    files, counts = probe.data_files(data_dir)
    for name, seen in TIDS_SEEN.items():
        counts[f"{name} threads ever"] = len(seen)
    counts["playwright tmp"] = sum(1 for p in Path(tempfile.gettempdir()).glob("playwright*"))
    return probe.Sample(t, commands, use, files, counts)


async def _load_and_sample(
    args: argparse.Namespace, stack: dict[str, str], site_url: str, up_pid: int, data_dir: Path
) -> tuple[_soak_load.Tally, list[probe.Sample]]:
    pids = probe.service_pids(up_pid)
    samples: list[probe.Sample] = []
    started = time.monotonic()
    tally = _soak_load.Tally(deadline=started + args.minutes * 60)
    load = asyncio.ensure_future(
        _soak_load.run_load(
            tally,
            stack["api_url"],
            stack["token"],
            site_url,
            process_workers=args.process_workers,
            max_processes=args.max_processes,
            max_flowruns=args.max_flowruns,
            scans=args.scans,
        )
    )
    while True:
        s = await asyncio.to_thread(
            _sample, pids, data_dir, time.monotonic() - started, tally.commands
        )
        samples.append(s)
        if load.done():
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(load), args.sample_s)
    load.result()  # raise what the load raised
    return tally, samples


def _fmt(u: probe.Usage | None) -> str:
    return "-" if u is None else f"{u.rss_mb:7.1f} {u.fds:4d} {u.threads:3d}"


def _per10k(part: list[probe.Sample], name: str, attr: str) -> float:
    """Slope of one measure of service ``name`` against commands, per 10,000 commands."""
    points = [
        (float(s.commands), float(getattr(s.usage[name], attr))) for s in part if name in s.usage
    ]
    return probe.slope(points) * 10_000


def _report(samples: list[probe.Sample], tally: _soak_load.Tally, seconds: float) -> float:
    print(f"\nload in {seconds:.0f} s: {tally.commands} commands; requests by kind:")
    for kind, n in sorted(tally.kinds.items()):
        print(f"  {kind:16s} {n:7d}")
    print("statuses:", dict(sorted(tally.statuses.items())))
    print("transport errors:", dict(tally.errors) or "none")
    head = "  ".join(f"{name[:12]:>17s}" for name in ROWS)
    print("\nsamples (each service: RSS MB, fds, threads; files MB)")
    print(f"     t  commands  {head}   duckdb    wal  artifacts  logs")
    for s in samples:
        cells = "  ".join(f"{_fmt(s.usage.get(n)):>17s}" for n in ROWS)
        f = s.files
        db, wal = f["node.duckdb"], f["node.duckdb.wal"]
        print(
            f"{s.t:6.0f}  {s.commands:8d}  {cells}  {db:7.1f} {wal:6.1f}"
            f"  {f['artifacts']:9.1f} {f['logs']:5.1f}"
        )
    first, mid, last = (
        samples[1] if len(samples) > 1 else samples[0],
        samples[len(samples) // 2],
        samples[-1],
    )
    print("\nstart / middle / end (RSS MB, fds, threads)")
    for name in ROWS:
        print(f"  {name:13s} " + " | ".join(_fmt(s.usage.get(name)) for s in (first, mid, last)))
    print(
        "  files MB      "
        + " | ".join(
            f"duckdb {s.files['node.duckdb']:.1f} wal {s.files['node.duckdb.wal']:.1f} "
            f"artifacts {s.files['artifacts']:.1f} logs {s.files['logs']:.1f}"
            for s in (first, mid, last)
        )
    )
    print("  counts        " + " | ".join(str(s.counts) for s in (first, mid, last)))
    half = len(samples) // 2
    print("\ngrowth per 10k commands (first half -> second half): RSS MB, fds, threads")
    worst = 0.0
    for name in ROWS:
        a, b = samples[1 : half + 1], samples[half:]
        rss, fds, thr = ((_per10k(a, name, m), _per10k(b, name, m)) for m in MEASURES)
        print(
            f"  {name:13s} RSS {rss[0]:+7.2f} -> {rss[1]:+7.2f}"
            f"   fds {fds[0]:+6.2f} -> {fds[1]:+6.2f}"
            f"   threads {thr[0]:+5.2f} -> {thr[1]:+5.2f}"
        )
        if name in probe.SERVICES and name in mid.usage and name in last.usage:
            worst = max(worst, last.usage[name].rss_mb / mid.usage[name].rss_mb)
    return worst


def _stop_up(up: subprocess.Popen[bytes], out: Path) -> tuple[bool, list[str]]:
    """SIGINT to ``up``; whether every service stopped cleanly, and ``up``'s stop lines."""
    up.send_signal(signal.SIGINT)
    try:
        up.wait(UP_STOP_S)
    except subprocess.TimeoutExpired:
        up.kill()
        up.wait()
    text = out.read_text(errors="replace")
    lines = [line for line in text.splitlines() if re.search(r"stop|killed", line)]
    clean = {m.group(1) for m in re.finditer(r"stopped (\w+) \(pid \d+\) cleanly", text)}
    return up.returncode == 0 and clean >= set(probe.SERVICES), lines


def _log_errors(logs: Path) -> list[str]:
    """The ERROR and CRITICAL lines of the services' logs (read before the data dir
    goes): a 500 in the tally has its traceback there."""
    found = []
    for path in sorted(logs.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if " ERROR " in line or " CRITICAL " in line:
                found.append(f"{path.name}: {line}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--sample-s", type=float, default=15.0)
    parser.add_argument("--process-workers", type=int, default=4)
    parser.add_argument("--max-processes", type=int, default=50_000)
    parser.add_argument("--max-flowruns", type=int, default=600)
    parser.add_argument("--scans", type=int, default=8)
    parser.add_argument("--idle-s", type=float, default=20.0, help="idle before the last sample")
    args = parser.parse_args()
    if not os.environ.get("RUNLEDGER_KAFKA_BOOTSTRAP"):
        sys.exit("soak: set RUNLEDGER_KAFKA_BOOTSTRAP (the soak uses an existing broker)")
    print(f"machine: {_stack.machine()}; load average at start {_uptime()}")
    with (
        tempfile.TemporaryDirectory(prefix="runledger-soak-") as tmp,
        contextlib.ExitStack() as site,
    ):
        data_dir, out = Path(tmp) / "data", Path(tmp) / "up.out"
        site_url, _ = site.enter_context(_stack.site_process(args.minutes * 60 + 600))
        up = _start_up(data_dir, _stack.free_port(), f"soak{uuid.uuid4().hex[:8]}.", out)
        try:
            stack = _wait_stack(up, data_dir, out)
            print(f"stack up: {stack['api_url']}, services {probe.service_pids(up.pid)}")
            started = time.monotonic()
            tally, samples = asyncio.run(_load_and_sample(args, stack, site_url, up.pid, data_dir))
            seconds = time.monotonic() - started
            pids = probe.service_pids(up.pid)
            cpu = {name: _stack.cpu_seconds(pid) for name, pid in pids.items()}
            time.sleep(args.idle_s)
            idle = _sample(pids, data_dir, time.monotonic() - started, tally.commands)
            metrics = httpx.get(stack["api_url"] + "/metrics", timeout=10).text
        finally:
            clean, stop_lines = _stop_up(up, out)
            site.close()
            errors = _log_errors(data_dir / "logs")
        worst = _report(samples, tally, seconds)
        print(f"\nafter {args.idle_s:.0f} s idle (RSS MB, fds, threads):")
        for name in ROWS:
            print(f"  {name:13s} {_fmt(idle.usage.get(name))}")
        print("CPU seconds over the run:", {k: round(v, 1) for k, v in cpu.items()})
        print(
            "node metrics:",
            " ".join(line for line in metrics.splitlines() if not line.startswith("#")),
        )
        print("\nERROR lines in the services' logs:", len(errors))
        for line in errors[:10]:
            print("  " + line[:300])
        print("\nstop:\n  " + "\n  ".join(stop_lines))
        print(f"every service stopped cleanly: {clean}")
        print(f"load average at end {_uptime()}")
        print(f"ratio: {worst:.3f}")


if __name__ == "__main__":
    main()
