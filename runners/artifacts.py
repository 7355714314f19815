"""Artifacts (page HTML, screenshots, diff images) on disk, addressed by the sha256 of
their bytes. Events carry only the hash; ``GET /artifact/{hash}`` serves the bytes.

Layout: ``<root>/<hash[:2]>/<hash>`` holds the bytes and ``<hash>.type`` the media type.
A stored artifact is never rewritten: putting the same bytes again returns the same hash.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from pathlib import Path

from runners.errors import ArtifactInvalid, ArtifactNotFound, ArtifactNotStored

_HASH = re.compile(r"[0-9a-f]{64}")
_MEDIA_TYPE = re.compile(r"[a-z]+/[a-z0-9.+-]+(; ?charset=[a-z0-9_-]+)?")

# What a disk says when it has no room for a write: a full disk, a quota, a file size limit.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

PNG = "image/png"
HTML = "text/html; charset=utf-8"


def content_hash(data: bytes) -> str:
    """The artifact id of ``data``: its sha256 as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """A write-once content-addressed folder. Safe for several runner processes on one
    disk: files appear by atomic rename, so a reader never sees half an artifact."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        # The hash is the only part of the path that comes from outside; a strict
        # pattern makes traversal (``..``, ``/``, absolute paths) impossible.
        if not isinstance(digest, str) or _HASH.fullmatch(digest) is None:
            raise ArtifactInvalid(f"not an artifact hash: {digest!r}")
        return self.root / digest[:2] / digest

    def put(self, data: bytes, media_type: str) -> str:
        """Store ``data`` and return its hash. Raises ``ArtifactInvalid`` for a malformed
        media type, ``ArtifactNotStored`` when the disk refuses the write (full: the job
        then fails saying so, where it was a "runner error" with a traceback)."""
        if _MEDIA_TYPE.fullmatch(media_type) is None:
            raise ArtifactInvalid(f"not a media type: {media_type!r}")
        digest = content_hash(data)
        path = self._path(digest)
        if path.exists():
            return digest
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The type file goes first, so a visible data file always has its type.
            _write_atomic(path.with_name(digest + ".type"), media_type.encode())
            _write_atomic(path, data)
        except OSError as exc:
            hint = "; free space there and run it again" if exc.errno in _NO_ROOM else ""
            raise ArtifactNotStored(
                f"could not store the {media_type.split(';')[0]} artifact ({len(data):,} "
                f"bytes) in {self.root}: {exc.strerror or exc}{hint}"
            ) from exc
        return digest

    def get(self, digest: str) -> tuple[bytes, str]:
        """The bytes and media type stored under ``digest``. Raises ``ArtifactInvalid``
        for a malformed hash or corrupted bytes, ``ArtifactNotFound`` if absent."""
        path = self._path(digest)
        try:
            data = path.read_bytes()
            media_type = path.with_name(digest + ".type").read_text()
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"no artifact {digest}") from exc
        if content_hash(data) != digest:
            raise ArtifactInvalid(f"artifact {digest} is corrupted on disk")
        return data, media_type

    def exists(self, digest: str) -> bool:
        """Whether an artifact is stored under ``digest`` (malformed hashes raise)."""
        return self._path(digest).exists()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
