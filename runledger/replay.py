"""``runledger replay`` and ``verify``: the read model from the log.

- replay: the bulk path (``projections.replay.replay_parallel``: worker processes fold
  disjoint partitions, this process appends their rows) from offset 0 into a new
  file, with a progress line on stderr.
- verify: replays into a scratch file up to exactly the positions the live model has
  applied, then compares table by table. The live file is opened read-only, which
  DuckDB refuses while a node holds it: stop the node, or pass ``--copy`` to compare a
  copy of the file (see docs/operations.md for what a copy of a live file can show).
  What it found is shown by :mod:`runledger.verify_report` (re-exported here).

``export`` (:mod:`runledger.export`) rebuilds the same way.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import gc
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from projections.errors import StoreError
from projections.replay import Progress, ReplayResult
from projections.replay_parallel import replay_parallel
from projections.verify import compare, positions, stored_topics
from runledger.node import DB_FILE, GC_THRESHOLD
from runledger.progress import ProgressLine
from runledger.verify_report import (  # noqa: F401 (re-exported: the CLI imports them from here)
    Verification,
    render_row,
    render_verification,
)
from streams.consumer import ConsumerError
from streams.topics import TopicError, Topics, require_topics


class ToolError(Exception):
    """The operation cannot go on; the message tells the operator what to do."""


def require_log(bootstrap: str, topics: Topics, tool: str) -> None:
    """ToolError (``<tool> failed: ...``) at once, naming the topic and the broker, when
    ``topics.events`` does not exist (a wrong prefix or broker) or the broker does not
    answer, instead of the readers' 30 s metadata wait."""
    try:
        asyncio.run(require_topics(bootstrap, [topics.events]))
    except TopicError as exc:
        raise ToolError(f"{tool} failed: {exc}") from exc


def rebuild(
    bootstrap: str,
    topics: Topics,
    target: Path,
    *,
    until: dict[int, int] | None = None,
    on_progress: Callable[[Progress, bool], None] | None = None,
) -> ReplayResult:
    """Replay ``topics.events`` from offset 0 (to ``until``, else the current end) in
    worker processes. ToolError when the topic cannot be read or a worker fails."""
    progress = Progress()

    def tick(p: Progress) -> None:
        if on_progress is not None:
            on_progress(p, False)

    try:
        result = replay_parallel(
            target,
            bootstrap,
            topics.events,
            until=until,
            progress=progress,
            on_progress=tick,
            gc_threshold=GC_THRESHOLD,
        )
    except (ConsumerError, StoreError) as exc:
        raise ToolError(f"replay failed: {exc}") from exc
    progress.reached = dict(progress.ends)  # the last offsets may be transaction markers
    if on_progress is not None:
        on_progress(progress, True)
    return result


def run_replay(bootstrap: str, topics: Topics, target: Path, force: bool) -> ReplayResult:
    """Build ``target``; with ``force``, an existing one is replaced only once the new
    file is complete, so a failed replay (broker gone, disk full) leaves it as it was."""
    if target.exists() and not force:
        raise ToolError(f"{target} exists: choose a new file, or pass --force to replace it")
    refuse_written(target)
    require_writable_folder(target, "replay --to")
    require_log(bootstrap, topics, "replay")
    _fewer_collections()
    if not target.exists():
        return rebuild(bootstrap, topics, target, on_progress=ProgressLine())
    staged = target.with_name(f"{target.name}.replay-{os.getpid()}")
    try:
        result = rebuild(bootstrap, topics, staged, on_progress=ProgressLine())
        refuse_written(target)  # a node may have opened it meanwhile
        # The old file's WAL first: DuckDB would apply it to the new file.
        Path(str(target) + ".wal").unlink(missing_ok=True)
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    return result


def require_writable_folder(target: Path, option: str) -> None:
    """ToolError, before any work, when nothing can be created next to ``target`` (the
    tool writes a staged file or folder there first, then renames it): else the error
    would come after the rebuild, naming the staged path instead of ``target``."""
    folder = target.parent
    if not folder.is_dir():
        raise ToolError(f"{option} {target}: the folder {folder} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".runledger-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ToolError(f"{option} {target}: cannot write in {folder} ({reason})") from exc


def refuse_written(target: Path) -> None:
    """ToolError when another process writes ``target`` (see :func:`written_elsewhere`):
    replacing that file would leave the node writing a deleted one (and its WAL)."""
    if written_elsewhere(target):
        raise ToolError(
            f"{target} is open for writing in another process (a running node?): replay "
            "into a new file, then `runledger swap --from NEW.duckdb` moves the node to it"
        )


def written_elsewhere(path: Path) -> bool:
    """Whether another process holds ``path`` open for writing: DuckDB's writer (a
    running node) holds a lock on the whole file, which a shared lock here conflicts
    with. False for a missing or unreadable file (nobody's read model to protect)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EACCES)  # what a conflicting lock says
    finally:
        os.close(fd)  # and with it the lock just taken
    return False


def _fewer_collections() -> None:
    # A replay allocates many short-lived objects per event, like a node: the same
    # collector threshold (runledger.node.GC_THRESHOLD) keeps full collections rare.
    gc.set_threshold(GC_THRESHOLD, 20, 20)


# -- verify ---------------------------------------------------------------------------------


def run_verify(
    bootstrap: str, topics: Topics, data_dir: Path, *, copy: bool, limit: int = 20
) -> Verification:
    live = data_dir / DB_FILE
    if not live.exists():
        raise ToolError(f"no read model at {live}")
    if not copy and written_elsewhere(live):
        raise ToolError(held_by_node(live))
    with tempfile.TemporaryDirectory(prefix="runledger-verify-") as scratch_dir:
        scratch = Path(scratch_dir)
        source = live
        if copy:
            source = scratch / "live-copy.duckdb"
            shutil.copyfile(live, source)
            wal = Path(str(live) + ".wal")
            if wal.exists():
                shutil.copyfile(wal, Path(str(source) + ".wal"))
        try:
            applied = positions(source, topics.events)
        except StoreError as exc:
            # A node that opened the file just after the check above (DuckDB's lock
            # message, a pid and a URL, says less than ours), or a damaged file.
            if not copy and written_elsewhere(live):
                raise ToolError(held_by_node(live)) from exc
            raise ToolError(str(exc)) from exc
        others = stored_topics(source) - {topics.events} if not applied else set()
        if others:
            raise ToolError(
                f"{live} is a read model of {', '.join(sorted(others))}, not of "
                f"{topics.events}: check --data-dir and RUNLEDGER_TOPIC_PREFIX"
            )
        require_log(bootstrap, topics, "verify")
        fresh = scratch / "rebuilt.duckdb"
        _fewer_collections()
        rebuild(bootstrap, topics, fresh, until=applied, on_progress=ProgressLine())
        checks = compare(source, fresh, limit=limit)
    return Verification(checks, live, applied)


def held_by_node(live: Path) -> str:
    """What ``verify`` says when a node holds ``live`` (DuckDB allows no reader beside
    its one writer process)."""
    return f"the node holds {live}: stop it first, or pass --copy to verify a copy"
