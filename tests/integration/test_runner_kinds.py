"""``runledger runner --kinds scan,case`` (issue 3: "starts more"): the runner joins the
consumer groups of those kinds only, so it shares their jobs with every other runner of
those kinds and leaves the other kinds' jobs alone. Real broker, real Chromium."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.topics import Topics, ensure_topics

pytestmark = pytest.mark.integration


async def _groups(bootstrap: str, prefix: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        listed = await admin.list_consumer_groups()
    finally:
        await admin.close()
    return {group[0] for group in listed if group[0].startswith(prefix)}


def test_a_runner_with_kinds_joins_only_their_consumer_groups(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(kafka_bootstrap, Topics(prefix), 2))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLEDGER_")}
    env |= {
        "RUNLEDGER_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "RUNLEDGER_TOPIC_PREFIX": prefix,
        "RUNLEDGER_DATA_DIR": str(tmp_path),
    }
    log_path = tmp_path / "runner.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runledger", "runner", "--kinds", "scan, case"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wanted = {f"{prefix}runledger-runner-scan", f"{prefix}runledger-runner-case"}
    try:
        deadline = time.monotonic() + 60
        groups: set[str] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            ready = "runner ready: kinds scan,case," in log_path.read_text(errors="replace")
            groups = asyncio.run(_groups(kafka_bootstrap, prefix)) if ready else set()
            if wanted <= groups:
                break
            time.sleep(0.5)
        output = log_path.read_text(errors="replace")
        assert "runner ready: kinds scan,case, 4 pages" in output, output
        assert groups == wanted, (groups, output)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
