"""A service asked to stop (SIGTERM, SIGINT) stops cleanly if it can, and ends anyway
once its grace is over or a second signal comes: `up`'s children get SIGTERM from the
kernel when `up` is SIGKILLed, often with the broker gone too, and a clean stop that
keeps retrying Kafka must not leave them running."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from runledger.services import FORCED_EXIT

# A service whose clean stop never ends: it blocks its own event loop once asked.
HANGING_SERVICE = """
import asyncio, sys, time
from runledger.services import stop_on_signals

async def main():
    stop = asyncio.Event()
    stop_on_signals(stop, grace_s=float(sys.argv[1]))
    print("ready", flush=True)
    await stop.wait()
    print("stopping", flush=True)
    time.sleep(120)  # a clean stop that hangs, holding the loop

asyncio.run(main())
"""

CLEAN_SERVICE = """
import asyncio
from runledger.services import stop_on_signals

async def main():
    stop = asyncio.Event()
    stop_on_signals(stop, grace_s=30)
    print("ready", flush=True)
    await stop.wait()

asyncio.run(main())
"""


def _started(code: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _ended(proc: subprocess.Popen[str], within: float) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"still running {within:g} s after the signal")
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_that_hangs_ends_when_its_grace_is_over(sig: signal.Signals) -> None:
    proc = _started(HANGING_SERVICE, "1.5")
    began = time.monotonic()
    proc.send_signal(sig)
    code, err = _ended(proc, within=30)
    assert code == FORCED_EXIT, err
    assert time.monotonic() - began >= 1.5  # it was given its grace first
    assert f"did not stop within 1.5 s of {sig.name}" in err


def test_a_second_signal_ends_a_hanging_stop_at_once() -> None:
    proc = _started(HANGING_SERVICE, "600")
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "stopping"
    proc.send_signal(signal.SIGTERM)
    code, err = _ended(proc, within=30)
    assert code == FORCED_EXIT, err
    assert "a second SIGTERM came while stopping" in err


def test_a_clean_stop_is_not_cut_short() -> None:
    proc = _started(CLEAN_SERVICE)
    proc.send_signal(signal.SIGTERM)
    code, err = _ended(proc, within=30)
    assert code == 0, err
    assert "without a clean stop" not in err
