"""The command bus of a node: publish a command durably, then await its outcome.

Each node has an id; the commands it publishes carry it as ``reply_to`` and the
decider copies it onto the outcome (and into a header, so the bus skips other nodes'
outcomes without decoding them). The bus reads ``ledger.outcomes`` from its end at
start: every outcome of a command it publishes afterwards is ahead of it.

A command can also be *submitted*: published durably without waiting for the decider
(``Prefer: respond-async``). The bus then remembers it, and its outcome when that
comes back, for :meth:`CommandBus.status`, so the caller can follow it. That memory is
this node's, bounded (the newest ``MAX_TRACKED`` submissions) and lost on restart; the
outcome itself stays in ``ledger.outcomes``.

Behind a load balancer the caller may ask another node. So a submitted command's
``reply_to`` carries :data:`SHARED_MARK`: its outcome is for every node, and each bus
keeps the outcomes of the other nodes' submissions it reads (as bytes, decoded when
asked for; the newest ``MAX_TRACKED``, since the bus started). Another node thus knows
a command once the decider has decided it; only ``pending`` is the submitting node's
alone. :meth:`CommandBus.decided` waits for that decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import replace
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas import Codec, DecodeError
from streams import serde
from streams.bus_memory import DecisionWaiters, OtherNodesOutcomes, Submitted
from streams.consumer_stop import stop_consumer
from streams.domain import aggregates
from streams.domain.commands import Command
from streams.publisher import Publisher
from streams.topics import Topics, partitions_of

log = logging.getLogger(__name__)

MAX_TRACKED = 50_000
# How long publishing a command may wait for Kafka's acknowledgement (``execute``
# waits at most its own timeout). With the broker away the producer would retry for as
# long as it stays away, and the HTTP request with it; after this the caller hears
# PublishError (the API's 503) instead.
ACK_TIMEOUT_S = 10.0

# Kafka headers between the bus and the decider, outside the Avro records: on a
# command, ``respond: async`` says that nobody waits for the resulting state (the
# decider leaves ``state_json`` out of the outcome); on an outcome, ``reply_to`` and
# ``command_id`` let a node skip what is not for it without decoding it.
RESPOND = "respond"
ASYNC = b"async"
REPLY_TO = "reply_to"
COMMAND_ID = "command_id"
_SUBMIT_HEADERS = ((RESPOND, ASYNC),)
# Appended to a submitted command's ``reply_to``: every node keeps that outcome, not only
# the node named before the mark (an older decider copies ``reply_to`` as it is).
SHARED_MARK = "+shared"
_SHARED_MARK = SHARED_MARK.encode()


def wants_no_state(headers: object) -> bool:
    """Whether a command's headers say that its sender does not wait for the state."""
    return any(k == RESPOND and v == ASYNC for k, v in headers)  # type: ignore[attr-defined]


def outcome_headers(reply_to: str | None, command_id: str) -> list[tuple[str, bytes]]:
    return [(REPLY_TO, (reply_to or "").encode()), (COMMAND_ID, command_id.encode())]


