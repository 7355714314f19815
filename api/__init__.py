"""The HTTP API (Starlette): reads from projections, commands through the bus."""

from api.app import create_app
from api.deps import ApiDeps

__all__ = ["ApiDeps", "create_app"]
