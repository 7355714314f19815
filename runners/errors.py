"""The one exception base of ``runners``; each name says what the caller should do."""

from __future__ import annotations


class RunnerError(Exception):
    """Base of every error raised by ``runners``: the job fails with this message."""


class TargetRefused(RunnerError):
    """The target resolves to an address runners must not reach (loopback, private,
    link-local, ...). Not retryable: fix the target or allow private targets."""

    def __init__(self, target: str, address: str, reason: str) -> None:
        super().__init__(f"target {target!r} refused: {address} is {reason}")
        self.target = target
        self.address = address
        self.reason = reason


class TargetInvalid(RunnerError):
    """The target is not something runners can reach at all (bad scheme, no host)."""


class BrowserUnavailable(RunnerError):
    """Chromium could not be started or has gone away: retry on another runner."""


class PageFailed(RunnerError):
    """A page operation failed (navigation error, missing element, script error)."""


class PageNavigated(PageFailed):
    """The page went to another document while it was being read (a meta refresh, a
    script redirect): read it again once the new document has loaded."""


class PageTimeout(PageFailed):
    """A page operation did not finish within its timeout."""


class ArtifactNotFound(RunnerError):
    """No artifact is stored under this hash."""


class ArtifactInvalid(RunnerError):
    """A hash or media type is malformed, or stored bytes do not match their hash."""


class ArtifactNotStored(RunnerError):
    """The artifacts folder did not take the bytes (a full disk, a quota, no permission):
    the job fails with where and why; free space and run it again."""


class ImageInvalid(RunnerError):
    """Bytes given as a PNG screenshot could not be decoded."""


class NotifyFailed(RunnerError):
    """A webhook, Slack or email delivery failed (connection, timeout, SMTP error)."""
