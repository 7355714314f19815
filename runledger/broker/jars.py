"""Apache Kafka's broker jars, fetched once from Maven Central into a cache with ``mvn``."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from runledger.broker.errors import BrokerError, tail

log = logging.getLogger(__name__)

POM = Path(__file__).resolve().parents[2] / "scripts" / "kafka" / "pom.xml"
FETCHED_MARKER = "fetched.ok"


def jars_cached(cache_dir: Path, version: str) -> bool:
    """True when :func:`fetch_jars` finished for this version and will not run Maven.

    The jars are checked too, not only the marker: a jar cut short (a disk that filled,
    a cache copied while it was written) would otherwise reach Java, which fails with a
    ``NoClassDefFoundError`` that says nothing about the cache."""
    home = cache_dir / f"kafka-{version}"
    return _damage(home, version) is None


def _complete(jar: Path) -> bool:
    """Whether ``jar`` is a whole zip file: a cut-short one lacks the central directory
    at its end (only the end of the file is read)."""
    try:
        return jar.stat().st_size > 0 and zipfile.is_zipfile(jar)
    except OSError:
        return False


def _damage(home: Path, version: str) -> str | None:
    """What is wrong with the cache in ``home``, or None when it is complete. The marker
    lists each jar with its size; a marker of older runs holds only the version."""
    libs = home / "libs"
    try:
        lines = (home / FETCHED_MARKER).read_text().splitlines()
    except OSError:
        return "the last fetch did not finish"
    listed = dict(line.rsplit(" ", 1) for line in lines[1:] if " " in line)
    wanted = set(listed) | {f"kafka_2.13-{version}.jar"}
    for name in sorted(wanted):
        jar = libs / name
        if not jar.exists():
            return f"{jar} is missing"
        if name in listed and str(jar.stat().st_size) != listed[name]:
            return f"{jar} has {jar.stat().st_size} bytes, not {listed[name]}"
    for jar in sorted(libs.glob("*.jar")):
        if not _complete(jar):
            return f"{jar} is not a complete jar"
    return None


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
        damage = _damage(home, version)
        if damage is None:  # another process fetched while we waited
            return libs
        if (home / FETCHED_MARKER).exists():
            log.warning("the cached Kafka jars are damaged (%s); fetching them again", damage)
            (home / FETCHED_MARKER).unlink()
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
        broken = [jar.name for jar in sorted(partial.glob("*.jar")) if not _complete(jar)]
        if broken:
            shutil.rmtree(partial, ignore_errors=True)
            raise BrokerError(
                f"Maven delivered {', '.join(broken)} but it is not a complete jar: the copy "
                "in Maven's local repository (~/.m2/repository) is damaged. Delete it there "
                "and run again."
            )
        _settle(partial, libs)
        sizes = "".join(f"{jar.name} {jar.stat().st_size}\n" for jar in sorted(libs.iterdir()))
        (home / FETCHED_MARKER).write_text(f"{version}\n{sizes}")
    return libs


def _settle(fresh: Path, libs: Path) -> None:
    """Move the fetched jars into ``libs`` one by one, leaving alone the ones already there
    with the same size: a broker running from ``libs`` keeps the files it has open."""
    libs.mkdir(exist_ok=True)
    wanted = {jar.name for jar in fresh.iterdir()}
    for jar in fresh.iterdir():
        old = libs / jar.name
        if not (old.exists() and old.stat().st_size == jar.stat().st_size and _complete(old)):
            os.replace(jar, old)
    for stale in libs.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    shutil.rmtree(fresh)
