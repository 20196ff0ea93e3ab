"""The closed loop: simulated users ask for recommendations and react, against a target.

A target is the service over HTTP (contract A: ``/cleanup``, ``/add_items``, ``/recs``,
``/interact``), the service in process, or a reference policy. Every user:

1. asks ``/recs`` ``requests`` times, with a short pause (most of the time) or a long one
   between requests;
2. after each answer, likes every relevant movie it was shown, dislikes each other shown
   movie with probability ``p_dislike``, and with probability ``p_self`` likes one relevant
   movie it found by itself (sent through ``/interact`` like the rest).

Up to ``concurrency`` users are active at once; a new one starts when one finishes. Each
answer is scored at K=10 like the course grader does: a relevant movie earns credit only the
first time it reaches the user (shown, or found by the user); precision and nDCG (binary
gains, ideal = as many hits as the user still has relevant movies, at most K) per answer,
averaged over answers; intra-list genre diversity per answer; catalogue coverage over the
whole run; ``/recs`` latency as the client sees it.

With an experiment (``run(..., experiment=...)``), the target starts it after its set-up, and
each answer is also put in its user's variant, computed from the experiment's salt exactly as
the service assigns it; :meth:`RunResult.by_variant` gives the simulator's own figures per
variant, and the service's report of the experiment is fetched at the end.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from cinerec.domain import Experiment, Variant
from cinerec.experiments import assign
from cinerec.simulation.policies import ReferencePolicy
from cinerec.simulation.world import SimUser, World

K = 10
ADD_ITEMS_BATCH = 2000
_DISCOUNT = np.array([1.0 / math.log2(i + 2) for i in range(K)])


@dataclass(frozen=True, slots=True)
class Behaviour:
    requests: int = 8
    concurrency: int = 50
    p_dislike: float = 0.3
    p_self: float = 0.3
    p_long_pause: float = 0.3
    short_pause_s: tuple[float, float] = (0.1, 0.5)
    long_pause_s: tuple[float, float] = (2.0, 5.0)
    #: multiplies every pause (0 = no pauses: for in-process references)
    time_scale: float = 1.0
    seed: int = 0


class Target(Protocol):
    name: str

    async def setup(self, world: World) -> None: ...

    async def recs(self, user_id: str) -> list[str]: ...

    async def interact(self, user_id: str, item_ids: list[str], actions: list[str]) -> None: ...

    async def close(self) -> None: ...


# -- targets ------------------------------------------------------------------------------
class HttpTarget:
    """The service over HTTP, through contract A exactly as the grader drives it."""

    def __init__(
        self,
        url: str,
        collector_url: str | None = None,
        name: str = "service",
        admin_token: str | None = None,
    ) -> None:
        import httpx

        self.name = name
        self.admin_token = admin_token
        self.url = url.rstrip("/")
        self.collector_url = (collector_url or url).rstrip("/")
        self.client = httpx.AsyncClient(
            timeout=30.0, limits=httpx.Limits(max_connections=128, max_keepalive_connections=128)
        )

    async def setup(self, world: World) -> None:
        (await self.client.get(f"{self.url}/healthcheck")).raise_for_status()
        (await self.client.get(f"{self.url}/cleanup")).raise_for_status()
        for start in range(0, world.n_items, ADD_ITEMS_BATCH):
            ids = world.item_ids[start : start + ADD_ITEMS_BATCH]
            body = {"item_ids": ids, "genres": [list(world.genres[m]) for m in ids]}
            (await self.client.post(f"{self.url}/add_items", json=body)).raise_for_status()

    async def recs(self, user_id: str) -> list[str]:
        r = await self.client.get(f"{self.url}/recs/{user_id}")
        r.raise_for_status()
        return list(r.json()["item_ids"])

    async def interact(self, user_id: str, item_ids: list[str], actions: list[str]) -> None:
        body = {
            "user_id": user_id,
            "item_ids": item_ids,
            "actions": actions,
            "timestamp": time.time(),
        }
        r = await self.client.post(f"{self.collector_url}/interact", json=body)
        r.raise_for_status()

    async def start_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start an experiment through the admin API (``admin_token`` when auth is on)."""
        r = await self.client.post(
            f"{self.url}/api/v1/admin/experiments", json=body, headers=self._admin()
        )
        r.raise_for_status()
        return dict(r.json())

    async def experiment_report(self, experiment_id: str) -> dict[str, Any]:
        r = await self.client.get(
            f"{self.url}/api/v1/admin/experiments/{experiment_id}", headers=self._admin()
        )
        r.raise_for_status()
        return dict(r.json())

    def _admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}

    async def close(self) -> None:
        await self.client.aclose()


