"""Contract A (SPEC.md): the course grader's endpoints, kept exactly."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from cinerec.api import errors
from cinerec.api.deps import ServiceDep
from cinerec.api.schemas import (
    AddItemsRequest,
    InteractRequest,
    ItemIdsResponse,
    PathId,
    StatusResponse,
)
from cinerec.domain import Event, EventKind
from cinerec.service import logged

router = APIRouter(tags=["contract A (grader)"], responses=errors.COMMON)
collector = APIRouter(tags=["contract A (grader)"], responses=errors.COMMON)


@router.get("/healthcheck", response_model=StatusResponse)
async def healthcheck() -> StatusResponse:
    return StatusResponse()


@router.get("/cleanup", response_model=StatusResponse)
def cleanup(svc: ServiceDep) -> StatusResponse:
    """Wipe every piece of state: catalogue, events, logs, caches, models."""
    svc.cleanup()
    return StatusResponse()


@router.post("/add_items", response_model=StatusResponse)
def add_items(body: AddItemsRequest, svc: ServiceDep) -> StatusResponse:
    svc.add_items(body.item_ids, body.genres or [[] for _ in body.item_ids])
    return StatusResponse()


@router.get("/recs/{user_id}", response_model=ItemIdsResponse)
async def recs(user_id: PathId, svc: ServiceDep) -> ItemIdsResponse:
    # A list the user's plan serves at once never gets here: ``api.middleware.RecsFastPath``
    # answers it on the event loop. What is left (a plan to make, an engine busy with a
    # write) goes to a worker thread. The answer waits until the list is in the log (group
    # commit): never shown twice.
    result = await run_in_threadpool(svc.recommend, user_id)
    await logged(result)
    return ItemIdsResponse(item_ids=[i.movie_id for i in result.items])


def recs_route() -> BaseRoute:
    """The route of ``GET /recs/{user_id}`` (``api.middleware.RecsFastPath`` stands in for
    it when the user's plan can serve the list at once)."""
    return next(r for r in router.routes if getattr(r, "path", None) == "/recs/{user_id}")


@collector.post("/interact", response_model=StatusResponse)
def interact(body: InteractRequest, svc: ServiceDep, response: Response) -> StatusResponse:
    """Likes/dislikes; a 200 answer means the events are durable (stored, or confirmed by the
    event broker in the topology)."""
    ts = body.timestamp if body.timestamp is not None else time.time()
    events = [
        Event(body.user_id, mid, EventKind(action), ts=ts)
        for mid, action in zip(body.item_ids, body.actions, strict=True)
    ]
    svc.submit_events(events)
    return StatusResponse()
