"""``runledger runner``: a runner process, assembled in one place.

Chromium (one per process, at most ``max_pages`` pages at a time), the target guard
(``RUNLEDGER_ALLOW_PRIVATE_TARGETS``), the artifact store and VRT baselines under the
data dir, a producer for reports, the cancel watch, and one :class:`JobLoop` per job
kind, each in that kind's consumer group on ``ledger.jobs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from runledger.metrics_http import serving_metrics
from runledger.services import stop_on_signals
from runledger.settings import (
    PREFIX,
    PRIVATE_TARGETS_WARNING,
    Settings,
    SettingsError,
    bool_setting,
    int_setting,
    text_setting,
)
from runners.artifacts import ArtifactStore
from runners.browser import Browser, BrowserConfig
from runners.guard import RefusalCount, TargetGuard
from runners.jobs_cancel import CancelWatch
from runners.jobs_context import JobContext
from runners.jobs_executor import KINDS, perform
from runners.notify import SmtpServer
from runners.worker import JobLoop
from runners.worker_metrics import CANCELLED, ERROR, FAILED, PASSED, JobTally
from schemas import Codec, default_codec
from streams import serde
from streams.consumer_stop import stop_consumer
from streams.domain import aggregates
from streams.domain.commands import Command
from streams.exposition import Family
from streams.jobs import Dispatch
from streams.publisher import Publisher
from streams.topics import Topics, ensure_topics

log = logging.getLogger("runledger.runner")


@dataclass(frozen=True)
class RunnerOptions:
    """What a runner process does: which job kinds, how many pages at once, and the
    SMTP server of email nodes (None when ``RUNLEDGER_SMTP_HOST`` is unset)."""

    kinds: tuple[str, ...] = KINDS
    max_pages: int = 4
    smtp: SmtpServer | None = None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, kinds: Sequence[str] | None = None
    ) -> RunnerOptions:
        env = os.environ if env is None else env
        chosen = tuple(kinds) if kinds else KINDS
        unknown = [k for k in chosen if k not in KINDS]
        if unknown:
            raise SettingsError(f"unknown job kinds {unknown}; known: {', '.join(KINDS)}")
        pages = int_setting(env, "RUNNER_MAX_PAGES", 4, 1, 1_000)
        host = text_setting(env, "SMTP_HOST")
        smtp = None
        if host:
            smtp = SmtpServer(
                host=host,
                port=int_setting(env, "SMTP_PORT", 25, 1, 65535),
                starttls=bool_setting(env, "SMTP_STARTTLS", False),
                username=env.get(PREFIX + "SMTP_USERNAME", ""),
                password=env.get(PREFIX + "SMTP_PASSWORD", ""),
                sender=text_setting(env, "SMTP_SENDER") or "runledger@localhost",
            )
        return cls(chosen, pages, smtp)


class _Revoke(ConsumerRebalanceListener):
    def __init__(self, loop: JobLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.loop.revoke(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


class Runner:
    """A runner: ``await run()`` until :meth:`stop`. ``loops`` holds one JobLoop per kind
    (their stats are what tests and metrics read)."""

    def __init__(
        self,
        settings: Settings,
        options: RunnerOptions,
        codec: Codec | None = None,
        *,
        browser_config: BrowserConfig | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.codec = codec or default_codec()
        self.topics = Topics(settings.topic_prefix)
        self.browser = Browser(browser_config or BrowserConfig(max_pages=options.max_pages))
        data_dir = settings.data_dir
        # Shared by every copy of the guard (one per tab): what /metrics counts.
        self.refusals = RefusalCount()
        self.ctx = JobContext(
            browser=self.browser,
            guard=TargetGuard(allow_private=settings.allow_private_targets, refusals=self.refusals),
            store=ArtifactStore(settings.artifacts_dir),
            baselines=data_dir / "vrt-baselines",
            smtp=options.smtp,
        )
        self.publisher = Publisher(settings.kafka_bootstrap, client_id="runledger-runner")
        self.loops: dict[str, JobLoop] = {}
        self.tally = JobTally(options.kinds)
        self.watch = CancelWatch(settings.kafka_bootstrap, self.topics, self._cancel)
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()

    async def publish(self, cmd: Command) -> None:
        """Publish a report; returns once Kafka acknowledged it (PublishError if not)."""
        key = aggregates.stream_key(cmd.aggregate_type, cmd.aggregate_id).encode()
        await self.publisher.send_and_wait(
            self.topics.commands, key, serde.encode_command(self.codec, cmd)
        )

    async def execute(self, dispatch: Dispatch) -> None:
        """Run one job and report it; a line when it starts and one with its outcome
        (a job is long work, so two lines per job are not noise)."""
        job = dispatch.job
        what = f"{job.kind} job {job.job_id} (run {job.run_id} node {job.node_id}"
        what += f" attempt {job.attempt})"
        log.info("%s: started", what)
        began = time.monotonic()
        self.tally.start(job.kind)
        try:
            outcome = await perform(self.ctx, dispatch, self.publish)
        except BaseException as exc:  # counted, then handled by the job loop as before
            ended = CANCELLED if isinstance(exc, asyncio.CancelledError) else ERROR
            self.tally.finish(job.kind, ended, time.monotonic() - began)
            raise
        took = time.monotonic() - began
        self.tally.finish(job.kind, PASSED if outcome.passed else FAILED, took)
        if outcome.passed:
            log.info("%s: passed in %.1f s", what, took)
        else:
            log.info("%s: failed in %.1f s: %s", what, took, outcome.exception)

    def metric_families(self) -> list[Family]:
        """What the runner's ``/metrics`` shows (runners.worker_metrics)."""
        return self.tally.families(
            self.browser.open_pages, self.options.max_pages, self.refusals.counts()
        )

    def _cancel(self, run_id: str, at: float) -> None:
        for loop in self.loops.values():
            loop.cancel_run(run_id, at)

    def stop(self) -> None:
        self._stopping.set()
        self.watch.stop()
        for loop in self.loops.values():
            loop.stop()

    async def run(self) -> None:
        await self.publisher.start()
        consumers: list[AIOKafkaConsumer] = []
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.browser.start()
            tasks.append(asyncio.create_task(self.watch.run(), name="cancel-watch"))
            for kind in self.options.kinds:
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    group_id=f"{self.topics.prefix}runledger-runner-{kind}",
                    client_id=f"runledger-runner-{kind}",
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                    auto_offset_reset="earliest",
                    session_timeout_ms=10_000,
                    heartbeat_interval_ms=1_000,
                )
                loop = JobLoop(consumer, kind, self.execute)
                consumer.subscribe([self.topics.jobs], listener=_Revoke(loop))
                await consumer.start()
                consumers.append(consumer)
                self.loops[kind] = loop
                tasks.append(asyncio.create_task(loop.run(), name=f"jobs-{kind}"))
            # Ready, asked to stop, or a task ended, whichever comes first: a watch whose
            # broker is gone never gets ready, and a stop must not wait for it.
            ready = asyncio.create_task(self.watch.ready.wait())
            stopping = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({ready, stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            stopping.cancel()
            if self._stopping.is_set():
                return  # the finally below stops what was started
            for task in tasks:
                if task.done():
                    raise task.exception() or RuntimeError(f"{task.get_name()} ended at start")
            self.ready.set()
            log.info(
                "runner ready: kinds %s, %d pages; jobs from %s on %s "
                "(groups %srunledger-runner-KIND)",
                ",".join(self.options.kinds),
                self.options.max_pages,
                self.topics.jobs,
                self.settings.kafka_bootstrap,
                self.topics.prefix,
            )
            stopping = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            self.stop()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 15)
            for consumer in consumers:
                await stop_consumer(consumer)
            await self.browser.close()
            await self.publisher.stop()


async def run_runner(settings: Settings, options: RunnerOptions) -> None:
    """The ``runledger runner`` command: run until SIGINT, SIGTERM or SIGHUP."""
    if settings.allow_private_targets:  # a security setting: never on without a word
        log.warning(PRIVATE_TARGETS_WARNING)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics, settings.partitions)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runner = Runner(settings, options)
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with serving_metrics(settings, "runner", runner.metric_families):
        task = asyncio.create_task(runner.run())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        runner.stop()
        await task
    # A job cut short is not committed: another runner (or the next start) runs it again.
    log.info("runner stopped")


async def run_orchestrator(settings: Settings) -> None:
    """The ``runledger orchestrator`` command: run until SIGINT, SIGTERM or SIGHUP."""
    from streams.orchestrator import Orchestrator
    from streams.orchestrator_stats import orchestrator_families

    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics, settings.partitions)
    orchestrator = Orchestrator(settings.kafka_bootstrap, topics, default_codec())
    stop = asyncio.Event()
    stop_on_signals(stop)

    def metric_families() -> list[Family]:  # read at each scrape: a rebuild swaps memory
        return orchestrator_families(orchestrator.stats, *orchestrator.memory.run_counts())

    async with serving_metrics(settings, "orchestrator", metric_families):
        task = asyncio.create_task(orchestrator.run())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        orchestrator.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 15)
