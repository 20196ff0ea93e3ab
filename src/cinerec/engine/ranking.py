"""Candidates, then a learned ranking.

Every source (each personal model, item_to_item, co_likes, popularity, like rate, top-rated,
genre top, newest) proposes its best ``PER_SOURCE`` movies with its scores; the union is
described by one feature row per movie (each source's rank and score, the movie's audience
and age, the user's history and genre affinity) and ordered by one ranker:

* :class:`LearnedRanker`: a LightGBM ``lambdarank`` model trained on evidence (held-out
  history offline, logged impressions and what users did next online; see
  :mod:`cinerec.training`);
* :class:`SourceRanker`: one source's own order, the baseline every learned ranker has to
  beat on held-out evidence before it serves.

No shares are set by hand: which signal matters is learned from the data of the catalogue
at hand. Pure NumPy + LightGBM, free of HTTP and SQL.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cinerec.engine.recommenders import Recommender, genre_profile
from cinerec.engine.state import Catalog, UserState

#: candidates each source proposes
PER_SOURCE = 50
#: features of the movie and of the user, whatever the sources
ITEM_FEATURES = (
    "item:log_positives",
    "item:log_shown",
    "item:like_rate",
    "item:rating",
    "item:log_ratings",
    "item:n_genres",
)
USER_FEATURES = ("user:log_interactions", "user:log_likes", "user:log_shown", "user:genre_match")


def source_features(name: str) -> tuple[str, str]:
    return f"{name}:rank", f"{name}:z"


@dataclass(slots=True)
class Candidates:
    """The union of the sources' proposals for one request."""

    idx: np.ndarray  # (c,) dense movie ids
    features: np.ndarray  # (c, f) float32, columns named by ``names``
    names: list[str]
    #: per candidate, the source that ranks it best ("why this?")
    best_source: list[str]
    #: per source, its proposals best first (for the source bandit and exploration taste)
    proposals: dict[str, np.ndarray]
    #: per source, its full score array
    scores: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.idx)


def _informative(scores: np.ndarray, ok: np.ndarray) -> bool:
    """Whether ``scores`` tell apart at least two of the allowed movies."""
    m = min(len(scores), len(ok))
    allowed = scores[:m][ok[:m]]
    return len(allowed) > 1 and bool(allowed.max() > allowed.min())


