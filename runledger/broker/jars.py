"""Apache Kafka's broker jars, fetched once from Maven Central into a cache with ``mvn``."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
from pathlib import Path

from runledger.broker.errors import BrokerError, tail

log = logging.getLogger(__name__)

POM = Path(__file__).resolve().parents[2] / "scripts" / "kafka" / "pom.xml"
FETCHED_MARKER = "fetched.ok"


def jars_cached(cache_dir: Path, version: str) -> bool:
    """True when :func:`fetch_jars` finished for this version and will not run Maven."""
    home = cache_dir / f"kafka-{version}"
    jar = home / "libs" / f"kafka_2.13-{version}.jar"
    return (home / FETCHED_MARKER).exists() and jar.exists()


def fetch_jars(cache_dir: Path, version: str) -> Path:
    """Return ``cache_dir/kafka-VERSION/libs``, fetching the broker's jars with Maven first
    if an earlier fetch did not finish. Safe to call from several processes at once.

    Raises :class:`BrokerError` when ``mvn`` is missing or fails.
    """
    home = cache_dir / f"kafka-{version}"
    libs = home / "libs"
    if jars_cached(cache_dir, version):
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if jars_cached(cache_dir, version):  # another process fetched while we waited
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "Maven (mvn) is not on PATH; it is needed once to fetch the Kafka broker's "
                f"jars into {libs}. Install it (apt-get install maven) or set "
                "RUNLEDGER_KAFKA_BOOTSTRAP to an existing broker."
            )
        if not POM.exists():
            raise BrokerError(f"{POM} is missing: fetching the Kafka jars needs a source checkout")
        partial = home / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        command = [
            mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}", "-DincludeScope=runtime", f"-Dkafka.version={version}",
        ]  # fmt: skip
        log.info("fetching Kafka %s jars with Maven into %s", version, libs)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError("mvn did not finish fetching the Kafka jars within 900 s") from exc
        if done.returncode != 0 or not (partial / f"kafka_2.13-{version}.jar").exists():
            shutil.rmtree(partial, ignore_errors=True)
            raise BrokerError(
                f"mvn failed to fetch Kafka {version} (exit {done.returncode}):\n"
                + tail(done.stdout + done.stderr)
            )
        _settle(partial, libs)
        (home / FETCHED_MARKER).write_text(f"{version}\n")
    return libs


def _settle(fresh: Path, libs: Path) -> None:
    """Move the fetched jars into ``libs`` one by one, leaving alone the ones already there
    with the same size: a broker running from ``libs`` keeps the files it has open."""
    libs.mkdir(exist_ok=True)
    wanted = {jar.name for jar in fresh.iterdir()}
    for jar in fresh.iterdir():
        old = libs / jar.name
        if not (old.exists() and old.stat().st_size == jar.stat().st_size):
            os.replace(jar, old)
    for stale in libs.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    shutil.rmtree(fresh)
