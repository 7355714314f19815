"""A node: the projector and the HTTP API in one process, over one DuckDB file.

DuckDB allows one read-write process per file, so the API reads through cursors of
the projector's own database. Read capacity grows by adding nodes, each with its own
file and its own projector over every partition.

What the API reads goes through runledger.serving, so ``runledger swap`` can move every
reader to another file in one step while the node runs (runledger.swap).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from importlib import metadata

import uvicorn

from api import ApiDeps, create_app
from api.broadcaster import Broadcaster
from api.metrics import Family
from api.metrics_node import NodeIdentity, identity_families, projector_families
from api.process_cache import ProcessCache
from projections.errors import ProjectorError
from projections.projector import Projector
from projections.store import Store
from runledger import control, swap
from runledger.commands.context import CliError
from runledger.services import stop_on_signals
from runledger.serving import Projection, Serving
from runledger.settings import Settings
from runners.artifacts import ArtifactStore
from runners.errors import ArtifactInvalid, ArtifactNotFound
from schemas import default_codec
from streams.bus import CommandBus
from streams.topics import Topics, ensure_topics

log = logging.getLogger("runledger.node")

DB_FILE = "node.duckdb"
# A node allocates many short-lived objects per event and request; with the default
# threshold (700) the collector ran a full collection about every projector batch.
GC_THRESHOLD = 50_000


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the node stops on its ``stop`` event."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _metrics(projector: Projector, identity: NodeIdentity) -> list[Family]:
    """The node's families at scrape time: values the projector already holds (its
    consumer's last known ends included), so a scrape makes no request to Kafka."""
    return [
        *projector_families(
            projector.stats, projector.known_ends(), projector.applied, projector.held_s
        ),
        *identity_families(identity),
    ]


def _version() -> str:
    try:
        return metadata.version("runledger")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


async def run_node(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or SIGINT, SIGTERM or SIGHUP when no event is given).

    CliError, before anything is served, when the projector cannot start: the read
    model is not this log's (another prefix, or ahead of a wiped or re-created log),
    the log lost records it needs, or the broker or the topic is not there."""
    identity = NodeIdentity(_version(), settings.topic_prefix, started_at=time.time())
    if stop is None:
        stop = asyncio.Event()
        stop_on_signals(stop)
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    topics = Topics(settings.topic_prefix)
    codec = default_codec()
    await ensure_topics(settings.kafka_bootstrap, topics, settings.partitions)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner only when new
    memory_mib = settings.duckdb_memory_mib or None
    store = Store(settings.data_dir / DB_FILE, memory_mib=memory_mib).open()
    swap.tidy(settings.data_dir, DB_FILE)

    def new_projector(on: Store, client_id: str = "runledger-projector") -> Projector:
        return Projector(
            on, bootstrap=settings.kafka_bootstrap, topics=topics, codec=codec, client_id=client_id
        )

    projector = new_projector(store)
    try:
        # Before the API: a read model that is not this log's is never served, and the
        # node exits with the reason (``up`` shows it) rather than serve it.
        await projector.start()
    except ProjectorError as exc:
        store.close()
        raise CliError(str(exc)) from exc
    bus = CommandBus(settings.kafka_bootstrap, topics, codec)
    await bus.start()
    serving = Serving(Projection.start(store, projector), ProcessCache(), Broadcaster())
    artifact_store = ArtifactStore(settings.artifacts_dir)

    def artifact(digest: str) -> tuple[bytes, str] | None:
        try:
            return artifact_store.get(digest)
        except (ArtifactNotFound, ArtifactInvalid):
            return None

    deps = ApiDeps(
        artifacts=artifact,
        reads=serving.reads,
        commands=bus,
        positions=serving.positions,
        max_body_bytes=settings.max_body_bytes,
        command_timeout_s=settings.command_timeout_s,
        wait_timeout_s=settings.wait_timeout_s,
        metrics=lambda: _metrics(serving.projection.projector, identity),
        process_cache=serving.cache,
        broadcaster=serving.broadcaster,
        sse_window_s=settings.sse_window_s,
        sse_heartbeat_s=settings.sse_heartbeat_s,
        sse_max_streams_per_account=settings.sse_max_streams_per_account,
        sse_send_timeout_s=settings.sse_send_timeout_s,
        sse_backlog_page=settings.sse_backlog_page,
    )
    config = uvicorn.Config(
        create_app(deps),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="off",
        access_log=False,
    )
    server = _Server(config)
    swapper = swap.LiveSwap(
        serving,
        lambda on: new_projector(on, "runledger-projector-swap"),
        topics.events,
        live=store.path,
        memory_mib=memory_mib,
    )
    controls = control.ControlServer(
        settings.data_dir / control.SOCKET_NAME, {"swap": swapper.handle}
    )
    await controls.start()
    projecting = asyncio.create_task(serving.watch(), name="projection")
    serving_api = asyncio.create_task(server.serve(), name="api")
    log.info(
        "node serving on http://%s:%d from %s (DuckDB memory limit: %s)",
        settings.host,
        settings.port,
        store.path,
        f"{memory_mib} MiB" if memory_mib else "DuckDB's default, 80 % of the RAM",
    )
    stopped = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait(
            {projecting, serving_api, stopped}, return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            if task is not stopped and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        server.should_exit = True
        await controls.close()  # a swap in progress undoes itself first
        await serving.projection.projector.stop()
        for task in (serving_api, serving.projection.task, projecting):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        stopped.cancel()
        await bus.stop()
        serving.projection.store.close()
        log.info("node stopped")