def gather(
    user: UserState | None,
    catalog: Catalog,
    sources: Mapping[str, Recommender],
    ok: np.ndarray,
    *,
    per_source: int = PER_SOURCE,
    only: frozenset[str] | None = None,
    deep: int = 0,
) -> Candidates:
    """Ask every source (or those in ``only``) for its best allowed movies and describe
    their union.

    ``deep`` > ``per_source`` also adds each source's next best movies, up to ``deep`` of
    them, to the union (a plan that lasts many lists): they are described as the ranker was
    trained to see them, as movies outside the source's proposals (rank NaN), with every
    source's score standardised over the ``per_source`` union alone, so the order of the
    first lists does not depend on ``deep``.
    """
    from cinerec.engine.policy import top_n  # policy imports this module

    scores: dict[str, np.ndarray] = {}
    proposals: dict[str, np.ndarray] = {}
    deeper: dict[str, np.ndarray] = {}
    for name, rec in sources.items():
        if only is not None and name not in only:
            continue
        sc = rec.scores(user, catalog)
        if sc is None:
            continue
        cand = top_n(sc, ok, max(per_source, deep), getattr(rec, "positive_only", True))
        # A source that scores every movie the user may see alike (a like rate or a rating
        # with no evidence on any of them) has nothing to propose: its order would be the
        # catalogue's.
        if len(cand) and _informative(sc, ok):
            scores[name] = sc
            proposals[name] = cand[:per_source]
            deeper[name] = cand
    core = (
        np.unique(np.concatenate(list(proposals.values())))
        if proposals
        else np.empty(0, dtype=np.int64)
    )
    idx = np.unique(np.concatenate(list(deeper.values()))) if deep > per_source and deeper else core
    in_core = np.isin(idx, core) if deep > per_source else np.ones(len(idx), dtype=bool)
    c = len(idx)
    names = list(ITEM_FEATURES) + list(USER_FEATURES)
    cols: list[np.ndarray] = []
    # -- the movie
    pos = catalog.positive_cnt[idx]
    shown = catalog.shown_cnt[idx]
    cols.append(np.log1p(pos))
    cols.append(np.log1p(shown))
    cols.append((pos + 1.0) / (np.maximum(shown, pos) + 2.0))
    cols.append(catalog.bayesian_rating(20.0)[idx])
    cols.append(np.log1p(catalog.rating_cnt[idx]))
    genres = catalog.genre_matrix()[idx]  # 0/1 rows
    cols.append(genres.sum(axis=1, dtype=np.float64))
    # -- the user
    n_inter = len(user.interactions) if user is not None else 0
    n_likes = len(user.liked) if user is not None else 0
    n_shown = len(user.shown) if user is not None else 0
    cols.append(np.full(c, np.log1p(n_inter)))
    cols.append(np.full(c, np.log1p(n_likes)))
    cols.append(np.full(c, np.log1p(n_shown)))
    prof = genre_profile(user, catalog)
    if prof is None:
        cols.append(np.zeros(c))
    else:
        cols.append(genres @ prof)
    # -- each source: rank among its proposals (NaN beyond) and score standardised over the union
    # (the label ranks each movie by the source's deep list: a movie beyond every source's
    # proposals is still labelled with the source that put it in the union)
    best_rank = np.full(c, np.inf)
    labels = ["explore", *sorted(scores)]
    best_code = np.zeros(c, dtype=np.intp)  # an index into ``labels``
    for code, name in enumerate(labels[1:], 1):
        rank = np.full(c, np.nan)
        prop = proposals[name]
        rank[np.searchsorted(idx, prop)] = np.arange(1, len(prop) + 1)
        label_rank = np.full(c, np.inf)
        label_rank[np.searchsorted(idx, deeper[name])] = np.arange(1, len(deeper[name]) + 1)
        v = scores[name][idx].astype(np.float64)
        finite = np.isfinite(v)
        z = np.full(c, np.nan)
        basis = finite & in_core
        if basis.any():
            mu, sd = v[basis].mean(), v[basis].std()
            z[finite] = (v[finite] - mu) / (sd if sd > 0 else 1.0)
        cols.extend([rank, z])
        names.extend(source_features(name))
        better = label_rank < best_rank
        best_rank[better] = label_rank[better]
        best_code[better] = code
    best = [labels[j] for j in best_code.tolist()]
    features = np.column_stack(cols) if c else np.zeros((0, len(names)))
    return Candidates(idx, features.astype(np.float32), names, best, proposals, scores)


def aligned(features: np.ndarray, names: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """``features`` with columns re-ordered to ``wanted`` (missing ones NaN)."""
    if list(names) == list(wanted):
        return features
    pos = {n: j for j, n in enumerate(names)}
    out = np.full((features.shape[0], len(wanted)), np.nan, dtype=np.float32)
    for j, n in enumerate(wanted):
        p = pos.get(n)
        if p is not None:
            out[:, j] = features[:, p]
    return out


class Ranker(Protocol):
    @property
    def name(self) -> str: ...

    def score(self, features: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """One score per row, higher first."""
        ...

    def needs(self, cold: bool) -> frozenset[str] | None:
        """The sources whose features the ranker reads for a newcomer (``cold``) or a user
        with a history; None = all of them."""
        ...


@dataclass(slots=True)
class SourceRanker:
    """One source's own order (its rank; movies it did not propose last, by its score)."""

    source: str

    @property
    def name(self) -> str:
        return f"source:{self.source}"

    def score(self, features: np.ndarray, names: Sequence[str]) -> np.ndarray:
        rank_col, z_col = source_features(self.source)
        x = aligned(features, names, [rank_col, z_col])
        rank = np.nan_to_num(x[:, 0], nan=1e6)
        z = np.nan_to_num(x[:, 1], nan=-1e3)
        return -rank + 1e-6 * z

    def needs(self, cold: bool) -> frozenset[str] | None:
        return frozenset([self.source])


def _feature_source(name: str) -> str | None:
    """``"ease_plus:rank"`` -> ``"ease_plus"``; None for the movie's and the user's features."""
    head, _, tail = name.rpartition(":")
    return head if tail in ("rank", "z") and head not in ("item", "user") else None


class LearnedRanker:
    """A LightGBM model over the candidate features (saved as LightGBM's own text format)."""

    name = "learned"

    def __init__(self, booster: Any, names: Sequence[str]) -> None:
        self.booster = booster
        self.names = list(names)
        used = np.asarray(booster.feature_importance("split")) > 0
        #: the sources some split of the model reads (the others cannot change its order
        #: except through which movies are candidates)
        self.used_sources = frozenset(
            src for n, u in zip(self.names, used, strict=True) if u and (src := _feature_source(n))
        )

    def needs(self, cold: bool) -> frozenset[str] | None:
        return self.used_sources

    def score(self, features: np.ndarray, names: Sequence[str]) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0)
        x = aligned(features, names, self.names)
        return np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float64)


