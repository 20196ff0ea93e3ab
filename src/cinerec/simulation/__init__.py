"""Closed-loop simulator: replay a rating data set, or a synthetic population, as live users
against the service (over HTTP, contract A, or in process) and beside reference policies,
scored on the course grader's scale. ``cinerec simulate --help`` runs it; see docs/simulation.md.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cinerec.simulation.policies import REFERENCE_POLICIES, ReferencePolicy
from cinerec.simulation.report import compare, table, write
from cinerec.simulation.runner import (
    Behaviour,
    HttpTarget,
    PolicyTarget,
    RunResult,
    ServiceTarget,
    Target,
    grader_points,
    run,
)
from cinerec.simulation.world import (
    PRESETS,
    Population,
    SimUser,
    World,
    is_synthetic,
    load_world,
    population_shape,
    synthetic_world,
)

__all__ = [
    "PRESETS",
    "REFERENCE_POLICIES",
    "Behaviour",
    "HttpTarget",
    "PolicyTarget",
    "Population",
    "ReferencePolicy",
    "RunResult",
    "ServiceTarget",
    "SimUser",
    "Target",
    "World",
    "compare",
    "grader_points",
    "is_synthetic",
    "load_world",
    "population_shape",
    "run",
    "simulate",
    "synthetic_world",
    "table",
]


def simulate(
    world: World,
    service: Target | None,
    references: Sequence[str],
    behaviour: Behaviour,
    out: Path | None = None,
    meta: dict[str, Any] | None = None,
    experiment: dict[str, Any] | None = None,
) -> tuple[list[RunResult], dict[str, Any] | None]:
    """Run the service (if given) and each reference policy on the same users, one after
    the other; write the report to ``out`` (``.json`` + ``.png``) when given. The service
    runs ``experiment`` (the body of ``POST /api/v1/admin/experiments``) when given."""
    targets: list[tuple[Target, Behaviour]] = []
    if service is not None:
        targets.append((service, behaviour))
    for name in references:
        policy = REFERENCE_POLICIES[name](seed=behaviour.seed)
        # References answer instantly; pauses would only add wall time, not change them.
        targets.append((PolicyTarget(policy), _no_pauses(behaviour)))

    async def one(target: Target, b: Behaviour) -> RunResult:
        try:
            return await run(target, world, b, experiment if target is service else None)
        finally:
            await target.close()  # in the loop that used it (HTTP clients are bound to it)

    results = [asyncio.run(one(target, b)) for target, b in targets]
    doc = write(results, behaviour, out, meta) if out is not None else None
    return results, doc


def _no_pauses(b: Behaviour) -> Behaviour:
    return replace(b, time_scale=0.0)


def in_process_service(database_url: str | None = None) -> Any:
    """A fresh service with its training scheduler, on a throw-away SQLite by default."""
    from cinerec.config import load_settings
    from cinerec.service import RecService
    from cinerec.training import Scheduler

    tmp = Path(tempfile.mkdtemp(prefix="cinerec-sim-"))
    settings = load_settings(
        database_url=database_url or f"sqlite:///{tmp / 'sim.db'}", data_dir=tmp
    )
    svc = RecService(settings)
    svc.load()
    if settings.scheduler:
        Scheduler(svc.trainer).start()
    return svc
