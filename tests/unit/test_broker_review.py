"""The jar cache of the local broker on a fresh or damaged machine: an interrupted
download (a zero-byte or truncated jar) is noticed and fetched again, not handed to
Java to fail on with a NoClassDefFoundError."""

from __future__ import annotations

import os
import stat
import sys
import zipfile
from pathlib import Path

import pytest

from runledger.broker import BrokerError, fetch_jars, jars_cached

VERSION = "3.9.1"
JARS = [f"kafka_2.13-{VERSION}.jar", "scala-library-2.13.15.jar", "slf4j-api-1.7.36.jar"]


def make_jar(path: Path, payload: bytes = b"x" * 5000) -> None:
    with zipfile.ZipFile(path, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        jar.writestr("some/Class.class", payload)


@pytest.fixture
def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``mvn`` on PATH that "downloads" JARS into -DoutputDirectory and counts its runs;
    a file ``corrupt`` next to it names a jar it delivers truncated."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "mvn"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, zipfile\n"
        "from pathlib import Path\n"
        "here = Path(__file__).parent\n"
        "runs = here / 'runs'\n"
        "runs.write_text(str(int(runs.read_text() if runs.exists() else 0) + 1))\n"
        "flag = '-DoutputDirectory='\n"
        "out = Path(next(a[len(flag):] for a in sys.argv if a.startswith(flag)))\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "corrupt = (here / 'corrupt').read_text() if (here / 'corrupt').exists() else ''\n"
        f"for name in {JARS!r}:\n"
        "    with zipfile.ZipFile(out / name, 'w') as jar:\n"
        "        # fixed entry times: the same jar, byte for byte, on every run\n"
        "        at = (2024, 1, 1, 0, 0, 0)\n"
        "        manifest = zipfile.ZipInfo('META-INF/MANIFEST.MF', at)\n"
        "        jar.writestr(manifest, 'Manifest-Version: 1.0\\n')\n"
        "        jar.writestr(zipfile.ZipInfo('some/Class.class', at), b'x' * 5000)\n"
        "    if name == corrupt:\n"
        "        data = (out / name).read_bytes()\n"
        "        (out / name).write_bytes(data[: len(data) // 2])\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def mvn_runs(bin_dir: Path) -> int:
    runs = bin_dir / "runs"
    return int(runs.read_text()) if runs.exists() else 0


def test_fetch_once_then_cached(tmp_path: Path, fake_mvn: Path) -> None:
    cache = tmp_path / "cache"
    libs = fetch_jars(cache, VERSION)
    assert sorted(p.name for p in libs.iterdir()) == sorted(JARS)
    assert jars_cached(cache, VERSION)
    fetch_jars(cache, VERSION)
    assert mvn_runs(fake_mvn) == 1  # the second call did not run Maven


@pytest.mark.parametrize("damage", ["zero-byte", "truncated", "deleted"])
def test_damaged_cache_is_not_cached_and_is_fetched_again(
    tmp_path: Path, fake_mvn: Path, damage: str
) -> None:
    cache = tmp_path / "cache"
    libs = fetch_jars(cache, VERSION)
    victim = libs / "scala-library-2.13.15.jar"
    good = victim.read_bytes()
    if damage == "zero-byte":
        victim.write_bytes(b"")
    elif damage == "truncated":
        victim.write_bytes(good[: len(good) // 2])
    else:
        victim.unlink()

    assert not jars_cached(cache, VERSION)
    fetch_jars(cache, VERSION)
    assert mvn_runs(fake_mvn) == 2
    assert victim.read_bytes() == good
    assert jars_cached(cache, VERSION)


def test_cache_from_an_older_marker_is_still_checked(tmp_path: Path) -> None:
    """A cache written before the marker listed the jars (it held only the version)."""
    libs = tmp_path / "cache" / f"kafka-{VERSION}" / "libs"
    libs.mkdir(parents=True)
    for name in JARS:
        make_jar(libs / name)
    (libs.parent / "fetched.ok").write_text(f"{VERSION}\n")
    assert jars_cached(tmp_path / "cache", VERSION)
    (libs / JARS[1]).write_bytes(b"")
    assert not jars_cached(tmp_path / "cache", VERSION)


def test_maven_delivering_a_broken_jar_is_a_clear_error(tmp_path: Path, fake_mvn: Path) -> None:
    (fake_mvn / "corrupt").write_text("slf4j-api-1.7.36.jar")
    cache = tmp_path / "cache"
    with pytest.raises(BrokerError, match=r"slf4j-api-1\.7\.36\.jar.*not a complete jar"):
        fetch_jars(cache, VERSION)
    assert not jars_cached(cache, VERSION)


def fake_java(bin_dir: Path, version_line: str) -> None:
    """A ``java`` that answers ``-version`` like a JDK of another version, and records
    any other run (which would be a broker start)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "java"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-version" ]; then echo \'{version_line}\' >&2; exit 0; fi\n'
        f'echo "$@" >> "{bin_dir}/started"\n'
        "exit 1\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("line", "shown"),
    [('openjdk version "11.0.22" 2024-01-16', "11"), ('java version "1.8.0_392"', "8")],
)
def test_java_older_than_17_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, shown: str
) -> None:
    from runledger.broker import LocalKafka

    bin_dir = tmp_path / "bin"
    fake_java(bin_dir, line)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    libs = tmp_path / "libs"
    libs.mkdir()
    make_jar(libs / f"kafka_2.13-{VERSION}.jar")
    broker = LocalKafka(libs, tmp_path / "kafka")
    with pytest.raises(BrokerError, match=rf"Java {shown}\b.*needs Java 17 or later"):
        broker.start(timeout=5)
    assert not (bin_dir / "started").exists()  # neither format nor broker was run


def test_java_home_is_preferred_to_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As Kafka's own scripts do: JAVA_HOME names the Java to use when it is set."""
    from runledger.broker import LocalKafka

    on_path, home = tmp_path / "path-bin", tmp_path / "jdk" / "bin"
    fake_java(on_path, 'openjdk version "11.0.22" 2024-01-16')
    fake_java(home, 'openjdk version "17.0.15" 2025-04-15')
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("JAVA_HOME", str(home.parent))
    libs = tmp_path / "libs"
    libs.mkdir()
    make_jar(libs / f"kafka_2.13-{VERSION}.jar")
    broker = LocalKafka(libs, tmp_path / "kafka")
    with pytest.raises(BrokerError, match="formatting KRaft storage"):
        broker.start(timeout=5)  # the fake 17 "fails" to format: it was the one used
    assert (home / "started").exists()
    assert not (on_path / "started").exists()


def ready_libs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Java 17 (fake) on PATH and a libs dir that passes the checks before the start."""
    bin_dir = tmp_path / "bin"
    fake_java(bin_dir, 'openjdk version "17.0.15" 2025-04-15')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    libs = tmp_path / "libs"
    libs.mkdir()
    make_jar(libs / f"kafka_2.13-{VERSION}.jar")
    return libs


def test_log_dir_that_cannot_be_made_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runledger.broker import LocalKafka

    libs = ready_libs(tmp_path, monkeypatch)
    (tmp_path / "plain-file").write_text("")
    log_dir = tmp_path / "plain-file" / "kafka"
    with pytest.raises(BrokerError, match=rf"Kafka log dir {log_dir}.*Not a directory"):
        LocalKafka(libs, log_dir).start(timeout=5)


def test_full_disk_while_writing_the_config_names_the_log_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC from a write carries no file name: the message must still say where."""
    import errno

    from runledger.broker import LocalKafka

    libs = ready_libs(tmp_path, monkeypatch)

    def disk_full(self: LocalKafka) -> Path:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(LocalKafka, "_write_config", disk_full)
    log_dir = tmp_path / "kafka"
    with pytest.raises(BrokerError, match=rf"Kafka log dir {log_dir}.*No space left on device"):
        LocalKafka(libs, log_dir).start(timeout=5)


def test_failed_start_on_a_full_disk_says_the_disk_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a full disk Kafka cannot even write its log, so the log's tail shows only the
    configuration dump: the diagnosis must say what is wrong."""
    from collections import namedtuple

    from runledger.broker import LocalKafka
    from runledger.broker import host as host_module

    usage = namedtuple("usage", "total used free")
    log_dir = tmp_path / "kafka"
    log_dir.mkdir()
    broker_log = log_dir / "broker.log"
    broker_log.write_text("\tsocket.listen.backlog.size = 50\n\tsocket.receive.buffer.byte")
    broker = LocalKafka(tmp_path / "libs", log_dir)

    monkeypatch.setattr(host_module.shutil, "disk_usage", lambda p: usage(2**21, 2**21, 0))
    assert f"no space left on the disk of {log_dir}" in broker._diagnosis(broker_log, 0)
    monkeypatch.setattr(host_module.shutil, "disk_usage", lambda p: usage(2**40, 0, 2**39))
    assert "space" not in broker._diagnosis(broker_log, 0)
