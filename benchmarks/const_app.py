"""The ceilings for ``/recs`` and for the batch event endpoint: FastAPI endpoints that answer
a constant 10-item list, and that parse and validate an event batch with the service's own
schema (``EventsBatch``) and store nothing.

``benchmarks/recs_throughput.py`` and ``benchmarks/ingest.py`` start it with uvicorn exactly as
``cinerec serve`` starts the real service (one process, one worker, same host and log flags)
and drive both the same way.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from cinerec.api.schemas import EventsAccepted, EventsBatch

ITEMS = [str(i) for i in range(1, 11)]


class ItemIdsResponse(BaseModel):
    item_ids: list[str]


app = FastAPI(title="constant /recs")


@app.get("/healthcheck")
async def healthcheck() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/recs/{user_id}", response_model=ItemIdsResponse)
async def recs(user_id: str) -> ItemIdsResponse:
    return ItemIdsResponse(item_ids=ITEMS)


@app.post("/api/v1/events/batch", response_model=EventsAccepted)
def events_batch(body: EventsBatch) -> EventsAccepted:
    # A sync endpoint, as the service's: validated, then answered from a worker thread.
    return EventsAccepted(accepted=len(body.events), duplicates=0, unknown_movies=[])
