"""Records shared by the store, the engine and the API. Ids are strings here (the outside
world's ids); the engine maps them to dense integers internally."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum


class EventKind(StrEnum):
    LIKE = "like"
    DISLIKE = "dislike"
    RATING = "rating"  # value: 0.5..5 stars
    VIEW = "view"  # value: progress 0..1
    BOOKMARK = "bookmark"
    NOT_INTERESTED = "not_interested"


#: Kinds that require a value, and its allowed closed range.
VALUE_RANGES: dict[EventKind, tuple[float, float]] = {
    EventKind.RATING: (0.0, 5.0),
    EventKind.VIEW: (0.0, 1.0),
}


@dataclass(slots=True)
class Movie:
    id: str
    title: str = ""
    year: int | None = None
    genres: list[str] = field(default_factory=list)
    rating_avg: float | None = None
    rating_count: int = 0
    created_at: float = field(default_factory=time.time)
    hidden: bool = False


@dataclass(slots=True)
class User:
    id: str
    favorite_genres: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)


@dataclass(slots=True)
class Event:
    user_id: str
    movie_id: str
    kind: EventKind
    value: float | None = None
    ts: float = field(default_factory=time.time)
    client_event_id: str | None = None


@dataclass(slots=True)
class RecLogEntry:
    session_id: str
    user_id: str
    movie_ids: list[str]
    sources: list[str]
    source: str
    model_version: str | None = None
    ts: float = field(default_factory=time.time)


@dataclass(slots=True)
class ModelRecord:
    """One trained model version in the registry."""

    version: str
    kind: str
    params: dict[str, object]
    metrics: dict[str, float]
    mode: str  # full | incremental
    n_users: int
    n_items: int
    n_events: int
    train_seconds: float
    status: str  # serving | candidate | rejected | retired
    path: str
    created_at: float = field(default_factory=time.time)


@dataclass(slots=True)
class Feedback:
    session_id: str
    user_id: str
    movie_id: str
    liked: bool
    ts: float = field(default_factory=time.time)


@dataclass(slots=True)
class Account:
    """Credentials of a user who logs in (``user_id`` is the user id of every other record)."""

    user_id: str
    password_hash: str
    role: str = "user"  # user | admin
    created_at: float = field(default_factory=time.time)
