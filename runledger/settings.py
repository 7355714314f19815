"""Configuration, read once from the environment into a frozen value.

Every variable carries the ``RUNLEDGER_`` prefix. Nothing below the composition root
reads ``os.environ``: the CLI builds a :class:`Settings` and hands plain values down.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

PREFIX = "RUNLEDGER_"
# Kafka names topics with these characters only; the longest name a prefix starts
# (a faust changelog topic) must stay under Kafka's 249.
_TOPIC_PREFIX = re.compile(r"[A-Za-z0-9._-]{0,180}")


# Said at WARNING by `up` and by every runner that starts with the setting on: it lets
# a Flow's webhook or scan reach the machine's own and the private network's services.
PRIVATE_TARGETS_WARNING = (
    f"runners may reach private addresses ({PREFIX}ALLOW_PRIVATE_TARGETS is set)"
)


class SettingsError(ValueError):
    """A ``RUNLEDGER_*`` variable holds a value that cannot be used; the message names it."""


def text_setting(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value, None when unset or blank (blank means "the default")."""
    raw = env.get(PREFIX + name)
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def int_setting(env: Mapping[str, str], name: str, default: int, least: int, most: int) -> int:
    raw = text_setting(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}{name} must be a whole number, got {raw!r}") from exc
    if not least <= value <= most:
        raise SettingsError(f"{PREFIX}{name} must be from {least} to {most}, got {raw!r}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float, *, zero: bool = False) -> float:
    """A finite number of seconds above 0 (or 0 too, with ``zero``): nan, inf and
    negative values would otherwise reach timers that never fire or fire at once."""
    raw = text_setting(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}{name} must be a number of seconds, got {raw!r}") from exc
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        least = "0 or more" if zero else "above 0"
        raise SettingsError(f"{PREFIX}{name} must be a number of seconds {least}, got {raw!r}")
    return value


def check_topic_prefix(text: str) -> None:
    """ValueError unless Kafka allows ``text`` at the start of a topic name."""
    if not _TOPIC_PREFIX.fullmatch(text):
        raise ValueError(
            "must be at most 180 letters, digits, '.', '_' or '-' "
            f"(what Kafka allows in a topic name), got {text!r}"
        )


def _topic_prefix(env: Mapping[str, str]) -> str:
    raw = env.get(PREFIX + "TOPIC_PREFIX", "")
    try:
        check_topic_prefix(raw)
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}TOPIC_PREFIX {exc}") from exc
    return raw


def check_bootstrap(text: str) -> None:
    """ValueError unless ``text`` is what Kafka clients take as bootstrap servers:
    ``host:port`` entries (``[v6]:port``, a bare host for port 9092) separated by
    commas. A port that is not a number or out of range would otherwise reach aiokafka,
    which dies on it in a traceback; a URL or an empty entry in a timeout."""
    entries = [entry.strip() for entry in text.split(",")]
    for entry in entries:
        if not entry:
            raise ValueError(f"{text!r} has an empty entry: give host:port[,host:port...]")
        if "/" in entry:
            raise ValueError(f"{entry!r} is not host:port (no scheme, no path)")
        host, port = entry, None
        if entry.startswith("["):
            host, bracket, rest = entry[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"{entry!r} is not host:port ([IPv6 address]:port)")
            port = rest[1:] if rest else None
        elif entry.count(":") == 1:  # more than one: a bare IPv6 address, port 9092
            host, port = entry.split(":")
        if not host:
            raise ValueError(f"{entry!r} names no host")
        if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")


def _bootstrap(env: Mapping[str, str]) -> str:
    raw = text_setting(env, "KAFKA_BOOTSTRAP")
    if raw is None:
        return ""
    try:
        check_bootstrap(raw)
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}KAFKA_BOOTSTRAP: {exc}") from exc
    return raw


