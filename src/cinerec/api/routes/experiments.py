"""A/B experiments (``cinerec.experiments``): create, report, stop, promote. Admin only."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field, StringConstraints

from cinerec.api import errors
from cinerec.api.deps import ServiceDep, require_admin
from cinerec.api.schemas import Id, PathId
from cinerec.domain import Experiment, Variant

router = APIRouter(
    prefix="/api/v1/admin/experiments",
    tags=["experiments"],
    dependencies=[Depends(require_admin)],
    responses={**errors.COMMON, **errors.AUTH},
)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Metric = Literal["like_rate", "precision_at_3", "ndcg_at_10"]


class VariantIn(BaseModel):
    name: Name
    share: float = Field(gt=0, le=1, description="share of the users; all shares sum to 1")
    source: Id | None = Field(
        None,
        description="force one source (popular, top_rated, a model, …); omitted: the "
        "learned ranker over every source (the default list)",
    )
    explore: bool = Field(True, description="false: no exploration and no bandit slot")


class ExperimentIn(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    variants: list[VariantIn] = Field(min_length=2, max_length=10)
    metric: Metric = Field("like_rate", description="the figure the verdict is on")
    salt: Name | None = Field(
        None, description="the assignment hash's salt (default: random, fresh per experiment)"
    )


class VariantOut(BaseModel):
    name: str
    share: float
    source: str | None
    explore: bool


class ExperimentOut(BaseModel):
    id: str
    name: str
    salt: str = Field(description="a user's variant is a hash of salt and user id")
    variants: list[VariantOut]
    metric: str
    status: str = Field(
        description="running, stopped, promoted (its winner serves everyone) or superseded "
        "(was promoted until a later promotion)"
    )
    winner: str | None = Field(None, description="the promoted variant")
    created_at: float
    stopped_at: float | None


class PromoteIn(BaseModel):
    variant: Name


class Figure(BaseModel):
    value: float | None = Field(description="None while the variant has no list")
    ci95: list[float | None] | None = Field(
        None, description="95 % interval (None below two users)"
    )


class VariantReport(BaseModel):
    name: str
    source: str | None
    explore: bool
    share: float
    users: int = Field(description="users shown at least one list in this variant")
    lists: int
    impressions: int = Field(description="movies shown")
    likes: int = Field(description="shown movies liked within the attribution window")
    like_rate: Figure
    precision_at_3: Figure
    ndcg_at_10: Figure


class Difference(BaseModel):
    variant: str
    minus: str
    like_rate: Figure | None
    precision_at_3: Figure | None
    ndcg_at_10: Figure | None


class Verdict(BaseModel):
    metric: str
    winner: str | None
    significant: bool
    message: str
    users_needed: int | None = Field(
        None, description="users in all for 80 % power on the observed difference"
    )
    more_users_needed: int | None = None


class ExperimentReport(BaseModel):
    id: str
    name: str
    status: str
    winner: str | None
    created_at: float
    stopped_at: float | None
    attribution_s: float
    method: str
    variants: list[VariantReport]
    differences: list[Difference] = Field(
        description="the best variant on the verdict's metric minus each other one"
    )
    verdict: Verdict


def _out(e: Experiment) -> ExperimentOut:
    return ExperimentOut(
        id=e.id,
        name=e.name,
        salt=e.salt,
        variants=[
            VariantOut(name=v.name, share=v.share, source=v.source, explore=v.explore)
            for v in e.variants
        ],
        metric=e.metric,
        status=e.status,
        winner=e.winner,
        created_at=e.created_at,
        stopped_at=e.stopped_at,
    )


@router.post(
    "",
    response_model=ExperimentOut,
    status_code=201,
    responses={409: errors._doc("an experiment is already running: stop or promote it first")},
)
def create(body: ExperimentIn, svc: ServiceDep, response: Response) -> ExperimentOut:
    """Start an experiment: users are split between the variants by a salted hash of their
    id from their next list on, and stay in their variant. At most one runs at a time."""
    exp = svc.create_experiment(
        body.name,
        [Variant(v.name, v.share, v.source, v.explore) for v in body.variants],
        metric=body.metric,
        salt=body.salt,
    )
    response.headers["Location"] = f"/api/v1/admin/experiments/{exp.id}"
    return _out(exp)


@router.get("", response_model=list[ExperimentOut])
def list_experiments(svc: ServiceDep) -> list[ExperimentOut]:
    """Every experiment, newest first."""
    return [_out(e) for e in svc.list_experiments()]


@router.get("/{experiment_id}", response_model=ExperimentReport, responses=errors.NOT_FOUND)
def report(experiment_id: PathId, svc: ServiceDep) -> ExperimentReport:
    """Per variant: users, lists, impressions, likes, like rate, online P@3 and nDCG@10 with
    95 % intervals (users as the unit); the best variant minus each other; the verdict
    (docs/observability.md, "Experiments")."""
    return ExperimentReport.model_validate(svc.experiment_report(experiment_id))


@router.post(
    "/{experiment_id}/stop",
    response_model=ExperimentOut,
    responses={**errors.NOT_FOUND, 409: errors._doc("the experiment is not running")},
)
def stop(experiment_id: PathId, svc: ServiceDep) -> ExperimentOut:
    """Stop a running experiment: everyone gets the default setting again."""
    return _out(svc.stop_experiment(experiment_id))


@router.post("/{experiment_id}/promote", response_model=ExperimentOut, responses=errors.NOT_FOUND)
def promote(experiment_id: PathId, body: PromoteIn, svc: ServiceDep) -> ExperimentOut:
    """Make a variant's setting what everyone gets from now on (persisted; stops the
    experiment if it runs)."""
    return _out(svc.promote_variant(experiment_id, body.variant))
