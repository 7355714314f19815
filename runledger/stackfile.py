"""``DATA_DIR/stack.json``: how other commands and scripts find a running stack."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FILE_NAME = "stack.json"


class StackFileError(Exception):
    """stack.json is missing or unreadable; the message says what to run."""


@dataclass(frozen=True)
class StackFile:
    api_url: str
    kafka_bootstrap: str
    topic_prefix: str
    token: str
    pid: int = 0

    def write(self, data_dir: Path) -> Path:
        """Write atomically, readable by the owner only (it holds a token)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / FILE_NAME
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a temp file left behind
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self), out, indent=2)
            out.write("\n")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, data_dir: Path) -> StackFile:
        path = data_dir / FILE_NAME
        try:
            raw = json.loads(path.read_text())
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        except FileNotFoundError:
            raise StackFileError(
                f"no {path}: start the stack with `runledger up --data-dir {data_dir}` "
                "or set RUNLEDGER_KAFKA_BOOTSTRAP"
            ) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise StackFileError(f"{path} is not a valid stack file: {exc}") from exc

    def running(self) -> bool:
        """Whether the ``runledger up`` that wrote this file still runs: its pid is
        alive, is not this process, and is a runledger process (pids are reused)."""
        if self.pid <= 0 or self.pid == os.getpid():
            return False
        try:
            argv = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False  # gone (or no /proc: assume stale rather than refuse to start)
        return b"runledger" in b" ".join(argv) and b"up" in argv

    @classmethod
    def read_optional(cls, data_dir: Path) -> StackFile | None:
        try:
            return cls.read(data_dir)
        except StackFileError:
            return None
