"""Request and response bodies (kept apart from the store's tables)."""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from cinerec.domain import VALUE_RANGES, EventKind

MAX_ID = 128
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID)]
#: an id in a URL path (user, movie, session): the same bound as in a body
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID)]
Genre = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
#: genres of one movie (the catalogue keeps a movies x genres matrix: unbounded lists of new
#: genre names would grow it without limit)
MAX_GENRES_PER_MOVIE = 20
MovieGenres = Annotated[list[Genre], Field(max_length=MAX_GENRES_PER_MOVIE)]
MAX_BATCH = 10_000
#: how far ahead of the server's clock an event may be dated (clock skew); later is refused:
#: a like dated 2099 would outweigh every real one in time-decayed popularity
TS_FUTURE_S = 86_400.0


def _check_ts(ts: float) -> float:
    if not math.isfinite(ts) or not 0 <= ts <= time.time() + TS_FUTURE_S:
        raise ValueError(
            "timestamp must be Unix seconds between 1970 and one day from now "
            "(e.g. 1732190000.5): not milliseconds, not the future"
        )
    return ts


Timestamp = Annotated[float, AfterValidator(_check_ts)]


# -- contract A ------------------------------------------------------------------------------
class AddItemsRequest(BaseModel):
    item_ids: list[Id] = Field(min_length=1, max_length=MAX_BATCH)
    genres: list[MovieGenres] | None = None

    @model_validator(mode="after")
    def _lengths(self) -> AddItemsRequest:
        if self.genres is not None and len(self.genres) != len(self.item_ids):
            raise ValueError(
                f"genres has {len(self.genres)} entries but item_ids has {len(self.item_ids)}: "
                "genres[i] must belong to item_ids[i]"
            )
        return self


class InteractRequest(BaseModel):
    user_id: Id
    item_ids: list[Id] = Field(min_length=1, max_length=MAX_BATCH)
    actions: list[Literal["like", "dislike"]] = Field(min_length=1, max_length=MAX_BATCH)
    timestamp: Timestamp | None = None

    @model_validator(mode="after")
    def _lengths(self) -> InteractRequest:
        if len(self.actions) != len(self.item_ids):
            raise ValueError(
                f"actions has {len(self.actions)} entries but item_ids has {len(self.item_ids)}: "
                "actions[i] must belong to item_ids[i]"
            )
        return self


class ItemIdsResponse(BaseModel):
    item_ids: list[str]


class StatusResponse(BaseModel):
    status: str = "ok"


# -- contract B ------------------------------------------------------------------------------
class CinemaRecommendations(BaseModel):
    source: str
    recommendations: list[str]
    session_id: str
    reasons: list[str] = Field(
        default_factory=list,
        description="why each movie is there, in the order of recommendations "
        "(e.g. 'Because you liked Heat (1995)')",
    )


class FeedbackRequest(BaseModel):
    movie_id: Id
    liked: bool


class GenresTopResponse(BaseModel):
    movies: list[str]


# -- our API ---------------------------------------------------------------------------------
class MovieIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": "tt0111161",
                "title": "The Shawshank Redemption",
                "year": 1994,
                "genres": ["Drama"],
                "rating_avg": 4.4,
                "rating_count": 317,
            }
        }
    )

    id: Id
    title: Annotated[str, StringConstraints(max_length=512)] = ""
    year: int | None = Field(default=None, ge=1870, le=2200)
    genres: list[Genre] = Field(default_factory=list, max_length=MAX_GENRES_PER_MOVIE)
    rating_avg: float | None = Field(default=None, ge=0, le=10)
    # The store keeps it in a 32-bit INTEGER column (PostgreSQL); larger numbers were a 500.
    rating_count: int = Field(default=0, ge=0, le=2**31 - 1)
    hidden: bool = False


class MovieOut(MovieIn):
    created_at: float


class MoviesBatch(BaseModel):
    movies: list[MovieIn] = Field(min_length=1, max_length=MAX_BATCH)


class UserIn(BaseModel):
    id: Id
    favorite_genres: list[Genre] = Field(default_factory=list, max_length=3)


class UserOut(UserIn):
    created_at: float


class UsersBatch(BaseModel):
    users: list[UserIn] = Field(min_length=1, max_length=MAX_BATCH)


class FavoriteGenres(BaseModel):
    genres: list[Genre] = Field(max_length=3)


class EventIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "user_id": "42",
                "movie_id": "318",
                "kind": "rating",
                "value": 4.5,
                "client_event_id": "c0ffee-1",
            }
        }
    )

    user_id: Id
    movie_id: Id
    kind: EventKind
    value: float | None = Field(
        default=None, description="rating: 0-5 stars; view: progress 0-1; others: none"
    )
    timestamp: Timestamp | None = Field(default=None, description="Unix seconds; default now")
    client_event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, description="retries with the same id are stored once"
    )

    @model_validator(mode="after")
    def _value(self) -> EventIn:
        rng = VALUE_RANGES.get(self.kind)
        if rng is None:
            if self.value is not None:
                raise ValueError(f"a {self.kind.value} event takes no value")
        else:
            lo, hi = rng
            if self.value is None:
                raise ValueError(f"a {self.kind.value} event needs a value between {lo} and {hi}")
            if not (lo <= self.value <= hi):
                raise ValueError(
                    f"{self.kind.value} value must be between {lo} and {hi}, got {self.value}"
                )
        return self

    def stamp(self) -> float:
        return self.timestamp if self.timestamp is not None else time.time()


class EventsBatch(BaseModel):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class EventsAccepted(BaseModel):
    accepted: int = Field(description="new events stored")
    duplicates: int = Field(description="retries already stored (same client_event_id)")
    unknown_movies: list[str] = Field(description="kept, ignored by recommendations until added")


class HistoryEvent(BaseModel):
    movie_id: str
    kind: EventKind
    value: float | None = None
    ts: float = Field(description="when it happened (Unix seconds)")


class HistoryOut(BaseModel):
    events: list[HistoryEvent] = Field(description="newest first")
    next_offset: int | None = Field(description="offset of the next page; null on the last")


class RecommendedMovie(BaseModel):
    movie_id: str
    source: str
    score: float
    title: str
    genres: list[str]
    reason: str | None = Field(
        default=None,
        description="why it is there, for a person (e.g. 'Because you liked Heat (1995)'); "
        "on recommendations, not on similar movies",
    )
    because: list[str] = Field(
        default_factory=list, description="the user's liked movies behind the reason (ids)"
    )


class RecommendationsOut(BaseModel):
    user_id: str
    session_id: str
    source: str
    items: list[RecommendedMovie]


class NotInterestedIn(BaseModel):
    movie_id: Id


class SourceQuality(BaseModel):
    """Online quality of one recommendation source since start-up (or /cleanup)."""

    shown: int = Field(description="movies this source put in front of users")
    liked: int = Field(description="of those, how many the user then liked")
    like_rate: float


class HealthOut(BaseModel):
    status: str
    checks: dict[str, Any]
    plans_pending: int = Field(
        0, description="users waiting for a fresh plan (made in the background)"
    )
    movies: int
    users: int
    events: int
    sources: dict[str, SourceQuality]
