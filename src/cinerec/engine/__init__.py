"""In-memory recommendation engine (no HTTP, no SQL)."""

from cinerec.engine.engine import Engine, Recommended, UnknownSourceError
from cinerec.engine.ids import IdMap
from cinerec.engine.plans import DEFAULT_SETTING, RankingSetting

__all__ = [
    "DEFAULT_SETTING",
    "Engine",
    "IdMap",
    "RankingSetting",
    "Recommended",
    "UnknownSourceError",
]
