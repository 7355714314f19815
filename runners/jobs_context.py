"""What every job executor gets: the runner's tools, and the node's configs as values.

``NodeConfig`` reads the three configs a runner honours from a node's ``configs``
(seconds, as in the FlowRun reference): ``timeout`` bounds the whole job,
``min_wait_time`` is waited after a page loads (a scan's settle time, a wait node's
delay) and ``max_wait_time`` bounds each single page operation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners.artifacts import ArtifactStore
from runners.browser import Browser
from runners.errors import TargetInvalid
from runners.guard import TargetGuard
from runners.notify import SmtpServer

DEFAULT_TIMEOUT_S = 300.0
MAX_TIMEOUT_S = 3600.0
DEFAULT_MAX_WAIT_S = 30.0


@dataclass(frozen=True)
class JobContext:
    """The runner's shared tools. ``baselines`` is the folder of the VRT baselines (the
    last screenshot hash per site and page); ``smtp`` is None when no server is set."""

    browser: Browser
    guard: TargetGuard
    store: ArtifactStore
    baselines: Path
    smtp: SmtpServer | None = None


def _seconds(configs: dict[str, Any], key: str, default: float, top: float) -> float:
    value = configs.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return default
    if isinstance(value, float) and math.isnan(value):  # JSON's NaN: never compares
        return default
    return float(min(value, top))


@dataclass(frozen=True)
class NodeConfig:
    timeout: float = DEFAULT_TIMEOUT_S
    min_wait_time: float = 0.0
    max_wait_time: float = DEFAULT_MAX_WAIT_S

    @classmethod
    def from_json(cls, configs_json: str) -> NodeConfig:
        """Unusable values fall back to the defaults; a 0 timeout means the default."""
        configs = json_object(configs_json)
        timeout = (
            _seconds(configs, "timeout", DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S) or DEFAULT_TIMEOUT_S
        )
        max_wait = _seconds(configs, "max_wait_time", DEFAULT_MAX_WAIT_S, timeout)
        min_wait = _seconds(configs, "min_wait_time", 0.0, max_wait or timeout)
        return cls(timeout, min_wait, max_wait or DEFAULT_MAX_WAIT_S)


def json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def text_field(data: dict[str, Any], key: str) -> str:
    """A node data field as text (JSON-encoded when the Flow stored an object)."""
    value = data.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def require(value: str, what: str) -> str:
    if not value.strip():
        raise TargetInvalid(f"the node has no {what}")
    return value