class ServiceTarget:
    """The service in process (no HTTP): the same service layer the API calls."""

    def __init__(self, service: Any, name: str = "service") -> None:
        self.name = name
        self.svc = service

    async def setup(self, world: World) -> None:
        self.svc.cleanup()
        self.svc.add_items(world.item_ids, [world.genres[m] for m in world.item_ids])

    async def recs(self, user_id: str) -> list[str]:
        return [r.movie_id for r in self.svc.recommend(user_id).items]

    async def interact(self, user_id: str, item_ids: list[str], actions: list[str]) -> None:
        from cinerec.domain import Event, EventKind

        now = time.time()
        pairs = zip(item_ids, actions, strict=True)
        self.svc.record_events([Event(user_id, m, EventKind(a), ts=now) for m, a in pairs])

    async def start_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        variants = [Variant(**v) for v in body["variants"]]
        kwargs = {k: body[k] for k in ("metric", "salt") if body.get(k)}
        exp = self.svc.create_experiment(body["name"], variants, **kwargs)
        return {
            "id": exp.id,
            "name": exp.name,
            "salt": exp.salt,
            "variants": [
                {"name": v.name, "share": v.share, "source": v.source, "explore": v.explore}
                for v in exp.variants
            ],
        }

    async def experiment_report(self, experiment_id: str) -> dict[str, Any]:
        return dict(self.svc.experiment_report(experiment_id))

    async def close(self) -> None:
        pass


class PolicyTarget:
    """A reference policy, in process."""

    def __init__(self, policy: ReferencePolicy) -> None:
        self.policy = policy
        self.name = policy.name

    async def setup(self, world: World) -> None:
        self.policy.reset(world)

    async def recs(self, user_id: str) -> list[str]:
        return self.policy.recs(user_id, K)

    async def interact(self, user_id: str, item_ids: list[str], actions: list[str]) -> None:
        self.policy.interact(user_id, item_ids, actions)

    async def close(self) -> None:
        pass


# -- scoring ------------------------------------------------------------------------------
@dataclass(slots=True)
class Answer:
    t: float  # seconds since the run started
    precision: float
    ndcg: float | None  # None when the user had nothing left to find
    diversity: float
    latency_ms: float
    coverage: float  # share of the catalogue shown so far, after this answer
    user_id: str = ""
    precision_at_3: float = 0.0


@dataclass(slots=True)
class RunResult:
    target: str
    world: str
    n_items: int
    n_users: int
    answers: list[Answer] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    shown: set[str] = field(default_factory=set)
    seconds: float = 0.0
    #: the experiment the target ran (as the API returned it), each user's variant, and
    #: the service's report of it at the end of the run
    experiment: dict[str, Any] | None = None
    variant_of: dict[str, str] = field(default_factory=dict)
    experiment_report: dict[str, Any] | None = None

    def by_variant(self) -> dict[str, dict[str, Any]]:
        """The simulator's own figures per variant of the experiment: users, answers, the
        like rate (= precision@10: every list has 10 movies and the simulated users like
        exactly the relevant ones they are shown), precision@3 and nDCG@10."""
        groups: dict[str, list[Answer]] = {}
        for a in self.answers:
            variant = self.variant_of.get(a.user_id)
            if variant is not None:
                groups.setdefault(variant, []).append(a)
        return {
            name: {
                "users": len({a.user_id for a in answers}),
                "answers": len(answers),
                "precision@10": _mean([a.precision for a in answers]),
                "precision@3": _mean([a.precision_at_3 for a in answers]),
                "ndcg@10": _mean([a.ndcg for a in answers if a.ndcg is not None]),
            }
            for name, answers in sorted(groups.items())
        }

    def summary(self) -> dict[str, Any]:
        a = self.answers
        lat = np.array([x.latency_ms for x in a]) if a else np.zeros(1)
        ndcgs = [x.ndcg for x in a if x.ndcg is not None]
        out: dict[str, Any] = {
            "target": self.target,
            "world": self.world,
            "users": self.n_users,
            "movies": self.n_items,
            "answers": len(a),
            "errors": self.errors,
            "precision@10": _mean([x.precision for x in a]),
            "ndcg@10": _mean(ndcgs),
            "diversity": _mean([x.diversity for x in a]),
            "coverage": len(self.shown) / self.n_items if self.n_items else 0.0,
            "latency_mean_ms": float(lat.mean()),
            "latency_p50_ms": float(np.percentile(lat, 50)),
            "latency_p99_ms": float(np.percentile(lat, 99)),
            "seconds": round(self.seconds, 1),
        }
        out["points"] = grader_points(out)
        return out


