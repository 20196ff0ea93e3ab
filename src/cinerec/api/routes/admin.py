"""Operators: training jobs, the model registry, wiping. Every route needs an admin token."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from cinerec.api import errors
from cinerec.api.deps import ServiceDep, require_admin
from cinerec.api.schemas import PathId, StatusResponse
from cinerec.service import NotFoundError, RecService
from cinerec.training.jobs import Job, TrainingJobs

router = APIRouter(
    prefix="/api/v1",
    tags=["models"],
    dependencies=[Depends(require_admin)],
    responses={**errors.COMMON, **errors.AUTH},
)


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


class JobOut(BaseModel):
    id: str
    kind: str = "train"
    mode: str
    status: str = Field(description="queued, running, succeeded or failed")
    created_at: float
    started_at: float | None
    finished_at: float | None
    result: TrainOut | None = Field(None, description="the training report once succeeded")
    error: str | None = Field(None, description="the kind of failure (details in the log)")


def _job(job: Job, svc: RecService) -> JobOut:
    rep = job.report
    result = None
    if rep is not None:
        result = TrainOut(
            mode=rep.mode,
            trained=[_out(r) for r in rep.trained],
            ranker=_out(rep.ranker) if rep.ranker is not None else None,
            serving=rep.serving,
            personal=svc.engine.personal,
            skipped=rep.skipped,
            seconds=rep.seconds,
        )
    return JobOut(
        id=job.id,
        mode=job.mode,
        status=job.status,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        result=result,
        error=job.error,
    )


def _jobs(request: Request) -> TrainingJobs:
    return request.app.state.jobs


@router.post("/admin/train", response_model=JobOut, status_code=202)
def train(body: TrainRequest, svc: ServiceDep, request: Request, response: Response) -> JobOut:
    """Start a training run in the background; answers 202 with the job at once. While a
    run of the same mode is queued or running, that job is returned instead of a new one.
    Poll ``GET /api/v1/admin/jobs/{id}`` (``Location``) until it has finished."""
    job, _ = _jobs(request).submit(body.mode)
    response.headers["Location"] = f"/api/v1/admin/jobs/{job.id}"
    return _job(job, svc)


@router.get("/admin/jobs/{job_id}", response_model=JobOut, responses=errors.NOT_FOUND)
def job_status(job_id: PathId, svc: ServiceDep, request: Request) -> JobOut:
    """A training job's status and, once it succeeded, its report."""
    job = _jobs(request).get(job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id!r} (finished jobs are kept for the last 100)")
    return _job(job, svc)


@router.post("/admin/wipe", response_model=StatusResponse)
def wipe(svc: ServiceDep) -> StatusResponse:
    """Delete every piece of state: catalogue, users, accounts, events, logs, caches,
    models (contract A's ``/cleanup``, for an admin token only)."""
    svc.cleanup()
    return StatusResponse()


@router.get("/models", response_model=list[ModelOut])
def models(svc: ServiceDep) -> list[ModelOut]:
    """Every model version, newest first, with parameters, metrics and status."""
    return [_out(r) for r in svc.store.list_models()]
