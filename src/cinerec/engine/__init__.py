"""In-memory recommendation engine (no HTTP, no SQL)."""

from cinerec.engine.engine import Engine, Recommended, UnknownSourceError
from cinerec.engine.ids import IdMap

__all__ = ["Engine", "IdMap", "Recommended", "UnknownSourceError"]