def _mean(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else 0.0


#: The course grader's scale (SPEC.md): each metric linear between a floor and a ceiling.
SCALE = {
    "precision@10": (0.02, 0.15),
    "ndcg@10": (0.02, 0.07),
    "diversity": (0.1, 0.4),
    "coverage": (0.1, 0.8),
    "latency_mean_ms": (800.0, 80.0),  # a bonus: full at 80 ms and below
}


def grader_points(summary: dict[str, Any]) -> dict[str, float]:
    """Points per metric in [0, 1] on the grader's linear scale, and their total."""
    pts: dict[str, float] = {}
    for metric, (floor, ceiling) in SCALE.items():
        v = float(summary[metric])
        pts[metric] = round(min(max((v - floor) / (ceiling - floor), 0.0), 1.0), 4)
    pts["total"] = round(sum(pts.values()), 4)
    return pts


def genre_diversity(items: list[str], genres: dict[str, tuple[str, ...]]) -> float:
    """Mean pairwise Jaccard distance between the genre sets of a list."""
    sets = [set(genres.get(m, ())) for m in items]
    n = len(sets)
    if n < 2:
        return 0.0
    total = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            union = len(sets[i] | sets[j])
            total += 1.0 - (len(sets[i] & sets[j]) / union if union else 1.0)
    return total / (n * (n - 1) / 2)


def score_answer(user: SimUser, items: list[str]) -> tuple[float, float | None, list[str]]:
    """Precision, nDCG (None if nothing is left to find) and the newly credited hits."""
    remaining = len(user.relevant) - len(user.credited)
    gains = np.zeros(K)
    hits: list[str] = []
    for pos, m in enumerate(items[:K]):
        if m in user.relevant and m not in user.credited and m not in hits:
            gains[pos] = 1.0
            hits.append(m)
    precision = len(hits) / K
    if remaining <= 0:
        return precision, None, hits
    ideal = _DISCOUNT[: min(remaining, K)].sum()
    return precision, float((gains * _DISCOUNT).sum() / ideal), hits


# -- the loop -----------------------------------------------------------------------------
async def run(
    target: Target,
    world: World,
    behaviour: Behaviour | None = None,
    experiment: dict[str, Any] | None = None,
) -> RunResult:
    """Drive ``target`` with every user of ``world``; the target is set up (cleaned) first,
    then starts ``experiment`` (the body of ``POST /api/v1/admin/experiments``) if given."""
    b = behaviour or Behaviour()
    await target.setup(world)
    users = world.fresh_users()
    result = RunResult(target.name, world.name, world.n_items, len(users))
    if experiment is not None:
        started = await target.start_experiment(experiment)  # type: ignore[attr-defined]
        result.experiment = started
        exp = Experiment(
            started["id"],
            started["name"],
            started["salt"],
            [Variant(**v) for v in started["variants"]],
        )
        result.variant_of = {u.id: assign(exp, u.id).name for u in users}
    rng = np.random.default_rng(b.seed)
    # One seeded stream per user: every target meets the same users with the same pauses.
    plans = [np.random.default_rng(rng.integers(1 << 62)) for _ in users]
    sem = asyncio.Semaphore(b.concurrency)
    t0 = time.perf_counter()

    async def one_user(u: SimUser, urng: np.random.Generator) -> None:
        # Pauses first: they never depend on what the target answered.
        pauses = [
            urng.uniform(*(b.long_pause_s if urng.random() < b.p_long_pause else b.short_pause_s))
            for _ in range(b.requests)
        ]
        async with sem:
            for req in range(b.requests):
                if req:
                    await asyncio.sleep(pauses[req] * b.time_scale)
                t = time.perf_counter()
                try:
                    items = await target.recs(u.id)
                except Exception as exc:  # a failed request is scored, not fatal
                    _error(result, f"/recs {u.id}: {type(exc).__name__}: {exc}")
                    continue
                latency = (time.perf_counter() - t) * 1e3
                if len(items) != K or len(set(items)) != K:
                    _error(result, f"/recs {u.id}: {len(items)} items, {len(set(items))} distinct")
                precision, ndcg, hits = score_answer(u, items)
                top3 = set(items[:3])
                u.credited.update(hits)
                u.seen.update(items)
                result.shown.update(items)
                result.answers.append(
                    Answer(
                        t - t0,
                        precision,
                        ndcg,
                        genre_diversity(items[:K], world.genres),
                        latency,
                        len(result.shown) / max(world.n_items, 1),
                        u.id,
                        sum(m in top3 for m in hits) / 3,
                    )
                )
                await _react(target, u, items, hits, b, urng, result)
            # Let the loop breathe between users even when no pause is configured.
            await asyncio.sleep(0)

    await asyncio.gather(*(one_user(u, p) for u, p in zip(users, plans, strict=True)))
    result.seconds = time.perf_counter() - t0
    if result.experiment is not None:
        report = target.experiment_report  # type: ignore[attr-defined]
        result.experiment_report = await report(result.experiment["id"])
    return result


async def _react(
    target: Target,
    u: SimUser,
    items: list[str],
    hits: list[str],
    b: Behaviour,
    urng: np.random.Generator,
    result: RunResult,
) -> None:
    liked = [m for m in items if m in u.relevant]
    hit_set = set(hits)
    others = [m for m in items if m not in u.relevant and m not in hit_set]
    disliked = [m for m in others if urng.random() < b.p_dislike]
    found: list[str] = []
    if urng.random() < b.p_self:
        left = sorted(u.relevant - u.credited - u.seen)
        if left:
            m = left[int(urng.integers(len(left)))]
            found.append(m)
            u.credited.add(m)
            u.seen.add(m)
    ids = liked + found + disliked
    if not ids:
        return
    actions = ["like"] * (len(liked) + len(found)) + ["dislike"] * len(disliked)
    try:
        await target.interact(u.id, ids, actions)
    except Exception as exc:
        _error(result, f"/interact {u.id}: {type(exc).__name__}: {exc}")


def _error(result: RunResult, message: str) -> None:
    result.errors += 1
    if len(result.error_samples) < 10:
        result.error_samples.append(message)
