"""JSON responses that render whatever the ledger holds.

JSON text may carry a lone UTF-16 surrogate (``"\\ud800"``), and Python decodes it into
a string that UTF-8 cannot encode. One such value recorded in the ledger (by a runner
reporting a page's text, or before the commands refused them) would otherwise make
every response showing it fail with a 500: the object, and every page listing it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse as _StarletteJSONResponse


def ascii_json(content: Any) -> bytes:
    """``content`` as compact JSON in ASCII: a lone surrogate is written as its
    ``\\uXXXX`` escape, which any JSON parser reads back."""
    return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSONResponse (UTF-8, as is), falling back to :func:`ascii_json` for
    a document UTF-8 cannot encode; the common case costs nothing more."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return ascii_json(content)
