"""Operators: training and the model registry."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cinerec.api.deps import ServiceDep

router = APIRouter(prefix="/api/v1", tags=["models"])


class TrainRequest(BaseModel):
    mode: Literal["full", "incremental"] = "incremental"


class ModelOut(BaseModel):
    version: str
    kind: str
    status: str
    mode: str
    params: dict[str, object]
    metrics: dict[str, float]
    n_users: int
    n_items: int
    n_events: int
    train_seconds: float
    created_at: float


class TrainOut(BaseModel):
    mode: str
    trained: list[ModelOut]
    ranker: ModelOut | None = Field(
        None, description="the ranker chosen for the default list (None without evidence)"
    )
    serving: list[str]
    personal: str | None
    skipped: str | None
    seconds: float


def _out(r: object) -> ModelOut:
    return ModelOut.model_validate(r, from_attributes=True)


@router.post("/admin/train", response_model=TrainOut)
def train(body: TrainRequest, svc: ServiceDep) -> TrainOut:
    """Train now; answers once the new models serve (or were rejected)."""
    rep = svc.trainer.train(body.mode)
    return TrainOut(
        mode=rep.mode,
        trained=[_out(r) for r in rep.trained],
        ranker=_out(rep.ranker) if rep.ranker is not None else None,
        serving=rep.serving,
        personal=svc.engine.personal,
        skipped=rep.skipped,
        seconds=rep.seconds,
    )


@router.get("/models", response_model=list[ModelOut])
def models(svc: ServiceDep) -> list[ModelOut]:
    """Every model version, newest first, with parameters, metrics and status."""
    return [_out(r) for r in svc.store.list_models()]
