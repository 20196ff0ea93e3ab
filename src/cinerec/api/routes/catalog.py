"""Our API: movies and users."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from cinerec.api import errors
from cinerec.api.deps import (
    AdminDep,
    OwnUserId,
    PrincipalDep,
    ServiceDep,
    WriteLimit,
    authorize,
)
from cinerec.api.schemas import (
    FavoriteGenres,
    MovieIn,
    MovieOut,
    MoviesBatch,
    PathId,
    RecommendedMovie,
    StatusResponse,
    UserIn,
    UserOut,
    UsersBatch,
)
from cinerec.domain import Movie, User
from cinerec.service import NotFoundError

router = APIRouter(
    prefix="/api/v1",
    tags=["catalogue and users"],
    responses={**errors.COMMON, **errors.AUTH},
)


def _movie(m: MovieIn, created: float) -> Movie:
    return Movie(
        m.id,
        m.title,
        m.year,
        list(m.genres),
        m.rating_avg,
        m.rating_count,
        created_at=created,
        hidden=m.hidden,
    )


@router.post("/movies", response_model=StatusResponse)
def add_movie(body: MovieIn, svc: ServiceDep, admin: AdminDep) -> StatusResponse:
    """Add or replace one movie (admin)."""
    svc.add_movies([_movie(body, time.time())])
    return StatusResponse()


@router.post("/movies/batch", response_model=StatusResponse)
def add_movies(body: MoviesBatch, svc: ServiceDep, admin: AdminDep) -> StatusResponse:
    """Add or replace up to 10,000 movies (admin)."""
    now = time.time()
    svc.add_movies([_movie(m, now + i * 1e-6) for i, m in enumerate(body.movies)])
    return StatusResponse()


@router.get("/movies/{movie_id}", response_model=MovieOut, responses=errors.NOT_FOUND)
def get_movie(movie_id: PathId, svc: ServiceDep) -> MovieOut:
    m = svc.get_movie(movie_id)
    if m is None:
        raise NotFoundError(f"movie {movie_id!r} does not exist")
    return MovieOut(
        id=m.id,
        title=m.title,
        year=m.year,
        genres=m.genres,
        rating_avg=m.rating_avg,
        rating_count=m.rating_count,
        hidden=m.hidden,
        created_at=m.created_at,
    )


@router.put("/movies/{movie_id}/hidden", response_model=StatusResponse, responses=errors.NOT_FOUND)
def hide_movie(movie_id: PathId, hidden: bool, svc: ServiceDep, admin: AdminDep) -> StatusResponse:
    """Hide a movie from every recommendation (or show it again); admin."""
    svc.set_movie_hidden(movie_id, hidden)
    return StatusResponse()


@router.get(
    "/movies/{movie_id}/similar", response_model=list[RecommendedMovie], responses=errors.NOT_FOUND
)
def similar(
    movie_id: PathId, svc: ServiceDep, k: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[RecommendedMovie]:
    cat = svc.engine.catalog
    out = []
    for r in svc.similar(movie_id, k):
        idx = cat.ids.get(r.movie_id)
        assert idx is not None
        out.append(
            RecommendedMovie(
                movie_id=r.movie_id,
                source=r.source,
                score=r.score,
                title=cat.titles[idx],
                genres=cat.genre_names(idx),
            )
        )
    return out


@router.post(
    "/users",
    response_model=StatusResponse,
    dependencies=[WriteLimit],
    responses=errors.RATE_LIMITED,
)
def add_user(body: UserIn, svc: ServiceDep, principal: PrincipalDep) -> StatusResponse:
    """Create or update a user: yourself, or anyone with an admin token."""
    authorize(principal, body.id)
    svc.add_users([User(body.id, list(body.favorite_genres))])
    return StatusResponse()


@router.post("/users/batch", response_model=StatusResponse)
def add_users(body: UsersBatch, svc: ServiceDep, admin: AdminDep) -> StatusResponse:
    """Create or update up to 10,000 users (admin)."""
    svc.add_users([User(u.id, list(u.favorite_genres)) for u in body.users])
    return StatusResponse()


@router.get("/users/{user_id}", response_model=UserOut, responses=errors.NOT_FOUND)
def get_user(user_id: OwnUserId, svc: ServiceDep) -> UserOut:
    u = svc.get_user(user_id)
    if u is None:
        raise NotFoundError(f"user {user_id!r} does not exist")
    return UserOut(id=u.id, favorite_genres=u.favorite_genres, created_at=u.created_at)


@router.put(
    "/users/{user_id}/favorite-genres",
    response_model=FavoriteGenres,
    dependencies=[WriteLimit],
    responses=errors.RATE_LIMITED,
)
def put_favorite_genres(
    user_id: OwnUserId, body: FavoriteGenres, svc: ServiceDep
) -> FavoriteGenres:
    return FavoriteGenres(genres=svc.set_favorite_genres(user_id, body.genres))
