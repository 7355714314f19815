"""What the HTTP benches share: a running stack, a bounded load loop, percentiles.

:func:`running_stack` starts what ``runledger up`` starts, as child processes, on a
fresh topic prefix and a temporary data dir: the broker (``RUNLEDGER_KAFKA_BOOTSTRAP``
when set, else one from ``runledger.broker.start_broker``), the decider, and a node on
a free loopback port; it issues a token through the ledger and stops everything it
started when the ``with`` block ends, however it ends.

Not a test fixture: the benches do not import ``tests/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple, Protocol

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from runledger.broker import start_broker  # noqa: E402
from runledger.settings import Settings  # noqa: E402
from runledger.tokens import issue_token  # noqa: E402
from schemas import Codec  # noqa: E402
from streams import serde  # noqa: E402
from streams.domain import aggregates  # noqa: E402
from streams.domain.commands import Command, ReportProgress  # noqa: E402
from streams.topics import Topics, ensure_topics  # noqa: E402

PARTITIONS = 4  # what a deployment gets by default (RUNLEDGER_PARTITIONS)
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def machine() -> str:
    """One line about where the figures come from."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux); 0.0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    """A running decider and node on their own topic prefix."""

    bootstrap: str
    prefix: str
    data_dir: Path
    port: int
    partitions: int = PARTITIONS
    node_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings(self) -> Settings:
        return Settings(
            data_dir=self.data_dir,
            kafka_bootstrap=self.bootstrap,
            topic_prefix=self.prefix,
            partitions=self.partitions,
            port=self.port,
        )

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH")
        return {
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
            "RUNLEDGER_KAFKA_BOOTSTRAP": self.bootstrap,
            "RUNLEDGER_TOPIC_PREFIX": self.prefix,
            "RUNLEDGER_DATA_DIR": str(self.data_dir),
            "RUNLEDGER_PARTITIONS": str(self.partitions),
            **(extra or {}),
        }

    def start(self, name: str) -> None:
        argv = [sys.executable, "-m", "runledger", name]
        extra: dict[str, str] = {}
        if name == "node":
            argv += ["--port", str(self.port)]
            extra = self.node_env
        with open(self.data_dir / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(
                argv, env=self.env(extra), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        if name == "node":
            self._wait_healthy()

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart_node(self, node_env: dict[str, str]) -> None:
        """Stop the node and start it again with ``node_env`` added to its environment."""
        self.stop("node")
        self.node_env = node_env
        self.start("node")

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each child process."""
        return {name: cpu_seconds(proc.pid) for name, proc in self.procs.items()}

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.data_dir / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def wait_token(self) -> None:
        """Wait until the node's read model knows the token (the projector applied it)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        headers = {"Authorization": f"Bearer {self.token}"}
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(self.url + "/process?limit=1", headers=headers, timeout=5)
                if r.status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the node never accepted the token:\n{self.log_tail('node')}")

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.procs["node"].poll() is not None:
                raise RuntimeError(f"the node exited:\n{self.log_tail('node')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the node did not answer /health:\n{self.log_tail('node')}")


@contextlib.contextmanager
def running_stack(
    *, partitions: int = PARTITIONS, node_env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """A broker, a decider, a node and a token for account ``bench``; all stopped after."""
    with tempfile.TemporaryDirectory(prefix="runledger-bench-") as tmp:
        data_dir = Path(tmp)
        settings = Settings.from_env()
        broker = start_broker(settings, data_dir / "kafka", keep_data=False)
        try:
            stack = Stack(
                bootstrap=broker.bootstrap,
                prefix=f"bench{uuid.uuid4().hex[:8]}.",
                data_dir=data_dir / "node",
                port=free_port(),
                partitions=partitions,
                node_env=dict(node_env or {}),
            )
            stack.data_dir.mkdir(parents=True)
            asyncio.run(ensure_topics(stack.bootstrap, stack.topics, partitions))
            try:
                stack.start("decider")
                stack.start("node")
                settings = replace(stack.settings, command_timeout_s=30.0)
                stack.token = asyncio.run(issue_token(settings, "bench", "bench"))
                stack.wait_token()
                yield stack
            finally:
                stack.stop_all()
        finally:
            broker.stop()


# -- clients ---------------------------------------------------------------------------


class Response(NamedTuple):
    status: int
    body: bytes


class Connection(Protocol):
    """One keep-alive HTTP/1.1 connection, used by one worker at a time."""

    async def request(self, method: str, path: str, body: bytes | None = None) -> Response: ...

    async def close(self) -> None: ...


TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.HTTPError,
    OSError,
    asyncio.IncompleteReadError,
    ValueError,
)


class LeanConnection:
    """A minimal HTTP/1.1 client on asyncio streams: one request at a time, keep-alive,
    ``Content-Length`` bodies only (all this API sends).

    It exists because on a 2-core machine httpx spends ~0.6 ms of CPU per request, which
    caps a Python load generator near 1,000 requests/s, below what the node serves; this
    one spends a few tens of microseconds, so the node rather than the client is measured.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self._host, self._port = host, port
        fixed = {"Host": f"{host}:{port}", **headers}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        head = f"{method} {path} HTTP/1.1\r\n{self._head}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        elif method in ("POST", "PUT", "DELETE"):
            head += "Content-Length: 0\r\n"
        self._writer.write(head.encode() + b"\r\n" + (body or b""))
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                raise ValueError("chunked responses are not supported by the lean client")
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        data = await self._reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return Response(status, data)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class HttpxConnection:
    """The same over httpx, one AsyncClient (one connection) per worker.

    One client per worker rather than one shared pool: a shared httpx pool of 64
    connections spent most of its time in its own bookkeeping here (~200 requests/s).
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self._client = httpx.AsyncClient(
            base_url=url,
            headers=headers,
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        headers = {"Content-Type": "application/json"} if body is not None else None
        r = await self._client.request(method, path, content=body, headers=headers)
        return Response(r.status_code, r.content)

    async def close(self) -> None:
        await self._client.aclose()


CLIENTS = ("lean", "httpx")


def connections(
    stack: Stack, count: int, kind: str = "lean", extra: dict[str, str] | None = None
) -> list[Connection]:
    """``count`` connections to the stack's node, authenticated as account ``bench``,
    sending the ``extra`` headers with every request."""
    headers = {"Authorization": f"Bearer {stack.token}", **(extra or {})}
    if kind == "httpx":
        return [HttpxConnection(stack.url, headers) for _ in range(count)]
    if kind == "lean":
        return [LeanConnection("127.0.0.1", stack.port, headers) for _ in range(count)]
    raise ValueError(f"unknown client {kind!r}; one of {', '.join(CLIENTS)}")


async def close_all(conns: list[Connection]) -> None:
    for conn in conns:
        await conn.close()


# -- load ------------------------------------------------------------------------------


@dataclass
class Load:
    """What a bounded load run did: requests answered, by status, in how many seconds."""

    seconds: float
    statuses: Counter[int]
    errors: Counter[str]

    @property
    def done(self) -> int:
        return sum(self.statuses.values())

    def count(self, *codes: int) -> int:
        return sum(self.statuses[c] for c in codes)

    def rate(self, *codes: int) -> float:
        n = self.count(*codes) if codes else self.done
        return n / self.seconds if self.seconds > 0 else 0.0


async def drive(
    total: int,
    conns: list[Connection],
    request: Callable[[Connection, int], Awaitable[int]],
    *,
    time_limit: float,
) -> Load:
    """Run ``request(conn, i)`` for i in 0..total-1, one worker per connection.

    Each request returns an HTTP status; transport errors are counted by class name
    (and the connection is reopened). Stops early, with what was done so far, after
    ``time_limit`` seconds.
    """
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    next_index = 0
    deadline = time.monotonic() + time_limit

    async def worker(conn: Connection) -> None:
        nonlocal next_index
        while next_index < total and time.monotonic() < deadline:
            i = next_index
            next_index += 1
            try:
                statuses[await request(conn, i)] += 1
            except TRANSPORT_ERRORS as exc:
                errors[type(exc).__name__] += 1
                await conn.close()

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker(c) for c in conns)), time_limit + 60)
    return Load(time.perf_counter() - started, statuses, errors)


async def settle(stack: Stack, attempts: int = 6) -> None:
    """Wait until the node has applied everything in the ledger (``?wait=true`` reads,
    10 s each, at most ``attempts`` of them)."""
    conn = LeanConnection("127.0.0.1", stack.port, {"Authorization": f"Bearer {stack.token}"})
    try:
        for _ in range(attempts):
            if (await conn.request("GET", "/process?limit=1&wait=true")).status == 200:
                return
    finally:
        await conn.close()
    raise RuntimeError("the node did not catch up with the ledger")


def sample_command(codec: Codec, i: int) -> tuple[bytes, bytes]:
    """(key, value) of a progress command as a node encodes it, for raw baselines of the
    same message size."""
    pid = str(uuid.uuid4())
    cmd = Command(
        command_id=str(uuid.uuid4()),
        aggregate_type="process",
        aggregate_id=pid,
        issued_at=time.time_ns() // 1000,
        account="bench",
        actor="token:bench",
        correlation_id=str(uuid.uuid4()),
        causation_id=str(uuid.uuid4()),
        body=ReportProgress(float(i % 101), f"bench step {i}"),
        reply_to="node-0123456789ab",
    )
    return aggregates.stream_key("process", pid).encode(), serde.encode_command(codec, cmd)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def use_uvloop() -> bool:
    """Run the bench's own loop on uvloop when installed (uvicorn[standard] brings it)."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


@contextlib.contextmanager
def site_process(max_seconds: float) -> Iterator[tuple[str, int]]:
    """The test site in a child process: (base URL, pid). It stops when its stdin
    closes, which happens when this block ends or this process dies."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "site" / "server.py"),
            "--max-seconds",
            str(max_seconds),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        if not base_url.startswith("http://"):
            raise RuntimeError(f"the test site did not start: {base_url!r}")
        yield base_url, proc.pid
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
