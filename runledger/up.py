"""``runledger up``: a whole stack on one machine, with its own Kafka broker.

Starts (or finds) the broker, creates the topics, starts the decider, a node, the
orchestrator and a runner (all job kinds) as child processes (:mod:`runledger.child`
supervises each), makes sure account ``default`` has a token, writes ``stack.json``,
and stops everything it started, in order, on Ctrl-C, SIGTERM or SIGHUP (its terminal
closed: its lines go on in ``DIR/logs/up.log``, :mod:`runledger.console`). A second
``up`` on the same data dir resumes: the broker keeps its log, the node its DuckDB file.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO

import httpx

from runledger import logs
from runledger.broker import BrokerHandle, start_broker
from runledger.child import Child, stop_together
from runledger.console import LOG_NAME, Console
from runledger.services import SIGNALS
from runledger.settings import PRIVATE_TARGETS_WARNING, Settings
from runledger.stack_resume import resume_refusal, same_ledger
from runledger.stackfile import StackFile
from runledger.tokens import TokenError, issue_token
from streams.topics import Topics, ensure_topics

log = logging.getLogger("runledger.up")

# How long the last run's token may take to be accepted before a new one is issued
# (the node learns tokens from the ledger as it catches up).
REUSE_WAIT_S = 20.0


# How long the services get to stop once the broker has died before they are killed: a
# clean stop would wait for the broker (each service's whole 20 s grace); what they
# recorded is in the broker's log already, and the next start resumes from it.
BROKER_GONE_KILL_AFTER_S = 5.0


class NotReady(Exception):
    """The stack did not come up: the message says why, ``log`` where to read more."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


class Interrupted(Exception):
    """Ctrl-C, SIGTERM or SIGHUP while the stack was starting."""


# Called while ``up`` waits for the node: raises Interrupted or NotReady to stop waiting.
Watch = Callable[[], None]


def _wait_http(url: str, timeout: float, watch: Watch, token: str = "") -> None:
    """Until ``url`` answers 200 (with ``token``: until the node knows the token)."""
    if not _accepted(url, token, timeout, watch):
        path = "/process?limit=1" if token else "/health"
        raise NotReady(f"the node did not answer on {url}{path} within {timeout:.0f} s")


def _accepted(url: str, token: str, timeout: float, watch: Watch) -> bool:
    """Whether ``url`` answers 200 within ``timeout`` s (with ``token``, on a read that
    needs it: a node learns tokens from the ledger, so a new one takes a moment).
    ``watch`` is called between tries: a signal or a dead child ends the wait at once."""
    path = "/process?limit=1" if token else "/health"
    headers = {"Authorization": token} if token else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        watch()
        try:
            if httpx.get(url + path, headers=headers, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


# The services without an API, each given a metrics port (runledger.metrics_http).
METERED = ("decider", "orchestrator", "runner")


def _free_port(host: str) -> int:
    """A port nothing listens on at ``host`` now, for a service's /metrics. Another
    process may take it before the service does: the service then exits saying so, and
    ``up`` reports it like any service that did not start."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the node could not listen on ``host:port``, or None: else ``up`` would wait
    for a node that keeps failing, or take whatever answers there for its own."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


LOCK_FILE = "up.lock"


class Refused(Exception):
    """``up`` will not start on this data dir; the message says why and what to do."""


def _hold_data_dir(data_dir: Path) -> IO[str]:
    """``data_dir`` made if needed and checked writable, and its ``up.lock`` locked for
    as long as this process lives (the kernel lets go when it dies, even by SIGKILL):
    two ``up`` started at once each saw no running stack in stack.json, which is only
    written once the stack is up, and the second waited 30 s for the broker's lock, then
    named the first one's broker as the one to kill. Refused when it cannot be had."""
    try:
        # Owner only when new: it holds every account's data, the logs and the token.
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # stack.json is written last: find out now, not once everything has started.
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".up-probe-"):
            pass
        lock = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held until up exits
    except OSError as exc:
        raise Refused(
            f"cannot write to the data dir {data_dir} ({exc.strerror or exc}): make it "
            "writable or choose another --data-dir"
        ) from exc
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        pid = lock.read().strip() or "unknown"
        lock.close()
        raise Refused(
            f"a stack runs or is starting on {data_dir} (runledger up, pid {pid}); stop it first "
            "or choose another --data-dir"
        ) from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def run_up(settings: Settings) -> int:
    """Run the stack until a signal; the exit status of the command."""
    data_dir = settings.data_dir.resolve()
    previous = StackFile.read_optional(data_dir)
    if previous is not None and previous.running():
        print(
            f"runledger: a stack already runs on {data_dir} (runledger up, pid {previous.pid}, "
            f"API {previous.api_url}); stop it first or choose another --data-dir",
            file=sys.stderr,
        )
        return 2
    refusal = resume_refusal(previous, data_dir, settings.topic_prefix, settings.kafka_bootstrap)
    if refusal:
        print(f"runledger: {refusal}", file=sys.stderr)
        return 2
    problem = _cannot_listen(settings.host, settings.port)
    if problem:
        print(
            f"runledger: the node cannot listen on {settings.host}:{settings.port} ({problem}); "
            "pass another --port or --host",
            file=sys.stderr,
        )
        return 2
    # Only now, when nothing above refused: a refused `up` leaves no empty folder behind.
    try:
        lock = _hold_data_dir(data_dir)
    except Refused as exc:
        print(f"runledger: {exc}", file=sys.stderr)
        return 2
    with lock:
        return _run_locked(settings, data_dir, previous)