COLD_FEATURE = "user:log_interactions"


def is_cold(features: np.ndarray, names: Sequence[str]) -> bool:
    """Whether a candidate set is for a user with no interactions (a newcomer)."""
    col = aligned(features[:1], names, [COLD_FEATURE])
    return bool(len(col) and col[0, 0] == 0)


class SegmentedRanker:
    """One ranker for newcomers, one for users with a history: the cold start is a problem
    of its own (no personal source speaks), and each is chosen on its own evidence."""

    def __init__(self, warm: SourceRanker | LearnedRanker, cold: SourceRanker | LearnedRanker):
        self.warm = warm
        self.cold = cold

    @property
    def name(self) -> str:
        return f"warm={self.warm.name},cold={self.cold.name}"

    def score(self, features: np.ndarray, names: Sequence[str]) -> np.ndarray:
        part = self.cold if is_cold(features, names) else self.warm
        return part.score(features, names)

    def needs(self, cold: bool) -> frozenset[str] | None:
        return (self.cold if cold else self.warm).needs(cold)

    def save(self, path: Path) -> Path:
        doc = {"type": "segmented", "warm": _doc(self.warm), "cold": _doc(self.cold)}
        path.write_text(json.dumps(doc))
        return path


def _doc(r: SourceRanker | LearnedRanker) -> dict[str, Any]:
    if isinstance(r, SourceRanker):
        return {"type": "source", "source": r.source}
    return {"type": "learned", "names": r.names, "model": r.booster.model_to_string()}


def _from_doc(doc: dict[str, Any]) -> SourceRanker | LearnedRanker:
    if doc.get("type") == "source":
        return SourceRanker(doc["source"])
    import lightgbm as lgb

    return LearnedRanker(lgb.Booster(model_str=doc["model"]), doc["names"])


def load_ranker(path: Path) -> SegmentedRanker:
    """A ranker saved by :meth:`SegmentedRanker.save`."""
    doc = json.loads(Path(path).read_text())
    return SegmentedRanker(_from_doc(doc["warm"]), _from_doc(doc["cold"]))


# -- training data ------------------------------------------------------------------------------
@dataclass(slots=True)
class Group:
    """One ranked list with labels: a request's candidates (offline) or what it showed (online)."""

    features: np.ndarray  # (m, f)
    names: tuple[str, ...]
    labels: np.ndarray  # (m,) 1 = liked / held out, 0 = not
    #: relevant movies in all (offline: held-out movies the candidates may have missed)
    n_relevant: int
    origin: str = "offline"  # offline | online


@dataclass(slots=True)
class GroupSet:
    groups: list[Group] = field(default_factory=list)

    def useful(self) -> list[Group]:
        """Groups with at least one positive (a list with none teaches a ranker nothing)."""
        return [g for g in self.groups if g.labels.any()]


def stack(groups: Sequence[Group]) -> tuple[np.ndarray, np.ndarray, list[int], list[str]]:
    """Feature matrix, labels and group sizes of ``groups`` over the union of their columns."""
    names: list[str] = list(dict.fromkeys(n for g in groups for n in g.names))
    xs = [aligned(g.features, g.names, names) for g in groups]
    x = np.vstack(xs) if xs else np.zeros((0, len(names)), dtype=np.float32)
    y = np.concatenate([g.labels for g in groups]) if groups else np.zeros(0)
    return x, y, [len(g.labels) for g in groups], names


