"""The recommender interface and every serving source: the non-personal ones and trained models.

A recommender turns a user's context into one score per catalogue movie (dense ids), or
``None`` when it has nothing to say for this user (e.g. a genre recommender for a user with
no genre signal). The serving policy (``policy.py``) does everything else: removing seen and
hidden movies, mixing sources, exploration, exactly-k. Trained personal models plug in the
same way (:class:`ModelRecommender`; training itself is :mod:`cinerec.training`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
from scipy import sparse

from cinerec.domain import ModelRecord
from cinerec.engine.state import Catalog, UserState
from cinerec.models import Model
from cinerec.models.features import cold_item_features


class Recommender(ABC):
    """Scores every movie of the catalogue for one user."""

    #: the ``source`` label shown with each movie it contributes ("why this?")
    name: str

    @abstractmethod
    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        """Return shape ``(catalog.n,)`` float scores, higher is better, or None to abstain.

        The array may be shared and cached: callers must not modify it.
        """

    def explain(self, user: UserState, catalog: Catalog, idx: int) -> list[int]:
        """The user's liked movies (dense ids) that raised this source's score of ``idx``
        most, strongest first ("because you liked …"); empty when the score does not come
        from the user's likes. Called for the few movies of a list, never for every
        candidate."""
        return []

    def explain_many(
        self, user: UserState, catalog: Catalog, idxs: Sequence[int]
    ) -> list[list[int]]:
        """:meth:`explain` for several movies of one list (sources may share work)."""
        return [self.explain(user, catalog, i) for i in idxs]


def _unit(x: np.ndarray) -> np.ndarray:
    """Rescale to [0, 1] (a constant array maps to zeros)."""
    lo, hi = float(x.min(initial=0.0)), float(x.max(initial=0.0))
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


class PopularRecommender(Recommender):
    """Most interest lately: likes, views and bookmarks, decayed with a half-life."""

    name = "popular"

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        pop = catalog.popularity()
        return pop if pop.any() else None


class TopRatedRecommender(Recommender):
    """Bayesian-average rating (the "top IMDb" cold start). Likes count as 5 stars and
    dislikes as 1, so a likes-only catalogue still has a meaningful "top rated"."""

    name = "top_rated"

    def __init__(self, prior_count: float = 20.0) -> None:
        self.prior_count = prior_count

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        if not catalog.rating_cnt[: catalog.n].any():
            return None
        return catalog.bayesian_rating(self.prior_count)


class LikeRateRecommender(Recommender):
    """Share of a movie's audience that liked it: positive signals per impression, smoothed
    towards the catalogue's mean rate (a Beta prior of ``prior_count`` impressions).

    Unlike raw popularity it does not reward a movie for having been shown a lot (the
    feedback loop of popularity ranking), and a movie liked by 3 of its 5 viewers ranks
    above one liked by 30 of its 500.
    """

    name = "like_rate"

    def __init__(self, prior_count: float = 10.0) -> None:
        self.prior_count = prior_count

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        pos = catalog.positive_cnt[: catalog.n]
        if not pos.any():
            return None
        # A movie liked without being shown here (found elsewhere) has seen at least those.
        seen = np.maximum(catalog.shown_cnt[: catalog.n], pos)
        mean = pos.sum() / max(seen.sum(), 1.0)
        return (pos + self.prior_count * mean) / (seen + self.prior_count)


#: exposure and co-like counts of item_to_item travel in one float: E + _PACK * C (E < _PACK)
_PACK = 1024.0


class ItemToItemRecommender(Recommender):
    """Movies liked by the users who liked what this user liked, per impression.

    For a candidate ``i`` and each recent like ``j`` of the user, it estimates how likely
    ``i`` is liked by someone who liked ``j``, among those of them who met ``i`` (were shown
    it or acted on it): ``(C[j,i] + a*p[i]) / (E[j,i] + a)``, where ``C`` counts co-likes,
    ``E`` counts likers of ``j`` who met ``i``, and ``p`` is the movie's like rate (the
    ``like_rate`` source), the prior of strength ``a``. Movies that the likers of ``j`` were
    shown and passed over sink; movies nobody asked about keep their like rate. The evidence
    of the likes adds up in log-odds-like form, damped by ``sqrt(#likes)``:

        log s[i] = log p[i] + sum_j (log1p(C[j,i] / (a*p[i])) - log1p(E[j,i] / a)) / sqrt(J)

    which equals ``sum_j log((C + a*p) / (E + a)) - log p`` term by term and needs only the
    non-zero counts. For a user with no likes it is the like rate itself; it abstains for a
    user whose likes nobody else shares yet.

    Counting on exposure, not on raw co-occurrence, is what keeps the popular movies (shown
    to everyone) from winning every neighbourhood. Counts come from the users' histories at
    request time (the ``max_likers`` most recent likers of each ``j``, and the ``history``
    movies each of them met last), so every like and every impression counts from the next
    request on; there is no item-by-item table to keep.
    """

    name = "item_to_item"

    def __init__(
        self,
        like_rate: LikeRateRecommender,
        user_of: Callable[[int], UserState],
        *,
        recent: int = 20,
        max_likers: int = 100,
        history: int = 100,
        prior: float = 5.0,
    ) -> None:
        self.like_rate = like_rate
        self.user_of = user_of
        self.recent = recent
        if max_likers >= _PACK:
            raise ValueError(f"max_likers must stay below {_PACK}")
        self.max_likers = max_likers
        self.history = history
        self.prior = prior
        self._cache_key: tuple[int, int, int, int] | None = None
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        p = self.like_rate.scores(user, catalog)
        counts = self.counts(user, catalog)
        if p is None or counts is None:
            # No likes, or nobody else likes what this user likes (yet): nothing item-to-item
            # can add (the like rate is a source of its own).
            return None
        cols, c, e, _ = counts
        n = catalog.n
        pa = np.maximum(p, 1e-12) * self.prior
        lift = np.bincount(cols, np.log1p(c / pa[cols]), minlength=n)
        lift -= np.bincount(cols, np.log1p(e / self.prior), minlength=n)
        assert user is not None
        likes = min(len(user.recent_likes), self.recent)
        return np.exp(np.log(np.maximum(p, 1e-12)) + lift / np.sqrt(likes))

    def explain(self, user: UserState, catalog: Catalog, idx: int) -> list[int]:
        """The user's recent likes whose likers also like ``idx``, by co-likes per
        ``sqrt(likers(j) * likers(idx))`` (the neighbourhoods this source scores from)."""
        return self.explain_many(user, catalog, [idx])[0]

    def explain_many(
        self, user: UserState, catalog: Catalog, idxs: Sequence[int]
    ) -> list[list[int]]:
        # One table of who likes which of the user's recent likes serves every movie of the
        # list: per movie, one lookup of its likers instead of one intersection per like.
        likes = [j for j in list(user.recent_likes)[-self.recent :] if catalog.likers.get(j)]
        groups = [np.array(catalog.likers[j], dtype=np.int32) for j in likes]  # copies
        groups = [g[g != user.idx] for g in groups]
        out: list[list[int]] = [[] for _ in idxs]
        if not any(len(g) for g in groups):
            return out
        members = np.unique(np.concatenate(groups))
        table = np.zeros((len(members), len(likes)), dtype=np.float64)
        for col, g in enumerate(groups):
            table[np.searchsorted(members, g), col] = 1.0
        sizes = table.sum(axis=0)
        for n, i in enumerate(idxs):
            theirs = np.array(catalog.likers.get(i) or (), dtype=np.int32)
            if not len(theirs):
                continue
            pos = np.minimum(np.searchsorted(members, theirs), len(members) - 1)
            co = table[pos[members[pos] == theirs]].sum(axis=0)
            score = co / np.sqrt(len(theirs) * np.maximum(sizes, 1.0))
            score[[j == i for j in likes]] = 0.0
            out[n] = [likes[c] for c in np.argsort(-score, kind="stable") if score[c] > 0]
        return out

    def counts(
        self, user: UserState | None, catalog: Catalog
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Per (like j, movie i) pair met by the likers of j: ``(i, C, E, likers of j)``, the
        co-likes and exposures, as flat arrays; None without likes or neighbours. Cached for
        the last user until the engine's state moves (``catalog.tick``): ``item_to_item``
        and ``co_likes`` share one computation per request."""
        if user is None or not user.recent_likes:
            return None
        key = (id(catalog), catalog.tick, user.idx, len(user.seen_log))
        if self._cache_key == key:
            return self._cache
        self._cache_key, self._cache = key, self._counts(user, catalog)
        return self._cache

    def _counts(
        self, user: UserState, catalog: Catalog
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        n = catalog.n
        likes = list(user.recent_likes)[-self.recent :]
        # Neighbours: the recent likers of each of the user's likes (not the user).
        groups: list[np.ndarray] = []
        for j in likes:
            who = catalog.likers.get(j)
            # Copies, never views: an array exporting its buffer could not grow any more.
            g = np.array(who or (), dtype=np.int32)
            g = g[g != user.idx][-self.max_likers :]
            groups.append(g)
        sizes = np.array([len(g) for g in groups])
        if not sizes.sum():
            return None
        members, pos = np.unique(np.concatenate(groups), return_inverse=True)
        # a[j, u] = 1 when neighbour u likes j; E = a @ met, C = a @ liked (J x n, sparse).
        a = sparse.csr_matrix(
            (np.ones(len(pos), np.float32), pos, np.concatenate([[0], np.cumsum(sizes)])),
            shape=(len(likes), len(members)),
        )
        both = (a @ self._histories([self.user_of(int(u)) for u in members], n)).tocsr()
        # One product carries both counts: exposure E plus _PACK x co-likes C.
        c, e = np.divmod(both.data, _PACK)
        rows = np.repeat(np.arange(len(likes)), np.diff(both.indptr))
        return both.indices, c, e, sizes[rows]

    def _histories(self, users: Sequence[UserState], n: int) -> sparse.csr_matrix:
        """A row per user over the ``history`` movies they met last: 1 for met, 1 + _PACK
        for met and liked (a co-like never outnumbers its exposure)."""
        h = self.history
        # Slices of array.array are copies: the histories can keep growing.
        idx = [np.array(v.seen_log[-h:], dtype=np.int32) for v in users]
        flags = [np.array(v.seen_liked[-h:], dtype=np.float64) for v in users]
        indptr = np.concatenate([[0], np.cumsum([len(x) for x in idx])])
        cols = np.concatenate(idx)
        data = 1.0 + _PACK * np.concatenate(flags)
        return sparse.csr_matrix((data, cols, indptr), shape=(len(users), n))


class CoLikesRecommender(Recommender):
    """Plain co-occurrence of the user's recent likes, cosine-normalised:
    ``sum_j C[j,i] / sqrt(likers(j) * positives(i))`` over the same neighbours as
    ``item_to_item``. Where likes come without impressions (imported history) the per-impression
    estimate has no exposure to count, and this is the estimate that still ranks."""

    name = "co_likes"

    def __init__(self, item_to_item: ItemToItemRecommender) -> None:
        self.item_to_item = item_to_item

    def explain(self, user: UserState, catalog: Catalog, idx: int) -> list[int]:
        return self.item_to_item.explain(user, catalog, idx)

    def explain_many(
        self, user: UserState, catalog: Catalog, idxs: Sequence[int]
    ) -> list[list[int]]:
        return self.item_to_item.explain_many(user, catalog, idxs)

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        counts = self.item_to_item.counts(user, catalog)
        if counts is None:
            return None
        cols, c, _, likers = counts
        pos = np.maximum(catalog.positive_cnt[: catalog.n], 1.0)
        w = c / np.sqrt(np.maximum(likers, 1) * pos[cols])
        out = np.bincount(cols, w, minlength=catalog.n)
        return out if out.any() else None


def genre_profile(user: UserState | None, catalog: Catalog) -> np.ndarray | None:
    """The user's genre weights (sum 1): favourite genres if set, else genres of their likes."""
    if user is None:
        return None
    g = len(catalog.genres)
    prof = np.zeros(g, dtype=np.float32)
    if user.favorite_genres:
        for name in user.favorite_genres:
            gi = catalog.genres.get(name)
            if gi is not None:
                prof[gi] += 1.0
    else:
        for idx in user.recent_likes:
            for gi in catalog.movie_genres[idx]:
                prof[gi] += 1.0
        for idx in user.disliked:
            for gi in catalog.movie_genres[idx]:
                prof[gi] -= 0.5
        np.clip(prof, 0.0, None, out=prof)
    total = prof.sum()
    return prof / total if total > 0 else None


class GenreTopRecommender(Recommender):
    """Best movies of the genres the user cares about: genre match x quality, where quality
    blends the Bayesian rating and popularity."""

    name = "genre_top"

    def __init__(self, prior_count: float = 20.0) -> None:
        self.prior_count = prior_count

    def quality(self, catalog: Catalog) -> np.ndarray:
        rating = _unit(catalog.bayesian_rating(self.prior_count))
        pop = _unit(np.log1p(_unit(catalog.popularity()) * 1000.0))
        return 0.6 * rating + 0.4 * pop

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        prof = genre_profile(user, catalog)
        if prof is None:
            return None
        match = catalog.genre_matrix() @ prof  # (n,) share of the profile each movie covers
        return match.astype(np.float64) * (0.25 + self.quality(catalog))


class GenrePopularRecommender(Recommender):
    """Popularity seen through the user's genres: ``popularity[i] x lift[i]``, where the lift
    is how much more the user's likes fall in movie ``i``'s genres than everyone's do,

        lift[i] = sum_g∈G(i) taste[g] / sum_g∈G(i) share[g],

    ``share`` = the genres' share of all positive signals (popularity-weighted), ``taste`` =
    the user's genre profile shrunk towards ``share`` by ``prior_count`` likes (one like does
    not rule out every other genre). A naive-Bayes reading of "what people like, among what
    this user likes": no weight set by hand, and it abstains without a genre profile.
    """

    name = "genre_popular"

    def __init__(self, prior_count: float = 3.0) -> None:
        self.prior_count = prior_count
        #: (catalogue, tick) -> genre shares; one tuple, so a reader on another thread never
        #: pairs one catalogue's key with another's shares
        self._cache: tuple[tuple[int, int], np.ndarray] | None = None

    def _genre_share(self, catalog: Catalog) -> np.ndarray:
        key = (id(catalog), catalog.tick)
        cached = self._cache
        if cached is not None and cached[0] == key:
            return cached[1]
        gm = catalog.genre_matrix()
        share = gm.T.astype(np.float64) @ catalog.popularity()
        total = share.sum()
        g = gm.shape[1]
        share = share / total if total > 0 else np.full(g, 1.0 / max(g, 1))
        self._cache = (key, share)
        return share

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        prof = genre_profile(user, catalog)
        pop = catalog.popularity()
        if prof is None or user is None or not pop.any():
            return None
        share = self._genre_share(catalog)
        n = float(len(user.recent_likes) or len(user.favorite_genres) or 1)
        taste = (n * prof + self.prior_count * share) / (n + self.prior_count)
        gm = catalog.genre_matrix()
        expected = gm @ share
        lift = np.where(expected > 0, (gm @ taste) / np.maximum(expected, 1e-12), 1.0)
        return pop * lift


class NewestRecommender(Recommender):
    """Newest additions first, leaning to the user's genres: gives cold movies their first
    audience among the users most likely to like them."""

    name = "newest"

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        created = catalog.created[: catalog.n]
        if not created.any():
            return None
        # Rank-based recency in (0, 1]: robust to bulk loads with near-identical times.
        recency = np.empty(catalog.n, dtype=np.float64)
        recency[np.argsort(created, kind="stable")] = np.arange(1, catalog.n + 1) / catalog.n
        prof = genre_profile(user, catalog)
        if prof is None:
            return recency
        match = catalog.genre_matrix() @ prof
        return recency * (0.2 + match.astype(np.float64))


class ModelRecommender(Recommender):
    """A trained model as a serving source: folds the user's current row in on every request,
    so a new like changes the very next list without retraining.

    The model speaks its own dense ids (those of the process that trained it); ``item_ids`` /
    ``user_ids`` (external, saved beside the artifact) map them onto this engine's ids, so a
    model trained by a separate worker serves correctly here.

    Catalogue movies the model does not know (added after training, or without interactions
    then) get -inf, except from models that score unknown items from their features
    (:meth:`cinerec.models.Model.score_cold_items`, LightFM): their genre and decade rows are
    built once per catalogue change with the vocabulary saved with the model.
    """

    positive_only = False

    def __init__(
        self,
        model: Model,
        record: ModelRecord,
        item_ids: list[str],
        user_ids: list[str],
        catalog: Catalog,
    ) -> None:
        self.model = model
        self.record = record
        self.name = record.kind
        self.item_ids = item_ids
        self.user_ids = user_ids
        self.user_index = {u: i for i, u in enumerate(user_ids)}
        self._cold_key: tuple[int, int, int] | None = None
        self._cold: tuple[np.ndarray, sparse.csr_matrix] | None = None
        # model item -> catalogue idx (allocating inactive entries for ids not seen here)
        self.to_catalog = np.fromiter(
            (catalog.index(m) for m in item_ids), dtype=np.int64, count=len(item_ids)
        )
        self.from_catalog = np.full(catalog.n, -1, dtype=np.int64)
        self.from_catalog[self.to_catalog] = np.arange(len(item_ids))

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        if user is None or not user.interactions:
            return None
        if len(self.from_catalog) < catalog.n:
            grown = np.full(catalog.n, -1, dtype=np.int64)
            grown[: len(self.from_catalog)] = self.from_catalog
            self.from_catalog = grown
        idx = np.fromiter(user.interactions.keys(), dtype=np.int64, count=len(user.interactions))
        val = np.fromiter(user.interactions.values(), dtype=np.float32, count=len(idx))
        cols = self.from_catalog[idx]
        known = cols >= 0
        row = sparse.csr_matrix(
            (val[known], (np.zeros(int(known.sum()), dtype=np.int64), cols[known])),
            shape=(1, self.model.n_items),
        )
        uid = self.user_index.get(user.id)
        s = self.model.score_user(row, None, uid)
        out = np.full(catalog.n, -np.inf, dtype=np.float64)
        out[self.to_catalog] = s[: len(self.to_catalog)]
        cold = self._cold_items(catalog)
        if cold is not None:
            ids = None if uid is None else np.asarray([uid], dtype=np.int64)
            cs = self.model.score_cold_items(row, cold[1], None, ids)
            if cs is not None:
                out[cold[0]] = cs[0]
        return out

    def explain(self, user: UserState, catalog: Catalog, idx: int) -> list[int]:
        return self.explain_many(user, catalog, [idx])[0]

    def explain_many(
        self, user: UserState, catalog: Catalog, idxs: Sequence[int]
    ) -> list[list[int]]:
        """The user's liked movies that add most to the model's score of each movie
        (:meth:`cinerec.models.Model.explain` on the same row the score folds in)."""
        out: list[list[int]] = [[] for _ in idxs]
        size = len(self.from_catalog)
        cols = [int(self.from_catalog[i]) if i < size else -1 for i in idxs]
        asked = [n for n, m in enumerate(cols) if 0 <= m < self.model.n_items]
        if not asked or not user.interactions:
            return out
        mine = np.fromiter(user.interactions.keys(), dtype=np.int64)
        val = np.fromiter(user.interactions.values(), dtype=np.float32, count=len(mine))
        inside = mine < size
        where, val = self.from_catalog[mine[inside]], val[inside]
        known = where >= 0
        row = sparse.csr_matrix(
            (val[known], (np.zeros(int(known.sum()), dtype=np.int64), where[known])),
            shape=(1, self.model.n_items),
        )
        found = self.model.explain(row, [cols[n] for n in asked])
        for n, (items, _) in zip(asked, found, strict=True):
            liked = (int(self.to_catalog[j]) for j in items)
            out[n] = [i for i in liked if user.likes(i)]
        return out

    def _cold_items(self, catalog: Catalog) -> tuple[np.ndarray, sparse.csr_matrix] | None:
        """Active catalogue movies unknown to the model and their side-feature rows (cached
        until the catalogue changes); None when the model has no named item features."""
        names = self.model.item_feature_names
        if not names:
            return None
        key = (id(catalog), catalog.version, catalog.n)
        if key != self._cold_key:
            known = np.zeros(catalog.n, dtype=bool)
            known[self.to_catalog[self.to_catalog < catalog.n]] = True
            idx = np.flatnonzero(catalog.active[: catalog.n] & ~known)
            self._cold = None
            if len(idx):
                feats = cold_item_features(
                    [catalog.genre_names(int(i)) for i in idx],
                    [catalog.years[int(i)] for i in idx],
                    names,
                )
                self._cold = (idx, feats)
            self._cold_key = key
        return self._cold