class CommandBus:
    def __init__(self, bootstrap: str, topics: Topics, codec: Codec, node_id: str = "") -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.codec = codec
        self.node_id = node_id or f"node-{uuid.uuid4().hex[:12]}"
        self._reply = self.node_id.encode()
        self._shared_reply = self._reply + _SHARED_MARK
        self._publisher = Publisher(bootstrap, client_id=self.node_id)
        self._consumer: AIOKafkaConsumer | None = None
        self._waiting: dict[str, asyncio.Future[serde.Outcome | None]] = {}
        # Insertion-ordered: the oldest submission is the first key.
        self._submitted: dict[str, Submitted] = {}
        # Other nodes' submissions, decided; callers of ``decided``.
        self._elsewhere = OtherNodesOutcomes(codec)
        self._deciding = DecisionWaiters()
        self.max_tracked = MAX_TRACKED
        self.ack_timeout_s = ACK_TIMEOUT_S
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._publisher.start()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=self.node_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        parts = await partitions_of(consumer, self.topics.outcomes)
        tps = [TopicPartition(self.topics.outcomes, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the lazy seek now, before any command is published
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._listen(), name="outcome-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await stop_consumer(self._consumer)
        await self._publisher.stop()
        for future in self._waiting.values():
            future.cancel()

    async def publish(
        self, cmd: Command, *, want_state: bool = True, ack_timeout: float | None = None
    ) -> tuple[int, int]:
        """Publish without waiting for the decider: (partition, offset) in ledger.commands.

        ``want_state=False`` tells the decider to leave the state out of the outcome.
        PublishError when Kafka has not acknowledged it within ``ack_timeout`` seconds
        (``ack_timeout_s`` when None).
        """
        key = aggregates.stream_key(cmd.aggregate_type, cmd.aggregate_id).encode()
        value = serde.encode_command(self.codec, cmd)
        headers = () if want_state else _SUBMIT_HEADERS
        return await self._publisher.send_and_wait(
            self.topics.commands, key, value, headers, timeout=ack_timeout or self.ack_timeout_s
        )

    async def submit(self, cmd: Command) -> tuple[int, int]:
        """Publish ``cmd`` durably, without awaiting its outcome, and track it for
        :meth:`status`: (partition, offset) in ledger.commands.

        Raises PublishError when Kafka does not acknowledge: then it is not tracked.
        ``cmd.reply_to`` becomes this node's id with :data:`SHARED_MARK`, so every node
        can answer for it once it is decided.
        """
        cmd = replace(cmd, reply_to=self.node_id + SHARED_MARK)
        # Tracked before publishing: the outcome may come back before the ack does.
        entry = self._track(cmd)
        try:
            return await self.publish(cmd, want_state=False)
        except BaseException:
            if self._submitted.get(cmd.command_id) is entry:
                del self._submitted[cmd.command_id]
            raise

    def _track(self, cmd: Command) -> Submitted:
        entry = Submitted(
            cmd.command_id, cmd.account, cmd.aggregate_type, cmd.aggregate_id, cmd.name
        )
        self._submitted.pop(cmd.command_id, None)  # a resubmission moves to the end
        self._submitted[cmd.command_id] = entry
        if len(self._submitted) > self.max_tracked:
            del self._submitted[next(iter(self._submitted))]
        return entry

    def status(self, command_id: str) -> Submitted | None:
        """A submitted command this node still remembers (its ``outcome`` None while
        the decider has not decided it), or another node's submission once decided, or
        None."""
        entry = self._submitted.get(command_id)
        if entry is None:
            return self._elsewhere.get(command_id)
        if entry.raw is not None:
            raw, entry.raw = entry.raw, None
            try:
                entry.outcome = replace(serde.decode_outcome(self.codec, raw), state_json=None)
            except DecodeError:
                log.warning("undecodable outcome of command %s", command_id)
        return entry

    async def decided(self, command_id: str, timeout: float) -> Submitted | None:
        """:meth:`status` once the decider has decided ``command_id``, waiting up to
        ``timeout`` seconds for it: then what :meth:`status` says (still pending, or
        None when neither this node nor, decided, another node submitted it)."""
        entry = self.status(command_id)
        if (entry is not None and entry.outcome is not None) or timeout <= 0:
            return entry
        await self._deciding.wait(command_id, timeout)
        return self.status(command_id)

    async def execute(self, cmd: Command, timeout: float) -> serde.Outcome | None:
        """Publish ``cmd`` (durably) and await its outcome; None if none came in time.

        The command's ``reply_to`` must be this bus's ``node_id``. Raises PublishError
        when Kafka does not acknowledge the command: then nothing was accepted. A
        command that got no outcome in time is tracked from then on, as if submitted.
        Kafka's acknowledgement is awaited for ``timeout`` too (``ack_timeout_s`` when
        ``timeout`` is 0), so a broker that is away answers PublishError in that time.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[serde.Outcome | None] = loop.create_future()
        previous = self._waiting.get(cmd.command_id)
        self._waiting[cmd.command_id] = future
        timer: asyncio.TimerHandle | None = None
        try:
            await self.publish(cmd, ack_timeout=timeout or None)
            # A timer that answers None, rather than asyncio.wait_for: no task per command.
            timer = loop.call_later(timeout, self._give_up, future, cmd)
            return await future
        finally:
            if timer is not None:
                timer.cancel()
            if self._waiting.get(cmd.command_id) is future:
                if previous is not None and not previous.done():
                    self._waiting[cmd.command_id] = previous
                else:
                    del self._waiting[cmd.command_id]

    def _give_up(self, future: asyncio.Future[serde.Outcome | None], cmd: Command) -> None:
        """The waiting is over: track ``cmd`` and answer None, in one step. Tracked any
        later (once ``execute`` resumes), an outcome read in between would find nobody
        to keep it, and the command would stay pending for ever."""
        if not future.done():
            self._track(cmd)
            future.set_result(None)

    async def _listen(self) -> None:
        assert self._consumer is not None
        failures = 0
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The traceback once, then a line every 30 s: retrying twice a second,
                # a traceback each time would bury everything else in the node's log.
                if failures == 0:
                    log.exception("reading outcomes failed; retrying every 0.5 s")
                elif failures % 60 == 0:
                    log.warning("reading outcomes still fails (%d times): %s", failures, exc)
                failures += 1
                await asyncio.sleep(0.5)
                continue
            if failures:
                log.info("reading outcomes again after %d failed attempts", failures)
                failures = 0
            for messages in batch.values():
                for msg in messages:
                    self._receive(msg)

    def _receive(self, msg: Any) -> None:
        """Hand an outcome to whoever waits for it, or keep it for :meth:`status`."""
        reply, command_id = _routing(msg.headers)
        if reply == self._shared_reply:
            reply = self._reply
        elif reply is not None and reply.endswith(_SHARED_MARK):
            if command_id is not None:  # another node's submission: every node answers
                self._elsewhere.keep(command_id, msg.value, self.max_tracked)
                if self._deciding:
                    self._deciding.wake(command_id)
            return
        if reply != self._reply:
            return
        if command_id is not None:  # skip, undecoded, what nobody here asked for
            future = self._waiting.get(command_id)
            submitted = self._submitted.get(command_id)
            if future is None and submitted is None:
                return
            if future is None and submitted is not None:
                submitted.raw = msg.value  # decoded when asked for, if ever
                if self._deciding:
                    self._deciding.wake(command_id)
                return
        try:
            outcome = serde.decode_outcome(self.codec, msg.value)
        except DecodeError:
            log.warning("undecodable outcome at partition %d offset %d", msg.partition, msg.offset)
            return
        future = self._waiting.get(outcome.command_id)
        if future is not None and not future.done():
            future.set_result(outcome)
        submitted = self._submitted.get(outcome.command_id)
        if submitted is not None:
            submitted.outcome = replace(outcome, state_json=None)
            submitted.raw = None
            if self._deciding:
                self._deciding.wake(outcome.command_id)


def _routing(headers: object) -> tuple[bytes | None, str | None]:
    """(reply_to, command_id) of an outcome's headers; command_id is None from a
    decider that does not send it."""
    reply = command_id = None
    for key, value in headers or ():  # type: ignore[attr-defined]
        if key == REPLY_TO:
            reply = value
        elif key == COMMAND_ID:
            command_id = value.decode()
    return reply, command_id
