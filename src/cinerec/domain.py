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
    #: the experiment and variant the user was in when shown the list (None: no experiment)
    experiment: str | None = None
    variant: str | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of an experiment: a ranking setting and its share of the users.

    ``source`` None is the default list (the learned ranker over every source); a name forces
    that one source (as ``source=`` of ``/api/v1/recommendations``). ``explore`` False drops
    the exploration and bandit slots."""

    name: str
    share: float
    source: str | None = None
    explore: bool = True


@dataclass(slots=True)
class Experiment:
    """An A/B experiment: users are split between ``variants`` by a salted hash of their id
    (``cinerec.experiments.assign``). ``status``: running, stopped, promoted (stopped, and
    ``winner``'s setting serves everyone), or superseded (was promoted until another
    experiment's variant was)."""

    id: str
    name: str
    salt: str
    variants: list[Variant]
    #: the figure the verdict is on: like_rate, p@3 or ndcg@10
    metric: str = "like_rate"
    status: str = "running"
    winner: str | None = None
    created_at: float = field(default_factory=time.time)
    stopped_at: float | None = None


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
