"""What the soak bench samples: each service's RSS, open fds and threads (from /proc),
the data dir's file sizes, and the growth figures printed at the end.

Linux only (``/proc``). A service is a child of ``runledger up`` named by its
subcommand (``python -m runledger node ...``); the runner's Chromium processes are
summed as one more row, ``chromium``, since the runner starts and stops them.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("decider", "node", "orchestrator", "runner")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Usage:
    """One process (or a group of them) at one moment."""

    rss_mb: float
    fds: int
    threads: int
    procs: int = 1


@dataclass
class Sample:
    """Everything measured at one moment of the run."""

    t: float  # seconds since the load started
    commands: int  # commands sent so far (POST and DELETE requests answered)
    usage: dict[str, Usage]
    files: dict[str, float]  # MB, by name
    counts: dict[str, int] = field(default_factory=dict)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(entry.path, "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (not ``pid`` itself)."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def service_pids(up_pid: int) -> dict[str, int]:
    """The services ``runledger up`` (``up_pid``) started, by name."""
    found: dict[str, int] = {}
    for child in _children().get(up_pid, []):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            words = [a.decode(errors="replace") for a in argv]
            if "runledger" in words:
                name = words[words.index("runledger") + 1]
                if name in SERVICES:
                    found[name] = child
    return found


def usage(pid: int) -> Usage | None:
    """RSS, open fds and threads of ``pid``; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields.get("VmRSS", "0 kB").split()[0])
    return Usage(rss_kb / 1024, fds, int(fields["Threads"]))


def thread_ids(pid: int) -> set[int]:
    """The ids of ``pid``'s threads now (empty when it is gone): a service whose thread
    count stays flat may still start and end threads, each new one a new resource."""
    try:
        return {int(t) for t in os.listdir(f"/proc/{pid}/task")}
    except OSError:
        return set()


def group_usage(pids: list[int]) -> Usage:
    """The sum over ``pids`` (those still alive), for the runner's browsers."""
    alive = [u for u in (usage(p) for p in pids) if u is not None]
    return Usage(
        sum(u.rss_mb for u in alive),
        sum(u.fds for u in alive),
        sum(u.threads for u in alive),
        len(alive),
    )


def _size(path: Path) -> tuple[float, int]:
    """(MB, file count) of a file or a folder's files."""
    if not path.exists():
        return 0.0, 0
    if path.is_file():
        return path.stat().st_size / 2**20, 1
    total, count = 0, 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
                count += 1
    return total / 2**20, count


def data_files(data_dir: Path) -> tuple[dict[str, float], dict[str, int]]:
    """Sizes (MB) of the node's DuckDB file, its WAL, the artifacts and the logs, and
    file counts of the artifacts, logs and stray temporary files in the data dir."""
    sizes: dict[str, float] = {}
    counts: dict[str, int] = {}
    sizes["node.duckdb"], _ = _size(data_dir / "node.duckdb")
    sizes["node.duckdb.wal"], _ = _size(data_dir / "node.duckdb.wal")
    sizes["artifacts"], counts["artifacts"] = _size(data_dir / "artifacts")
    sizes["logs"], counts["logs"] = _size(data_dir / "logs")
    counts["tmp in data dir"] = sum(
        1 for p in data_dir.rglob("*") if p.name.startswith((".tmp", "tmp")) or p.suffix == ".tmp"
    )
    return sizes, counts


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x; 0.0 for fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    num = sum((x - mx) * (y - my) for x, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return num / den
