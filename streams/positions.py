"""Where a service keeps its position in the ledger when it has no database of its own:
:class:`JsonFilePositions`, one JSON file replaced atomically. Re-exported by
:mod:`streams.consumer`, where services import it from."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path


class JsonFilePositions:
    """A position store in one JSON file (``{"0": 12, "1": 40}``), replaced atomically.

    ``load()`` of a missing file is ``{}`` (start from ``start``); a corrupt file raises
    ValueError rather than silently starting over.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[int, int]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        if not isinstance(raw, dict):
            raise ValueError(f"{self.path} does not hold a JSON object of positions")
        return {int(p): int(o) for p, o in raw.items()}

    def save(self, positions: Mapping[int, int]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({str(p): o for p, o in sorted(positions.items())}))
        os.replace(tmp, self.path)  # a reader sees the old file or the new one, never half
