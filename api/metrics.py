"""The Prometheus exposition the node's ``/metrics`` renders with.

The values and the rendering live in :mod:`streams.exposition`, shared with the
decider, the orchestrator and the runners (whose layers must not import the API);
re-exported here so the node's modules keep one import of their own layer.
"""

from __future__ import annotations

from streams.exposition import (
    CONTENT_TYPE,
    Family,
    Kind,
    Labels,
    Sample,
    counter,
    format_value,
    gauge,
    labelled,
    render,
)

__all__ = [
    "CONTENT_TYPE",
    "Family",
    "Kind",
    "Labels",
    "Sample",
    "counter",
    "format_value",
    "gauge",
    "labelled",
    "render",
]
