"""Metric families as plain values, and the Prometheus text exposition format (0.0.4).

What a process measures is gathered into :class:`Family` values at scrape time (the
node's projector and HTTP counters, a decider's, an orchestrator's or a runner's
counters, the process's identity) and rendered here in one place, so every family gets
its ``# HELP`` and ``# TYPE`` lines, escaped label values and numbers Prometheus parses.
Nothing here keeps state, and nothing here imports more than the standard library.

It lives in ``streams/``, the lowest layer that runs anything, so that the API, the
runners and the stream processors share one rendering without importing upward
(``api/metrics.py`` re-exports it for the node's code).

Every family name starts with ``runledger_``; counters end in ``_total``. No family has
an account label: ``/metrics`` needs no token, so it must not name who uses a process.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Kind = Literal["counter", "gauge", "histogram"]
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of a family: ``suffix`` is ``_bucket``, ``_sum`` or ``_count`` for the
    lines of a histogram, else empty."""

    value: float
    labels: Labels = ()
    suffix: str = ""


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: its full name (a counter's ends in ``_total``), type, help
    sentence and samples."""

    name: str
    kind: Kind
    help: str
    samples: tuple[Sample, ...]


def counter(name: str, help: str, value: float, labels: Mapping[str, str] | None = None) -> Family:
    """A counter of one sample. ValueError when ``name`` does not end in ``_total``."""
    if not name.endswith("_total"):
        raise ValueError(f"counter {name} must end in _total")
    return Family(name, "counter", help, (Sample(value, _labels(labels)),))


def gauge(name: str, help: str, value: float, labels: Mapping[str, str] | None = None) -> Family:
    """A gauge of one sample."""
    return Family(name, "gauge", help, (Sample(value, _labels(labels)),))


def labelled(name: str, kind: Kind, help: str, label: str, values: Mapping[str, float]) -> Family:
    """A counter or gauge with one sample per value of ``label`` (sorted by it)."""
    if kind == "counter" and not name.endswith("_total"):
        raise ValueError(f"counter {name} must end in _total")
    samples = tuple(Sample(v, ((label, k),)) for k, v in sorted(values.items()))
    return Family(name, kind, help, samples)


def _labels(labels: Mapping[str, str] | None) -> Labels:
    return tuple(sorted(labels.items())) if labels else ()


def render(families: Iterable[Family]) -> str:
    """The text exposition of ``families``, one block each, ending with a newline.

    ValueError when two families share a name: Prometheus would reject the scrape."""
    lines: list[str] = []
    seen: set[str] = set()
    for family in families:
        if family.name in seen:
            raise ValueError(f"metric family {family.name} is given twice")
        seen.add(family.name)
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for sample in family.samples:
            lines.append(
                f"{family.name}{sample.suffix}{_render_labels(sample.labels)} "
                f"{format_value(sample.value)}"
            )
    return "\n".join(lines) + "\n"


def format_value(value: float) -> str:
    """A sample value as Prometheus parses it: integers without a fraction, ``+Inf``,
    ``-Inf``, ``NaN``, otherwise Python's shortest round-trip repr."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _render_labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels) + "}"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