def ndcg_per_group(ranker: Ranker, groups: Sequence[Group], k: int = 10) -> np.ndarray:
    """nDCG@k of ``ranker``'s order in each of ``groups`` (binary gains; the ideal counts
    every relevant movie of the group, found by the candidates or not)."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    out = np.zeros(len(groups))
    for n, g in enumerate(groups):
        s = ranker.score(g.features, g.names)
        top = np.argsort(-s, kind="stable")[:k]
        dcg = float((g.labels[top] > 0) @ disc[: len(top)])
        ideal = float(disc[: min(max(g.n_relevant, 1), k)].sum())
        out[n] = dcg / ideal
    return out


def ndcg_of(ranker: Ranker, groups: Sequence[Group], k: int = 10) -> float:
    """Mean of :func:`ndcg_per_group`."""
    return float(ndcg_per_group(ranker, groups, k).mean()) if groups else 0.0


#: negatives kept per group when a ranker is fitted (all positives stay)
MAX_NEGATIVES = 50


def subsample(groups: Sequence[Group], max_negatives: int, seed: int = 0) -> list[Group]:
    """Each group with every positive and at most ``max_negatives`` negatives drawn at random:
    a lambdarank fit learns from the pairs a positive makes, and an offline group of ~300
    candidates with one or two positives is mostly pairs of the same kind (6x fewer rows,
    a fit in a sixth of the time). For fitting only: validation keeps whole groups."""
    rng = np.random.default_rng(seed)
    out: list[Group] = []
    for g in groups:
        neg = np.flatnonzero(g.labels <= 0)
        if len(neg) <= max_negatives:
            out.append(g)
            continue
        keep = np.sort(
            np.concatenate(
                [np.flatnonzero(g.labels > 0), rng.choice(neg, max_negatives, replace=False)]
            )
        )
        out.append(Group(g.features[keep], g.names, g.labels[keep], g.n_relevant, g.origin))
    return out


def fit_lambdarank(
    groups: Sequence[Group],
    *,
    rounds: int = 150,
    seed: int = 0,
    threads: int = 1,
    max_negatives: int | None = MAX_NEGATIVES,
) -> LearnedRanker:
    """LightGBM ``lambdarank`` on ``groups`` (each a query; labels 0/1), each group cut to
    ``max_negatives`` negatives (None: whole groups)."""
    import lightgbm as lgb

    if max_negatives is not None:
        groups = subsample(groups, max_negatives, seed)
    x, y, sizes, names = stack(groups)
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "lambdarank_truncation_level": 20,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": threads,
        "seed": seed,
        "deterministic": True,
        "verbosity": -1,
    }
    ds = lgb.Dataset(x, y, group=sizes, feature_name=[_safe(n) for n in names])
    booster = lgb.train(params, ds, num_boost_round=rounds)
    return LearnedRanker(booster, names)


def _safe(name: str) -> str:
    """LightGBM feature names may not hold JSON special characters."""
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


# -- online evidence ----------------------------------------------------------------------------
class ImpressionLog:
    """The feature rows of what was shown, labelled by what each user did next.

    A list shown to a user becomes an online :class:`Group` (its rows as the ranker saw them
    at serving time, so training never sees features computed after the fact); a later like
    of one of its movies by that user turns that row's label to 1. Bounded: the oldest lists
    go first. Held in memory only: after a restart online evidence starts again (the offline
    held-out slice still trains the ranker).
    """

    def __init__(self, capacity: int = 5_000) -> None:
        self.capacity = capacity
        self.groups: deque[tuple[int, Group, list[int]]] = deque()
        self.pending: dict[tuple[int, int], tuple[Group, int]] = {}

    def add(
        self, user_idx: int, movie_idx: Sequence[int], features: np.ndarray, names: Sequence[str]
    ) -> None:
        if len(movie_idx) == 0:
            return
        g = Group(
            features.astype(np.float32),
            tuple(names),
            np.zeros(len(movie_idx), dtype=np.float32),
            0,
            "online",
        )
        self.groups.append((user_idx, g, list(movie_idx)))
        for row, m in enumerate(movie_idx):
            self.pending[(user_idx, int(m))] = (g, row)
        while len(self.groups) > self.capacity:
            u, _, movies = self.groups.popleft()
            for m in movies:
                self.pending.pop((u, m), None)

    def like(self, user_idx: int, movie_idx: int) -> None:
        hit = self.pending.get((user_idx, movie_idx))
        if hit is not None:
            g, row = hit
            g.labels[row] = 1.0
            g.n_relevant = int(g.labels.sum())

    def snapshot(self) -> list[Group]:
        """Copies of the logged groups, oldest first."""
        return [
            Group(g.features, g.names, g.labels.copy(), g.n_relevant, g.origin)
            for _, g, _ in self.groups
        ]

    def clear(self) -> None:
        self.groups.clear()
        self.pending.clear()
