"""A running stack for integration tests: the real broker, a decider and a node as
child processes (as `runledger up` runs them), on a topic prefix and data dir of
their own, with tokens for two accounts."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from runledger.settings import Settings
from runledger.tokens import issue_token
from runners.browser import CHROMIUM
from streams.topics import Topics, ensure_topics
from tests.cli_support import Cli, in_process
from tests.site.server import TestSite, serve_site

PARTITIONS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    bootstrap: str
    prefix: str
    data_dir: Path
    port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    # Run in a service's child process before it starts (a resource limit, a signal).
    preexec: dict[str, Callable[[], None]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings(self) -> Settings:
        return Settings(
            data_dir=self.data_dir,
            kafka_bootstrap=self.bootstrap,
            topic_prefix=self.prefix,
            partitions=PARTITIONS,
            port=self.port,
        )

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RUNLEDGER_KAFKA_BOOTSTRAP": self.bootstrap,
            "RUNLEDGER_TOPIC_PREFIX": self.prefix,
            "RUNLEDGER_DATA_DIR": str(self.data_dir),
            "RUNLEDGER_PARTITIONS": str(PARTITIONS),
            **self.extra_env,
        }

    def start(self, name: str) -> None:
        argv = [sys.executable, "-m", "runledger", name]
        if name == "node":
            argv += ["--port", str(self.port)]
        log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.procs[name] = subprocess.Popen(
            argv, env=self.env(), stdout=log, stderr=log, preexec_fn=self.preexec.get(name)
        )
        log.close()
        if name == "node":
            self.wait_healthy()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs["node"]
            if proc.poll() is not None:
                raise RuntimeError(f"node exited: {self.log_tail('node')}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"node did not become healthy: {self.log_tail('node')}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.data_dir / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def token(self, account: str) -> str:
        if account not in self.tokens:
            self.tokens[account] = asyncio.run(issue_token(self.settings, account, account))
        return self.tokens[account]

    def client(self, account: str = "acme") -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token(account)}"},
            timeout=30,
        )

    def authenticated(self, account: str) -> httpx.Client:
        """:meth:`client` once the node knows the account's token: a token is issued
        through the ledger and the node learns it from its projection a moment later;
        until then it answers 401."""
        client = self.client(account)
        deadline = time.monotonic() + 15
        while client.get("/process", params={"limit": 1}).status_code == 401:
            assert time.monotonic() < deadline, "the node did not learn the new token"
            time.sleep(0.05)
        return client


def start_stack(
    bootstrap: str,
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    preexec: dict[str, Callable[[], None]] | None = None,
) -> Stack:
    """A decider and a node on a fresh prefix; ``extra_env`` adds RUNLEDGER_* settings,
    ``preexec`` a function a service's child process runs before it starts."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    stack = Stack(
        bootstrap,
        prefix,
        data_dir,
        free_port(),
        extra_env=dict(extra_env or {}),
        preexec=dict(preexec or {}),
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(bootstrap, Topics(stack.prefix), PARTITIONS))
    stack.start("decider")
    stack.start("node")
    return stack


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A decider and a node for the tests of one module; stopped afterwards."""
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def cli(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    """``runledger`` run in-process against the module's ``stack``: (exit code, stdout,
    stderr) of ``cli("verify", ...)``."""
    for name, value in stack.env().items():
        if name.startswith("RUNLEDGER_"):
            monkeypatch.setenv(name, value)
    yield in_process(capsys)


@pytest.fixture
def chromium_site() -> Iterator[TestSite]:
    """The local test site, for tests that drive Debian's Chromium (failing, not
    skipping, when Chromium is missing)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (installs Debian's chromium)")
    with serve_site() as served:
        yield served
