"""The content-addressed artifact store."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from runners.artifacts import HTML, PNG, ArtifactStore
from runners.errors import ArtifactInvalid, ArtifactNotFound, ArtifactNotStored


def test_put_returns_the_sha256_and_get_returns_bytes_and_type(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    digest = store.put(b"<html></html>", HTML)
    assert digest == hashlib.sha256(b"<html></html>").hexdigest()
    assert store.get(digest) == (b"<html></html>", HTML)
    assert store.exists(digest)


def test_artifacts_are_write_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    first = store.put(b"png bytes", PNG)
    path = tmp_path / first[:2] / first
    stat = path.stat()
    assert store.put(b"png bytes", "text/plain") == first
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert store.get(first) == (b"png bytes", PNG)
    assert not [p for p in tmp_path.rglob(".tmp-*")]


@pytest.mark.parametrize(
    "digest",
    ["../../etc/passwd", "/etc/passwd", "ab" * 31, "AB" * 32, "g" * 64, "a" * 64 + "/..", ""],
)
def test_malformed_hashes_are_rejected_before_touching_the_disk(
    tmp_path: Path, digest: str
) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactInvalid):
        store.get(digest)


def test_missing_artifact(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound):
        ArtifactStore(tmp_path).get("0" * 64)


def test_bad_media_type_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ArtifactInvalid):
        ArtifactStore(tmp_path).put(b"x", "text/html\r\nX-Evil: 1")


def test_corrupted_bytes_are_detected(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    digest = store.put(b"original", PNG)
    (tmp_path / digest[:2] / digest).write_bytes(b"tampered")
    with pytest.raises(ArtifactInvalid):
        store.get(digest)


def test_a_disk_that_refuses_the_bytes_fails_with_where_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_room(fd: int) -> None:  # where a full disk shows itself at the latest
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_room)
    with pytest.raises(ArtifactNotStored) as refused:
        ArtifactStore(tmp_path).put(b"png bytes", PNG)
    assert str(refused.value) == (
        f"could not store the image/png artifact (9 bytes) in {tmp_path}: "
        "No space left on device; free space there and run it again"
    )
    # Nothing half-written is left behind.
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []
