"""The ceiling for ``/recs``: a FastAPI endpoint that answers a constant 10-item list.

``benchmarks/recs_throughput.py`` starts it with uvicorn exactly as ``cinerec serve`` starts the
real service (one process, one worker, same host and log flags) and drives both the same way.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

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
