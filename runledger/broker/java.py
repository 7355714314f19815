"""The Java that runs the local broker: found as Kafka's own scripts find it, and
checked to be new enough before anything is started with it."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from runledger.broker.errors import BrokerError, tail

JAVA_NEEDED = 17


def find_java() -> str:
    """The ``java`` to run the broker with: ``$JAVA_HOME/bin/java`` when JAVA_HOME is set
    (as Kafka's own scripts choose), else the one on PATH; checked to be Java 17 or later,
    so an older one gives this message instead of a class-version error from the JVM.

    Raises :class:`BrokerError` when there is none, it does not run, or it is too old.
    """
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else None
    if java is None or not os.access(java, os.X_OK):
        java = shutil.which("java")
    if java is None:
        raise BrokerError(
            f"java is not on PATH; the local Kafka broker needs Java {JAVA_NEEDED} or later "
            "(apt-get install openjdk-17-jre-headless, or set RUNLEDGER_KAFKA_BOOTSTRAP to an "
            "existing broker)"
        )
    version = _java_version(java)
    if version < JAVA_NEEDED:
        raise BrokerError(
            f"{java} is Java {version}; the local Kafka broker needs Java {JAVA_NEEDED} or later "
            "(apt-get install openjdk-17-jre-headless, and put it first on PATH or in JAVA_HOME)"
        )
    return java


@functools.cache
def _java_version(java: str) -> int:
    """The feature version of ``java`` (8 for "1.8.0_392", 17 for "17.0.15")."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"{java} -version did not run: {exc}") from exc
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if done.returncode != 0 or found is None:
        raise BrokerError(
            f"{java} -version failed (exit {done.returncode}):\n" + tail(done.stderr + done.stdout)
        )
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major
