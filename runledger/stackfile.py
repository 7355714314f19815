"""``DATA_DIR/stack.json``: how other commands and scripts find a running stack."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runledger.settings import check_bootstrap, check_topic_prefix

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
    # Whether `up` ran the broker itself (True) or used RUNLEDGER_KAFKA_BOOTSTRAP (False);
    # None in files written before it was recorded. A later `up` refuses to resume the
    # read model against the other kind (runledger.stack_resume).
    own_broker: bool | None = None
    # Where each service without an API serves /metrics: {"decider": "http://...", ...};
    # empty in files written before `up` started them with a metrics port.
    metrics: dict[str, str] = field(default_factory=dict)

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
        """The stack file of ``data_dir``; StackFileError, saying what to run, when it
        is missing or damaged (a broker address of the wrong type or form would
        otherwise reach aiokafka, which dies on it in a traceback)."""
        path = data_dir / FILE_NAME
        try:
            raw = json.loads(path.read_text())
            return cls(**_checked(raw))
        except FileNotFoundError:
            raise StackFileError(
                f"no {path}: start the stack with `runledger up --data-dir {data_dir}` "
                "or set RUNLEDGER_KAFKA_BOOTSTRAP"
            ) from None
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError too
            raise StackFileError(
                f"{path} is not a valid stack file: {exc}; start the stack again with "
                f"`runledger up --data-dir {data_dir}`, which rewrites it"
            ) from exc

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


def _checked(raw: Any) -> dict[str, Any]:
    """The fields of a parsed stack file; ValueError naming the first wrong one."""
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    for name in ("api_url", "kafka_bootstrap", "topic_prefix", "token"):
        if name not in raw:
            raise ValueError(f"no {name}")
        if not isinstance(raw[name], str):
            raise ValueError(f"{name} must be text, got {raw[name]!r}")
    pid = raw.get("pid", 0)
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise ValueError(f"pid must be a whole number, got {pid!r}")
    own = raw.get("own_broker")
    if own is not None and not isinstance(own, bool):
        raise ValueError(f"own_broker must be true, false or null, got {own!r}")
    metrics = raw.get("metrics", {})
    if not isinstance(metrics, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metrics.items()
    ):
        raise ValueError(f"metrics must map service names to URLs, got {metrics!r}")
    try:
        check_bootstrap(raw["kafka_bootstrap"])
    except ValueError as exc:
        raise ValueError(f"kafka_bootstrap: {exc}") from None
    try:
        check_topic_prefix(raw["topic_prefix"])
    except ValueError as exc:
        raise ValueError(f"topic_prefix {exc}") from None
    return {k: raw[k] for k in StackFile.__dataclass_fields__ if k in raw}
