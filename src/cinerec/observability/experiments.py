"""An experiment's report: per-variant figures with 95 % confidence intervals, the differences
between variants and a verdict. Free of HTTP and of the store: it reads scored lists
(:func:`cinerec.observability.online.score_lists`) and the variant of each.

Users are the unit of randomisation, so they are the unit of the statistics: a user's lists
are not independent of each other (the same taste, the same plan). Every figure is a ratio of
per-user sums, ``R = Σ_u y_u / Σ_u n_u``:

- like rate: ``y_u`` = the user's likes (hits anywhere in their lists), ``n_u`` = the movies
  shown to them;
- P@3 and nDCG@10: ``y_u`` = the sum of the figure over the user's lists, ``n_u`` = their
  lists (so ``R`` is the mean over lists, as ``cinerec report`` and the simulator average).

Its standard error is the delta-method (linearisation, cluster-robust) one with users as
clusters: ``SE² = N / (N - 1) · Σ_u (y_u - R n_u)² / (Σ_u n_u)²``; the 95 % interval is
``R ± 1.96 SE`` (a Wald interval). Two variants are independent samples of users: the
difference's SE is ``√(SE_a² + SE_b²)`` (Welch's unpooled form).

The verdict is on the experiment's metric: the variant with the best figure wins when its
difference to every other variant has a 95 % interval above zero. Otherwise the report says
"not yet significant" and estimates the users still needed for 80 % power at a two-sided 5 %
level, taking the observed difference as the true one: with per-user variances
``s² = N · SE²`` and shares ``w``, ``N_total = (1.96 + 0.84)² (s_a²/w_a + s_b²/w_b) / δ²``.
With more than two variants no correction for multiple comparisons is made.

>>> from cinerec.observability.online import ListScore
>>> def lst(user, hits):  # a list of 10 movies with hits at these positions
...     slots = [("x", i in hits) for i in range(10)]
...     return ListScore(user, user, 0.0, "x", 10, {3: sum(h < 3 for h in hits)}, len(hits), slots)
>>> e = estimate([lst("a", {0}), lst("a", set()), lst("b", {0, 1})], "like_rate")
>>> e.value, e.users
(0.1, 2)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cinerec.domain import Experiment
from cinerec.observability.online import ListScore

#: the figures an experiment reports, and that its verdict may be on
METRICS = ("like_rate", "precision_at_3", "ndcg_at_10")
Z95 = 1.959963984540054
#: z of 80 % power (one-sided)
Z_POWER = 0.8416212335729143


@dataclass(frozen=True, slots=True)
class Estimate:
    """A ratio of per-user sums with its cluster-robust standard error."""

    value: float | None
    se: float | None
    users: int

    def ci(self) -> tuple[float, float] | None:
        if self.value is None or self.se is None:
            return None
        return (self.value - Z95 * self.se, self.value + Z95 * self.se)


def _per_user(scores: Iterable[ListScore], metric: str) -> list[tuple[float, float]]:
    """``(y_u, n_u)`` per user (see the module docstring)."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for s in scores:
        acc = sums[s.user_id]
        if metric == "like_rate":
            acc[0] += s.likes
            acc[1] += s.n_shown
        elif metric == "precision_at_3":
            acc[0] += s.precision(3)
            acc[1] += 1
        elif metric == "ndcg_at_10":
            acc[0] += s.ndcg[10]
            acc[1] += 1
        else:
            raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    return [(y, n) for y, n in sums.values()]


def ratio_estimate(pairs: Sequence[tuple[float, float]]) -> Estimate:
    """``Σy / Σn`` over users and its delta-method standard error (None below 2 users).

    >>> e = ratio_estimate([(1.0, 10.0), (3.0, 10.0)])
    >>> e.value, round(e.se, 4)
    (0.2, 0.1)
    """
    total_n = sum(n for _, n in pairs)
    if not pairs or total_n <= 0:
        return Estimate(None, None, len(pairs))
    r = sum(y for y, _ in pairs) / total_n
    big_n = len(pairs)
    if big_n < 2:
        return Estimate(r, None, big_n)
    resid = sum((y - r * n) ** 2 for y, n in pairs)
    return Estimate(r, math.sqrt(big_n / (big_n - 1) * resid) / total_n, big_n)


def estimate(scores: Iterable[ListScore], metric: str) -> Estimate:
    return ratio_estimate(_per_user(scores, metric))


