"""Errors of the read side; one base, names that say what the caller should do."""

from __future__ import annotations


class ProjectionError(Exception):
    """Base of every error raised by ``projections``."""


class StoreError(ProjectionError):
    """The DuckDB file could not be opened, read or written; nothing of the batch was kept."""


class StoreFull(StoreError):
    """The DuckDB file or its write-ahead log could not grow (a full disk, a quota, a file
    size limit); nothing of the batch was kept: free space and write it again."""


class ProjectorError(ProjectionError):
    """The projector cannot consume (missing topic, broker unreachable); fix and restart it."""