def _run_locked(settings: Settings, data_dir: Path, previous: StackFile | None) -> int:
    """The stack's life, once ``up`` holds the data dir."""
    own_broker = not settings.kafka_bootstrap
    console = Console(data_dir / "logs" / LOG_NAME)
    received: signal.Signals | None = None  # the first stop signal

    def _stop(signum: int, frame: object) -> None:
        nonlocal received
        if received is None:  # a closed terminal may send SIGHUP twice (shell, kernel)
            received = signal.Signals(signum)

    # SIGHUP too: its default action ended `up` at once, when the terminal running it
    # closed, and left the services to stop by themselves, all at once.
    for sig in SIGNALS:
        signal.signal(sig, _stop)

    def say_stopping(what: str) -> None:
        if received is signal.SIGHUP:
            console.terminal_closed()
            console.say(f"runledger: SIGHUP (its terminal closed): {what}, as on SIGTERM")
        else:
            console.say(f"runledger: {what}")

    children: list[Child] = []

    def watch() -> None:
        if received is not None:
            raise Interrupted()
        for child in children:
            exited = child.exited()
            if exited is not None:
                raise NotReady(exited, child.log_path)

    console.say(f"runledger: starting in {data_dir}")
    if settings.allow_private_targets:  # a security setting: never on without a word
        log.warning(PRIVATE_TARGETS_WARNING)
    broker: BrokerHandle = start_broker(settings, data_dir / "kafka")
    try:
        watch()
        settings = replace(settings, kafka_bootstrap=broker.bootstrap, data_dir=data_dir)
        topics = Topics(settings.topic_prefix)
        asyncio.run(ensure_topics(settings.kafka_bootstrap, topics, settings.partitions))
        watch()
        env = {
            **os.environ,
            "RUNLEDGER_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "RUNLEDGER_TOPIC_PREFIX": settings.topic_prefix,
            "RUNLEDGER_DATA_DIR": str(data_dir),
        }
        level = logs.child_level()
        if level is not None:  # `runledger -v up`: the services log at DEBUG too
            env["RUNLEDGER_LOG_LEVEL"] = level
        exe = [sys.executable, "-m", "runledger"]
        ports = {name: _free_port(settings.host) for name in METERED}
        metered = {name: ["--metrics-port", str(port)] for name, port in ports.items()}
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        metrics = {name: f"http://{host}:{port}/metrics" for name, port in ports.items()}
        children = [
            Child(
                "decider",
                [*exe, "decider", *metered["decider"]],
                env,
                data_dir / "logs" / "decider.log",
            ),
            Child(
                "node",
                [*exe, "node", "--port", str(settings.port), "--host", settings.host],
                env,
                data_dir / "logs" / "node.log",
            ),
            Child(
                "orchestrator",
                [*exe, "orchestrator", *metered["orchestrator"]],
                env,
                data_dir / "logs" / "orchestrator.log",
            ),
            Child(
                "runner",
                [*exe, "runner", *metered["runner"]],
                env,
                data_dir / "logs" / "runner.log",
            ),
        ]
        for child in children:
            child.start()
        api_url = f"http://{settings.host}:{settings.port}"
        _wait_http(api_url, 60, watch)
        # The token of the last run, if that run used the same topics: a token lives in
        # the ledger it was issued on (another prefix is another ledger).
        same = previous is not None and same_ledger(
            previous,
            data_dir,
            settings.topic_prefix,
            "" if own_broker else settings.kafka_bootstrap,
        )
        token = previous.token if previous is not None and same else ""
        if token and not _accepted(api_url, token, REUSE_WAIT_S, watch):
            console.say(
                "runledger: the last run's token is not accepted (revoked?); issuing a new one",
                err=True,
            )
            token = ""
        if not token:
            token = asyncio.run(issue_token(settings, "default", "default"))
        _wait_http(api_url, 60, watch, token)
        StackFile(
            api_url,
            settings.kafka_bootstrap,
            settings.topic_prefix,
            token,
            os.getpid(),
            own_broker,
            metrics,
        ).write(data_dir)
        console.say(f"runledger: API on {api_url}; dashboard on {api_url}/ui")
        shown = ", ".join(f"{name} {url}" for name, url in metrics.items())
        console.say(f"runledger: metrics on {api_url}/metrics (node), {shown}")
        console.say(f"runledger: token for account 'default': {token}")
        console.say(f"runledger: stack file {data_dir / 'stack.json'}; Ctrl-C stops everything")
        while received is None:
            failure = broker.failure()
            if failure is not None:  # the clients would retry in silence
                console.say(f"runledger: {failure}", err=True)
                console.say(
                    "runledger: stopping the services (they cannot stop cleanly without it)"
                )
                stop_together(children, BROKER_GONE_KILL_AFTER_S)
                return 2
            for child in children:
                child.check()
            time.sleep(0.5)
        say_stopping("stopping")
        return 0
    except Interrupted:
        say_stopping("stopping before the stack was up")
        return 0
    except NotReady as exc:
        console.say(f"runledger: {exc}; see {exc.log or data_dir / 'logs' / 'node.log'}", err=True)
        return 2
    except TokenError as exc:
        console.say(f"runledger: no token for account 'default': {exc}", err=True)
        return 2
    finally:
        for child in reversed(children):
            child.stop()
        broker.stop()
