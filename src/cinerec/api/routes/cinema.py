"""Contract B (SPEC.md): the cinema API under ``/api/recommend/v1``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from cinerec.api import errors
from cinerec.api.deps import CallerDep, OwnUserId, ServiceDep, WriteLimit
from cinerec.api.schemas import (
    CinemaRecommendations,
    FeedbackRequest,
    Genre,
    GenresTopResponse,
    Id,
    PathId,
    StatusResponse,
)
from cinerec.service import InvalidInputError, wait_logged

router = APIRouter(
    prefix="/api/recommend/v1",
    tags=["contract B (cinema)"],
    responses={**errors.COMMON, **errors.AUTH},
)

Limit = Annotated[int, Query(ge=1, le=1000, description="how many movies")]


@router.get("/recommendations/genres_top", response_model=GenresTopResponse)
def genres_top(svc: ServiceDep, limit: Limit = 10) -> GenresTopResponse:
    """Top-rated movies overall."""
    return GenresTopResponse(movies=svc.genre_top(None, limit))


@router.get("/recommendations/genres_top/{user_id}", response_model=GenresTopResponse)
def genres_top_user(user_id: OwnUserId, svc: ServiceDep, limit: Limit = 10) -> GenresTopResponse:
    """Top-rated movies of the user's favourite genres (up to 3), or overall when none."""
    return GenresTopResponse(movies=svc.genre_top(user_id, limit))


@router.get("/recommendations/{user_id}", response_model=CinemaRecommendations)
def recommendations(
    user_id: OwnUserId,
    svc: ServiceDep,
    model: Annotated[
        str | None, Query(description="als, lightfm, … (falls back when absent)")
    ] = None,
    k: Annotated[int | None, Query(ge=1, le=100)] = None,
) -> CinemaRecommendations:
    """Personal list; ``source`` names the recommender that produced it and ``session_id``
    identifies the logged list for feedback."""
    source = model if model and model in svc.engine.recommenders else None
    result = svc.recommend(user_id, k, source=source)
    wait_logged(result)
    return CinemaRecommendations(
        source=result.source,
        recommendations=[i.movie_id for i in result.items],
        session_id=result.session_id,
        reasons=[r.text for r in svc.explain(result)],
    )


@router.post(
    "/feedback/{session_id}",
    response_model=StatusResponse,
    dependencies=[WriteLimit],
    responses={**errors.NOT_FOUND, **errors.RATE_LIMITED},
)
def feedback(
    session_id: PathId,
    svc: ServiceDep,
    caller: CallerDep,
    body: Annotated[FeedbackRequest | None, Body()] = None,
    movie_id: Annotated[Id | None, Query()] = None,
    liked: Annotated[bool | None, Query()] = None,
) -> StatusResponse:
    """Feedback on one movie of a logged list: JSON body ``{"movie_id", "liked"}`` or the
    same as query parameters."""
    if body is None:
        if movie_id is None or liked is None:
            raise InvalidInputError(
                'send {"movie_id": "...", "liked": true|false} as JSON, or both as query parameters'
            )
        body = FeedbackRequest(movie_id=movie_id, liked=liked)
    svc.feedback(session_id, body.movie_id, body.liked, user_id=caller)
    return StatusResponse(status="success")


@router.post(
    "/favorites/genres/{user_id}",
    response_model=StatusResponse,
    dependencies=[WriteLimit],
    responses=errors.RATE_LIMITED,
)
def favorite_genres(
    user_id: OwnUserId, genres: Annotated[list[Genre], Body(max_length=3)], svc: ServiceDep
) -> StatusResponse:
    """Set the user's favourite genres: a JSON list of at most 3 names."""
    svc.set_favorite_genres(user_id, genres)
    return StatusResponse(status="success")
