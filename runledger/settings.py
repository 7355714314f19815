"""Configuration, read once from the environment into a frozen value.

Every variable carries the ``RUNLEDGER_`` prefix. Nothing below the composition root
reads ``os.environ``: the CLI builds a :class:`Settings` and hands plain values down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

PREFIX = "RUNLEDGER_"


class SettingsError(ValueError):
    """A ``RUNLEDGER_*`` variable holds a value that cannot be used; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}{name} must be a whole number, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}{name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise SettingsError(f"{PREFIX}{name} must be positive, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{PREFIX}{name} must be true or false, got {raw!r}")


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``RUNLEDGER_*`` variables; keyword overrides (from CLI flags) win."""
        env = os.environ if env is None else env
        base = cls(
            data_dir=Path(env.get(PREFIX + "DATA_DIR") or ".runledger"),
            kafka_bootstrap=env.get(PREFIX + "KAFKA_BOOTSTRAP", ""),
            topic_prefix=env.get(PREFIX + "TOPIC_PREFIX", ""),
            partitions=_int(env, "PARTITIONS", 4),
            host=env.get(PREFIX + "HOST") or "127.0.0.1",
            port=_int(env, "PORT", 8000),
            cache_dir=Path(env.get(PREFIX + "CACHE_DIR") or Path.home() / ".cache" / "runledger"),
            kafka_version=env.get(PREFIX + "KAFKA_VERSION") or "3.9.1",
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 1_048_576),
            command_timeout_s=float(_int(env, "COMMAND_TIMEOUT_S", 10)),
            wait_timeout_s=float(_int(env, "WAIT_TIMEOUT_S", 10)),
            allow_private_targets=_bool(env, "ALLOW_PRIVATE_TARGETS", False),
            sse_window_s=_float(env, "SSE_WINDOW_S", 25.0),
            sse_heartbeat_s=_float(env, "SSE_HEARTBEAT_S", 5.0),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        settings = replace(base, **clean)  # type: ignore[arg-type]
        if settings.partitions < 1:
            raise SettingsError(f"{PREFIX}PARTITIONS must be at least 1")
        return settings
