"""The recommender interface and the non-personal recommenders.

A recommender turns a user's context into one score per catalogue movie (dense ids), or
``None`` when it has nothing to say for this user (e.g. a genre recommender for a user with
no genre signal). The serving policy (``policy.py``) does everything else: removing seen and
hidden movies, mixing sources, exploration, exactly-k. Personal models plug in the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from cinerec.engine.state import Catalog, UserState


class Recommender(ABC):
    """Scores every movie of the catalogue for one user."""

    #: the ``source`` label shown with each movie it contributes ("why this?")
    name: str

    @abstractmethod
    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        """Return shape ``(catalog.n,)`` float scores, higher is better, or None to abstain.

        The array may be shared and cached: callers must not modify it.
        """


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


NON_PERSONAL: tuple[type[Recommender], ...] = (
    PopularRecommender,
    LikeRateRecommender,
    TopRatedRecommender,
    NewestRecommender,
    GenreTopRecommender,
)
