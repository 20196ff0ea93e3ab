"""Training and promotion of the ranker that orders the default list.

Evidence comes in two kinds (:class:`cinerec.engine.ranking.Group`):

* **offline**: the held-out slice of the stored history (each sampled user's last positive
  events). The user and the catalogue are masked as if those events had never arrived
  (:meth:`UserState.without`, :meth:`Catalog.without`), every source proposes candidates for
  that state (personal models as fitted without the slice), and the held-out movies are the
  positives. A second sample of users is masked entirely: their whole history is what a
  newcomer goes on to like, which teaches the ranker the cold start. This is how a freshly
  imported catalogue gets a ranking before any live traffic.
* **online**: the lists the service showed, as the ranker saw them, labelled by the likes
  that followed (:class:`cinerec.engine.ranking.ImpressionLog`).

Promotion, separately for newcomers and for users with a history: a LightGBM
``lambdarank`` model is fitted on 80 % of the groups; it, the serving ranker and every single
source's own order are scored (nDCG@10) on the other 20 %, and the best serves (a learned
ranker must beat every source by ``MARGIN``), a learned one refitted on all groups. A learned
ranker thus never serves where one source alone does as well on held-out evidence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from cinerec.engine import Engine
from cinerec.engine.ranking import (
    Group,
    LearnedRanker,
    Ranker,
    SegmentedRanker,
    SourceRanker,
    fit_lambdarank,
    gather,
    is_cold,
    ndcg_per_group,
)
from cinerec.engine.recommenders import (
    CoLikesRecommender,
    ItemToItemRecommender,
    LikeRateRecommender,
    Recommender,
)
from cinerec.engine.state import UserState

log = logging.getLogger(__name__)

#: fewest groups with a positive before a learned ranker is tried at all
MIN_GROUPS = 30
#: relative margin by which a learned ranker must beat every single source to serve
MARGIN = 0.01
#: standard errors of the paired validation gain a challenger needs over the incumbent
Z_SE = 2.0


def offline_groups(
    engine: Engine,
    users: np.ndarray,
    items: np.ndarray,
    item_idx: np.ndarray,
    models: Mapping[str, Recommender],
    *,
    x: sp.csr_matrix,
    warm_users: int = 600,
    cold_users: int = 200,
    seed: int = 0,
) -> list[Group]:
    """Groups from the held-out slice: ``users``/``items`` are held-out pairs (matrix rows =
    engine user ids, columns mapped to catalogue ids by ``item_idx``); ``models`` are personal
    models fitted without them; ``x`` is the whole interaction matrix (for the cold sample).
    """
    rng = np.random.default_rng(seed)
    held: dict[int, set[int]] = {}
    for u, j in zip(users.tolist(), items.tolist(), strict=True):
        if j >= 0:
            held.setdefault(u, set()).add(int(item_idx[j]))
    warm = sorted(held)
    if len(warm) > warm_users:
        warm = sorted(rng.choice(warm, size=warm_users, replace=False).tolist())
    positives = np.asarray((x > 0).sum(axis=1)).ravel()
    rest = np.setdiff1d(np.flatnonzero(positives >= 3), np.asarray(warm, dtype=np.int64))
    cold = sorted(rng.choice(rest, size=min(cold_users, len(rest)), replace=False).tolist())

    with engine.lock:
        cat = engine.catalog
        masked: dict[int, UserState] = {}
        removed: dict[int, list[tuple[UserState, float, float]]] = {}
        truths: dict[int, tuple[set[int], set[int]]] = {}
        for u, gone in [(u, held[u]) for u in warm] + [(u, None) for u in cold]:
            state = engine.users.get(u)
            if state is None:
                continue
            if gone is None:  # the whole history: a newcomer
                gone = set(state.interactions)
                truth = {i for i, w in state.interactions.items() if w > 0}
            else:
                truth = gone
            truths[u] = _organic(state, truth)
            for i in gone:
                w = state.interactions.get(i, 0.0)
                if w > 0:
                    ts = state.interaction_ts.get(i, float("nan"))
                    removed.setdefault(i, []).append((state, w, ts))
            masked[u] = state.without(gone)
        view = cat.without(removed)
        live_users = engine.users
        builtin = {
            name: rec
            for name, rec in engine.candidate_sources().items()
            if name not in engine.personal_pool
        }

    def user_of(idx: int) -> UserState:
        return masked.get(idx) or live_users[idx]

    like_rate = LikeRateRecommender()
    i2i = ItemToItemRecommender(like_rate, user_of)
    sources: dict[str, Recommender] = {
        **builtin,
        "like_rate": like_rate,
        "item_to_item": i2i,
        "co_likes": CoLikesRecommender(i2i),
        **models,
    }
    out: list[Group] = []
    for u, state in masked.items():
        truth, unlabelled = truths[u]
        if not truth:
            continue
        ok = engine.policy.allowed(state, view)  # what serving would let this user see
        t0 = time.perf_counter()
        with engine.lock:  # the neighbours' histories are live state
            cands = gather(state, view, sources, ok)
        # Hand the lock and the interpreter over for as long as this user took: a waiting
        # request gets the lock at once (a lock is not fair), and this Python-heavy loop
        # takes at most half of the interpreter from the requests it shares the process with.
        time.sleep(time.perf_counter() - t0)
        if not len(cands):
            continue
        rows = ~np.isin(cands.idx, np.fromiter(unlabelled, dtype=np.int64, count=len(unlabelled)))
        labels = np.isin(cands.idx[rows], np.fromiter(truth, dtype=np.int64)).astype(np.float32)
        features = cands.features[rows]
        out.append(Group(features, tuple(cands.names), labels, len(truth), "offline"))
    return out


def _organic(state: UserState, positives: set[int]) -> tuple[set[int], set[int]]:
    """The held-out positives that are evidence of taste, and those that are not.

    A like of a movie the service showed the user says as much about what the service chose
    to show as about the user: a source the serving ranker leans on put its movies in front
    of the user, so its movies fill the held-out likes, and it wins the next choice on
    evidence it made (a feedback loop; on a closed loop over ML-100K, offline validation put
    ``popular`` and ``co_likes`` first while their lists earned the fewest likes per
    impression). So when the user has been shown lists, the positives are the likes of
    movies the service never showed them (found by the user), and the liked movies it
    showed are left out of the group, neither positive nor negative. A user with no
    impressions (imported history) keeps every positive."""
    if not state.shown:
        return positives, set()
    organic = {i for i in positives if i not in state.shown}
    return organic, positives - organic


@dataclass(slots=True)
class RankerChoice:
    ranker: SegmentedRanker
    #: validation nDCG@10 of every ranker tried, per segment, by name
    scores: dict[str, float] = field(default_factory=dict)
    n_train: int = 0
    n_valid: int = 0
    seconds: float = 0.0


def _split(groups: Sequence[Group], seed: int) -> tuple[list[Group], list[Group]]:
    """80/20: offline groups at random, online ones by time (the newest 20 % validate)."""
    rng = np.random.default_rng(seed)
    off = [g for g in groups if g.origin == "offline"]
    on = [g for g in groups if g.origin != "offline"]
    pick = rng.random(len(off)) < 0.2
    cut = int(len(on) * 0.8)
    train = [g for g, v in zip(off, pick, strict=True) if not v] + on[:cut]
    valid = [g for g, v in zip(off, pick, strict=True) if v] + on[cut:]
    return train, valid


def _choose(
    groups: Sequence[Group],
    current: SourceRanker | LearnedRanker | None,
    fallback: str,
    scores: dict[str, float],
    prefix: str,
    seed: int,
    rounds: int,
) -> tuple[SourceRanker | LearnedRanker, int, int]:
    """The best ranker of one segment on its validation groups (see :func:`choose_ranker`)."""
    train, valid = _split(groups, seed)
    if not valid:
        valid = train
    names = sorted({n.split(":")[0] for g in groups for n in g.names if n.endswith(":rank")})
    tried: list[SourceRanker | LearnedRanker] = [SourceRanker(n) for n in names]
    if current is not None:
        tried.append(current)
    learned = None
    if len(train) >= MIN_GROUPS:
        learned = fit_lambdarank(train, rounds=rounds, seed=seed)
        tried.append(learned)
    # The incumbent (the serving ranker, else the fallback source) keeps its place unless a
    # challenger beats it by more than the noise of the validation sample: its paired gain
    # over the same groups must exceed Z_SE standard errors. Small samples (a young catalogue,
    # a few dozen newcomers) then keep the order that serves instead of flipping at random.
    incumbent: SourceRanker | LearnedRanker = current or SourceRanker(fallback)
    same = [r for r in tried if r is incumbent or r == incumbent]
    if same:
        incumbent = same[0]
    else:
        tried.insert(0, incumbent)
    per = {id(r): ndcg_per_group(r, valid) for r in tried}
    base = per[id(incumbent)]
    best, best_score = incumbent, float(base.mean())
    for r in tried:
        key = prefix + ("serving" if r is current else r.name)
        score = float(per[id(r)].mean())
        scores[key] = round(score, 5)
        gain = per[id(r)] - base
        se = float(gain.std(ddof=1)) / np.sqrt(len(gain)) if len(gain) > 1 else np.inf
        # A learned ranker must also beat the best so far by MARGIN: within it, the
        # simpler order serves (a source's order transfers to serving more safely).
        need = best_score * (1 + MARGIN) if isinstance(r, LearnedRanker) else best_score
        if score > need + 1e-9 and float(gain.mean()) > Z_SE * se:
            best, best_score = r, score
    if best is learned:
        best = fit_lambdarank(groups, rounds=rounds, seed=seed)  # refit on all the evidence
    return best, len(train), len(valid)


def choose_ranker(
    groups: Sequence[Group],
    current: Ranker | None,
    *,
    seed: int = 0,
    rounds: int = 150,
) -> RankerChoice | None:
    """The ranker to serve, per segment (newcomers, users with a history): the best on
    validation groups among a freshly fitted LightGBM ranker, the serving one and each
    source's own order (see the module doc)."""
    t0 = time.perf_counter()
    useful = [g for g in groups if g.labels.any()]
    if not useful:
        return None
    cold = [g for g in useful if is_cold(g.features, g.names)]
    warm = [g for g in useful if not is_cold(g.features, g.names)]
    seg = current if isinstance(current, SegmentedRanker) else None
    scores: dict[str, float] = {}
    n_train = n_valid = 0
    parts: list[SourceRanker | LearnedRanker] = []
    for prefix, part, now, fallback in (
        ("warm:", warm, seg.warm if seg else None, "genre_popular"),
        ("cold:", cold, seg.cold if seg else None, "popular"),
    ):
        if not part:
            # No evidence of this segment's own: it keeps what serves it (else the fallback).
            # The other segment's evidence would choose for it a ranker of another problem
            # (a personal model's order for newcomers, whom it cannot tell apart).
            parts.append(now or SourceRanker(fallback))
            continue
        best, nt, nv = _choose(part, now, fallback, scores, prefix, seed, rounds)
        parts.append(best)
        n_train, n_valid = n_train + nt, n_valid + nv
    return RankerChoice(
        SegmentedRanker(parts[0], parts[1]),
        scores,
        n_train,
        n_valid,
        round(time.perf_counter() - t0, 3),
    )