def bool_setting(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = text_setting(env, name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{PREFIX}{name} must be true or false, got {raw!r}")


# The least DuckDB memory limit a node takes (RUNLEDGER_DUCKDB_MEMORY_MIB).
MIN_MEMORY_MIB = 64


def _memory_mib(env: Mapping[str, str]) -> int:
    """0 (DuckDB's own limit, 80 % of the RAM) or at least MIN_MEMORY_MIB: below that
    DuckDB fails ordinary reads for want of memory."""
    value = int_setting(env, "DUCKDB_MEMORY_MIB", 0, 0, 1 << 30)
    if 0 < value < MIN_MEMORY_MIB:
        raise SettingsError(
            f"{PREFIX}DUCKDB_MEMORY_MIB must be 0 (DuckDB's default) or at least "
            f"{MIN_MEMORY_MIB}, got {value}"
        )
    return value


def _metrics_port(env: Mapping[str, str]) -> int | None:
    """RUNLEDGER_METRICS_PORT, None when unset (no metrics server)."""
    if text_setting(env, "METRICS_PORT") is None:
        return None
    return int_setting(env, "METRICS_PORT", 0, 1, 65535)


def _artifacts_dir(env: Mapping[str, str]) -> Path | None:
    """RUNLEDGER_ARTIFACTS_DIR, None when unset. A file there would otherwise fail
    every runner's first screenshot and every node's GET /artifact, long after start."""
    raw = text_setting(env, "ARTIFACTS_DIR")
    if raw is None:
        return None
    path = Path(raw)
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{PREFIX}ARTIFACTS_DIR {raw} is a file, not a folder")
    return path


@dataclass(frozen=True)
class Settings:
    """Everything a runledger process needs to know about its surroundings.

    ``kafka_bootstrap`` is empty when no cluster is configured; ``runledger up`` then
    starts a broker of its own (testcontainers where Docker answers, else the local
    Java broker).
    """

    data_dir: Path = Path(".runledger")
    kafka_bootstrap: str = ""
    topic_prefix: str = ""
    partitions: int = 4
    host: str = "127.0.0.1"
    port: int = 8000
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "runledger")
    kafka_version: str = "3.9.1"
    max_body_bytes: int = 1_048_576
    command_timeout_s: float = 10.0
    wait_timeout_s: float = 10.0
    allow_private_targets: bool = False
    # How long an SSE stream stays open before the client must reconnect, and how
    # often a comment keeps proxies from closing an idle one.
    sse_window_s: float = 25.0
    sse_heartbeat_s: float = 5.0
    # Open streams one account may hold on a node; how long one write to a stream's
    # client may take before the node closes it; events read per page of a backlog.
    sse_max_streams_per_account: int = 100
    sse_send_timeout_s: float = 10.0
    sse_backlog_page: int = 500
    # DuckDB's memory limit for a node's read model, in MiB; 0: DuckDB's default.
    duckdb_memory_mib: int = 0
    # Where the decider, the orchestrator or a runner serves /metrics (on ``host``);
    # None: nowhere. A node serves /metrics on its API port instead.
    metrics_port: int | None = None
    # RUNLEDGER_ARTIFACTS_DIR, a folder several nodes and runners share; None:
    # ``data_dir / "artifacts"``. Read it as :attr:`artifacts_dir`.
    shared_artifacts_dir: Path | None = None

    @property
    def artifacts_dir(self) -> Path:
        """Where runners store screenshots and page HTML and a node serves them from.
        Computed, so that the default follows ``data_dir`` set by ``--data-dir``."""
        return self.shared_artifacts_dir or self.data_dir / "artifacts"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``RUNLEDGER_*`` variables; keyword overrides (from CLI flags) win."""
        env = os.environ if env is None else env
        base = cls(
            data_dir=Path(text_setting(env, "DATA_DIR") or ".runledger"),
            kafka_bootstrap=_bootstrap(env),
            topic_prefix=_topic_prefix(env),
            partitions=int_setting(env, "PARTITIONS", 4, 1, 100_000),
            host=text_setting(env, "HOST") or "127.0.0.1",
            port=int_setting(env, "PORT", 8000, 1, 65535),
            cache_dir=Path(text_setting(env, "CACHE_DIR") or Path.home() / ".cache" / "runledger"),
            kafka_version=text_setting(env, "KAFKA_VERSION") or "3.9.1",
            max_body_bytes=int_setting(env, "MAX_BODY_BYTES", 1_048_576, 1, 1 << 40),
            # 0: answer 202 at once, without waiting for the decider (docs/benchmarks.md)
            command_timeout_s=_seconds(env, "COMMAND_TIMEOUT_S", 10.0, zero=True),
            wait_timeout_s=_seconds(env, "WAIT_TIMEOUT_S", 10.0),
            allow_private_targets=bool_setting(env, "ALLOW_PRIVATE_TARGETS", False),
            sse_window_s=_seconds(env, "SSE_WINDOW_S", 25.0),
            sse_heartbeat_s=_seconds(env, "SSE_HEARTBEAT_S", 5.0),
            sse_max_streams_per_account=int_setting(
                env, "SSE_MAX_STREAMS_PER_ACCOUNT", 100, 1, 1_000_000
            ),
            sse_send_timeout_s=_seconds(env, "SSE_SEND_TIMEOUT_S", 10.0),
            sse_backlog_page=int_setting(env, "SSE_BACKLOG_PAGE", 500, 1, 1_000_000),
            duckdb_memory_mib=_memory_mib(env),
            metrics_port=_metrics_port(env),
            shared_artifacts_dir=_artifacts_dir(env),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        settings = replace(base, **clean)  # type: ignore[arg-type]
        if settings.partitions < 1:
            raise SettingsError(f"{PREFIX}PARTITIONS must be at least 1")
        return settings
