"""The read side: the projector folds ``ledger.events`` into a DuckDB file, queries read it.

``database`` is the only module that imports duckdb; ``fold`` and ``rows`` are pure;
``projector`` assembles the consume pipeline (fetch, fold, dead-letter, write, commit).
"""

from projections.errors import ProjectionError, ProjectorError, StoreError

__all__ = ["ProjectionError", "ProjectorError", "StoreError"]
