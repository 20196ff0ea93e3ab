"""Our API: events, recommendations, health."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cinerec.api import errors
from cinerec.api.deps import OwnUserId, PrincipalDep, ServiceDep, WriteLimit, authorize
from cinerec.api.schemas import (
    EventIn,
    EventsAccepted,
    EventsBatch,
    HealthOut,
    HistoryEvent,
    HistoryOut,
    Id,
    NotInterestedIn,
    RecommendationsOut,
    RecommendedMovie,
)
from cinerec.domain import Event
from cinerec.service import EventsResult, RecResult, RecService, wait_logged

router = APIRouter(
    prefix="/api/v1",
    tags=["events and recommendations"],
    responses={**errors.COMMON, **errors.AUTH},
)
#: the event writes, mounted on the API and on the collector
writes = APIRouter(
    prefix="/api/v1",
    tags=["events and recommendations"],
    responses={**errors.COMMON, **errors.AUTH, **errors.UNAVAILABLE},
)
#: how many movies one request may exclude, or genres it may filter on
MAX_EXCLUDE = 1_000
MAX_GENRE_FILTER = 20


def _event(e: EventIn) -> Event:
    return Event(e.user_id, e.movie_id, e.kind, e.value, e.stamp(), e.client_event_id)


def _accepted(r: EventsResult) -> EventsAccepted:
    return EventsAccepted(
        accepted=r.accepted, duplicates=r.duplicates, unknown_movies=r.unknown_movies
    )


@writes.post(
    "/events",
    response_model=EventsAccepted,
    dependencies=[WriteLimit],
    responses=errors.RATE_LIMITED,
)
def add_event(body: EventIn, svc: ServiceDep, principal: PrincipalDep) -> EventsAccepted:
    """Store one event (your own, or anyone's with an admin token); a 200 answer means it is
    durable (stored, or confirmed by the event broker in the topology)."""
    authorize(principal, body.user_id)
    return _accepted(svc.submit_events([_event(body)]))


@writes.post(
    "/events/batch",
    response_model=EventsAccepted,
    dependencies=[WriteLimit],
    responses=errors.RATE_LIMITED,
)
def add_events(body: EventsBatch, svc: ServiceDep, principal: PrincipalDep) -> EventsAccepted:
    """Store up to 10,000 events in one transaction; all or none. A user's token may send
    only that user's events; an admin token anyone's."""
    for e in body.events:
        authorize(principal, e.user_id)
    return _accepted(svc.submit_events([_event(e) for e in body.events]))


@router.get("/users/{user_id}/events", response_model=HistoryOut)
def history(
    user_id: OwnUserId,
    svc: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> HistoryOut:
    """A user's history as stored (movie, kind, value, time), newest first, paged: what the
    service acknowledged is all here."""
    events, more = svc.history(user_id, limit, offset)
    return HistoryOut(
        events=[
            HistoryEvent(movie_id=e.movie_id, kind=e.kind, value=e.value, ts=e.ts) for e in events
        ],
        next_offset=offset + len(events) if more else None,
    )


@router.post(
    "/users/{user_id}/not-interested",
    response_model=EventsAccepted,
    dependencies=[WriteLimit],
    responses=errors.RATE_LIMITED,
)
def not_interested(user_id: OwnUserId, body: NotInterestedIn, svc: ServiceDep) -> EventsAccepted:
    """Never recommend this movie to this user again."""
    return _accepted(svc.not_interested(user_id, body.movie_id))


def render(svc: RecService, result: RecResult) -> RecommendationsOut:
    cat = svc.engine.catalog
    items = []
    for r, reason in zip(result.items, svc.explain(result), strict=True):
        idx = cat.ids.get(r.movie_id)
        if idx is None:  # an API replica's catalogue a moment behind the worker's plan
            continue
        items.append(
            RecommendedMovie(
                movie_id=r.movie_id,
                source=r.source,
                score=r.score,
                title=cat.titles[idx],
                genres=cat.genre_names(idx),
                reason=reason.text,
                because=reason.because,
            )
        )
    return RecommendationsOut(
        user_id=result.user_id, session_id=result.session_id, source=result.source, items=items
    )


@router.get("/recommendations/{user_id}", response_model=RecommendationsOut)
def recommendations(
    user_id: OwnUserId,
    svc: ServiceDep,
    k: Annotated[int | None, Query(ge=1, le=100)] = None,
    exclude: Annotated[
        list[Id] | None, Query(max_length=MAX_EXCLUDE, description="movie ids to leave out")
    ] = None,
    genre: Annotated[
        list[Id] | None,
        Query(max_length=MAX_GENRE_FILTER, description="only movies of these genres"),
    ] = None,
    source: Annotated[str | None, Query(description="force one recommender")] = None,
    model: Annotated[str | None, Query(description="alias of source")] = None,
    explore: bool = True,
    record: Annotated[
        bool,
        Query(
            description="false: a preview (evaluations, back office): not logged, and the "
            "movies may be shown again"
        ),
    ] = True,
) -> RecommendationsOut:
    """Top-k movies for a user, each with the source that chose it ("why this?")."""
    result = svc.recommend(
        user_id,
        k,
        source=source or model,
        exclude=exclude or (),
        genres=genre or (),
        explore=explore,
        record=record,
    )
    wait_logged(result)
    return render(svc, result)


@router.get("/health", response_model=HealthOut)
def health(svc: ServiceDep) -> HealthOut:
    """State of each dependency (database, cache) and of the catalogue."""
    return HealthOut(**svc.health())