def _figure(e: Estimate) -> dict[str, Any]:
    ci = e.ci()
    return {
        "value": _round(e.value),
        "ci95": [_round(ci[0]), _round(ci[1])] if ci else None,
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def difference(a: Estimate, b: Estimate) -> tuple[float, float, float] | None:
    """``a - b`` and its 95 % interval, or None while either has no standard error."""
    if a.value is None or b.value is None or a.se is None or b.se is None:
        return None
    d = a.value - b.value
    se = math.sqrt(a.se**2 + b.se**2)
    return d, d - Z95 * se, d + Z95 * se


def users_needed(a: Estimate, b: Estimate, share_a: float, share_b: float) -> int | None:
    """Users in the whole experiment for 80 % power at 5 % to detect the observed difference
    of ``a`` and ``b`` (None when there is no difference or no variance estimate yet)."""
    if a.value is None or b.value is None or a.se is None or b.se is None:
        return None
    delta = a.value - b.value
    if delta == 0:
        return None
    var_a, var_b = a.users * a.se**2, b.users * b.se**2
    n = (Z95 + Z_POWER) ** 2 * (var_a / share_a + var_b / share_b) / delta**2
    return math.ceil(n)


def build_report(
    experiment: Experiment,
    scores: Sequence[ListScore],
    variant_of: Mapping[str, str],
    *,
    attribution_s: float,
) -> dict[str, Any]:
    """The report of ``experiment`` from its scored lists; ``variant_of`` maps a list's
    session id to its variant."""
    by_variant: dict[str, list[ListScore]] = defaultdict(list)
    for s in scores:
        by_variant[variant_of[s.session_id]].append(s)
    est: dict[str, dict[str, Estimate]] = {
        v.name: {m: estimate(by_variant[v.name], m) for m in METRICS} for v in experiment.variants
    }
    variants: list[dict[str, Any]] = []
    for v in experiment.variants:
        lists = by_variant[v.name]
        variants.append(
            {
                "name": v.name,
                "source": v.source,
                "explore": v.explore,
                "share": v.share,
                "users": len({s.user_id for s in lists}),
                "lists": len(lists),
                "impressions": sum(s.n_shown for s in lists),
                "likes": sum(s.likes for s in lists),
                **{m: _figure(est[v.name][m]) for m in METRICS},
            }
        )
    metric = experiment.metric
    shares = {v.name: v.share for v in experiment.variants}
    ranked = sorted(
        (v.name for v in experiment.variants if est[v.name][metric].value is not None),
        key=lambda n: -(est[n][metric].value or 0.0),
    )
    differences = []
    verdict: dict[str, Any] = {"metric": metric, "winner": None, "significant": False}
    if len(ranked) < len(experiment.variants):
        verdict["message"] = "not yet significant: a variant has no list yet"
        verdict["users_needed"] = None
    else:
        best = ranked[0]
        significant = True
        needed: list[int] = []
        for other in ranked[1:]:
            row: dict[str, Any] = {"variant": best, "minus": other}
            for m in METRICS:
                d = difference(est[best][m], est[other][m])
                row[m] = (
                    {"value": _round(d[0]), "ci95": [_round(d[1]), _round(d[2])]} if d else None
                )
            differences.append(row)
            d = difference(est[best][metric], est[other][metric])
            if d is None or d[1] <= 0:
                significant = False
                n = users_needed(est[best][metric], est[other][metric], shares[best], shares[other])
                if n is not None:
                    needed.append(n)
        users = sum(v["users"] for v in variants)
        if significant:
            verdict.update(
                winner=best,
                significant=True,
                message=f"{best} wins on {metric}: its difference to every other variant has "
                "a 95 % interval above zero",
            )
        else:
            need = max(needed) if needed else None
            verdict["users_needed"] = need
            verdict["more_users_needed"] = max(0, need - users) if need is not None else None
            verdict["message"] = (
                f"not yet significant; about {need} users in all (now {users}) would detect the "
                f"observed difference on {metric} with 80 % power"
                if need is not None
                else "not yet significant; no difference observed yet"
            )
    return {
        "id": experiment.id,
        "name": experiment.name,
        "status": experiment.status,
        "winner": experiment.winner,
        "created_at": experiment.created_at,
        "stopped_at": experiment.stopped_at,
        "attribution_s": attribution_s,
        "method": "per-user ratio estimates, delta-method (cluster-robust) standard errors, "
        "95 % Wald intervals; differences: unpooled (Welch) standard error",
        "variants": variants,
        "differences": differences,
        "verdict": verdict,
    }
