"""The recommendation engine: serving state + recommenders + policy, behind one lock.

Knows nothing of HTTP or SQL: the service layer (``cinerec.service``) feeds it from the store
and calls it from the API, the CLI, the simulator and the trainer alike.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cinerec.config import EventWeights
from cinerec.domain import Event, EventKind, Movie
from cinerec.engine.ids import IdMap
from cinerec.engine.policy import BlendPart, Pick, ServingPolicy, top_n
from cinerec.engine.recommenders import (
    GenreTopRecommender,
    ItemToItemRecommender,
    LikeRateRecommender,
    NewestRecommender,
    PopularRecommender,
    Recommender,
    TopRatedRecommender,
)
from cinerec.engine.state import (
    DISLIKE_STARS,
    LIKE_STARS,
    Catalog,
    SourceTally,
    UserState,
    event_weight,
)


@dataclass(frozen=True, slots=True)
class Recommended:
    movie_id: str
    source: str
    score: float


class UnknownSourceError(ValueError):
    pass


class Engine:
    def __init__(
        self,
        weights: EventWeights | None = None,
        *,
        exploration_share: float = 0.2,
        exploration_saturation: float = 0.8,
        half_life_days: float = 30.0,
        prior_count: float = 20.0,
        seed: int | None = None,
    ) -> None:
        self.weights = weights or EventWeights()
        self.half_life_days = half_life_days
        self.policy = ServingPolicy(exploration_share, seed, exploration_saturation)
        self.lock = threading.RLock()
        self.recommenders: dict[str, Recommender] = {}
        #: name of the personal model in the default blend (set by the trainer); with
        #: ``personal_pool`` set, the pool's best online performer instead (see pick_personal)
        self.personal: str | None = None
        #: models competing for the personal share on live traffic (set by the trainer)
        self.personal_pool: list[str] = []
        self._rng = np.random.default_rng(seed)
        #: bumped by reset(); lets long jobs notice the state they started from is gone
        self.generation = 0
        self.prior_count = prior_count
        self.genre_top_source = GenreTopRecommender(prior_count)
        like_rate = LikeRateRecommender()
        for rec in (
            PopularRecommender(),
            like_rate,
            ItemToItemRecommender(like_rate, lambda idx: self.users[idx]),
            TopRatedRecommender(prior_count),
            NewestRecommender(),
            self.genre_top_source,
        ):
            self.register(rec)
        self._builtin = set(self.recommenders)
        self.reset()

    # -- state -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all state. Trained models go too: their dense ids would no longer match."""
        with self.lock:
            for name in set(self.recommenders) - self._builtin:
                del self.recommenders[name]
            self.personal = None
            self.personal_pool = []
            self.generation += 1
            self.catalog = Catalog(self.half_life_days)
            self.user_ids = IdMap()
            self.users: dict[int, UserState] = {}
            self.n_events = 0
            #: per source label: what it showed and how much of that was liked
            self.tallies: dict[str, SourceTally] = defaultdict(SourceTally)

    def register(self, rec: Recommender) -> None:
        """Add or replace a recommender (personal models register themselves here)."""
        with self.lock:
            self.recommenders[rec.name] = rec

    def user(self, user_id: str, create: bool = True) -> UserState | None:
        idx = self.user_ids.get(user_id)
        if idx is None:
            if not create:
                return None
            idx = self.user_ids.add(user_id)
            self.users[idx] = UserState(idx, user_id)
        return self.users[idx]

    # -- writes ------------------------------------------------------------------------
    def upsert_movies(self, movies: Iterable[Movie]) -> None:
        with self.lock:
            for m in movies:
                self.catalog.upsert(m)

    def set_hidden(self, movie_id: str, hidden: bool) -> None:
        with self.lock:
            idx = self.catalog.ids.get(movie_id)
            if idx is not None:
                self.catalog.hidden[idx] = hidden

    def set_favorite_genres(self, user_id: str, genres: Sequence[str]) -> None:
        with self.lock:
            u = self.user(user_id)
            assert u is not None
            u.favorite_genres = list(genres)

    def apply_events(self, events: Iterable[Event]) -> None:
        """Fold new events into the serving state (call once per stored event)."""
        w = self.weights
        cat = self.catalog
        with self.lock:
            for e in events:
                u = self.user(e.user_id)
                assert u is not None
                i = cat.index(e.movie_id)
                weight = event_weight(e, w)
                u.n_events += 1
                self.n_events += 1
                u.see(i)
                if e.kind is EventKind.NOT_INTERESTED:
                    continue
                if weight is not None:
                    u.interactions[i] = weight
                    u.interaction_ts[i] = e.ts
                if weight is not None and weight > 0:
                    if i in u.disliked:
                        u.disliked.discard(i)
                    if weight >= 0.5 or e.kind is EventKind.LIKE:
                        if i not in u.recent_likes:
                            u.recent_likes.append(i)
                        if not u.likes(i):
                            cat.add_liker(i, u)
                            if source := u.shown.get(i):
                                self.tallies[source].liked += 1
                    cat.add_positive(i, weight, e.ts)
                elif weight is not None and weight < 0:
                    u.disliked.add(i)
                    if i in u.recent_likes:
                        u.recent_likes.remove(i)
                    cat.remove_liker(i, u)
                if e.kind is EventKind.RATING and e.value is not None:
                    cat.add_rating(i, e.value)
                elif e.kind is EventKind.LIKE:
                    cat.add_rating(i, LIKE_STARS)
                elif e.kind is EventKind.DISLIKE:
                    cat.add_rating(i, DISLIKE_STARS)

    def mark_shown(
        self, user_id: str, movie_ids: Sequence[str], sources: Sequence[str] = ()
    ) -> None:
        """Record what a user was shown (``sources``: which source chose each movie)."""
        with self.lock:
            u = self.user(user_id)
            assert u is not None
            for n, mid in enumerate(movie_ids):
                i = self.catalog.ids.get(mid)
                if i is not None:
                    self._shown(u, i, sources[n] if n < len(sources) else "")

    def _shown(self, u: UserState, i: int, source: str) -> None:
        if i not in u.shown:
            u.shown[i] = source
            u.see(i)
            self.catalog.shown_cnt[i] += 1
            if source:
                tally = self.tallies[source]
                tally.shown += 1
                if u.likes(i):  # replaying the rec log after the events (start-up)
                    tally.liked += 1

    # -- online model choice -------------------------------------------------------------
    def pick_personal(self) -> str | None:
        """The personal model for one request.

        With several models in ``personal_pool``, each request draws one by Thompson
        sampling on the like rate of what each model showed (Beta(1 + liked, 1 + not
        liked)): an A/B test that moves traffic to the model users like best as evidence
        comes in, and never quite stops checking the others. Otherwise ``personal``.
        """
        pool = [m for m in self.personal_pool if m in self.recommenders]
        if len(pool) < 2:
            return pool[0] if pool else self.personal
        draws = [
            self._rng.beta(1 + t.liked, 1 + max(t.shown - t.liked, 0))
            for t in (self.tallies[m] for m in pool)
        ]
        return pool[int(np.argmax(draws))]

    # -- reads -------------------------------------------------------------------------
    def blend_for(self, u: UserState | None) -> list[BlendPart]:
        """The default mix of sources for this user (personal models, when registered,
        join it; see :meth:`register`)."""
        r = self.recommenders
        likes = u is not None and bool(u.recent_likes)
        # Shares tuned with the closed-loop simulator (docs/simulation.md). item_to_item
        # (co-likes per impression; the like rate for a user with no likes) carries most
        # slots: it hit more per slot than the personal model there (0.26 vs 0.24 on
        # ML-100K), and together they beat either alone. Cold movies reach warm users
        # through exploration (least-shown first, ranked by this blend), so "newest"
        # serves only users the service knows nothing about.
        personal = self.pick_personal() if u is not None and u.interactions else None
        if personal:
            mix = [("item_to_item", 0.7), (personal, 0.3)]
        elif likes:
            mix = [("item_to_item", 0.8), ("genre_top", 0.2)]
        elif u is not None and u.favorite_genres:
            mix = [("genre_top", 0.5), ("item_to_item", 0.4), ("newest", 0.1)]
        else:
            mix = [("item_to_item", 0.9), ("newest", 0.1)]
        return [BlendPart(r[name], w) for name, w in mix if name in r]

    def genre_mask(self, genres: Sequence[str]) -> np.ndarray:
        mask = np.zeros(self.catalog.n, dtype=bool)
        gm = self.catalog.genre_matrix()
        for g in genres:
            gi = self.catalog.genres.get(g)
            if gi is not None:
                mask |= gm[:, gi] > 0
        return mask

    def recommend(
        self,
        user_id: str,
        k: int,
        *,
        source: str | None = None,
        exclude: Sequence[str] = (),
        genres: Sequence[str] = (),
        explore: bool = True,
        mark_shown: bool = True,
    ) -> list[Recommended]:
        """Top-``k`` movies for a user, each with the source that chose it.

        ``source`` forces one recommender (``popular``, ``top_rated``, …); default is the
        blend of :meth:`blend_for`. With ``mark_shown`` the answer joins the user's
        never-show-again set before the lock is released, so concurrent requests of the
        same user never overlap.
        """
        with self.lock:
            u = self.user(user_id, create=mark_shown)
            if source:
                if source not in self.recommenders:
                    raise UnknownSourceError(source)
                parts = [BlendPart(self.recommenders[source], 1.0)]
            else:
                parts = self.blend_for(u)
            ex = [i for i in (self.catalog.ids.get(m) for m in exclude) if i is not None]
            only = self.genre_mask(genres) if genres else None
            picks = self.policy.recommend(
                u, self.catalog, parts, k, exclude=ex, only=only, explore=explore
            )
            if mark_shown and u is not None:
                for p in picks:
                    self._shown(u, p.idx, p.source)
            return self._external(picks)

    def _external(self, picks: Sequence[Pick]) -> list[Recommended]:
        ext = self.catalog.ids.external
        return [Recommended(ext(p.idx), p.source, p.score) for p in picks]

    def genre_top(
        self, user_id: str | None, limit: int, genres: Sequence[str] | None = None
    ) -> list[str]:
        """Top-rated movies of the user's favourite genres (or of ``genres``), else overall.
        A catalogue listing: it ignores what the user has seen."""
        with self.lock:
            cat = self.catalog
            u = self.user(user_id, create=False) if user_id else None
            favs = list(genres) if genres is not None else (u.favorite_genres if u else [])
            ok = cat.servable.copy()
            if favs:
                ok &= self.genre_mask(favs)
            scores = cat.bayesian_rating(self.prior_count)
            # Break rating ties (e.g. a catalogue with no ratings yet) by popularity.
            scores = scores + 1e-9 * np.log1p(cat.popularity())
            return cat.ids.externals(top_n(scores, ok, limit, positive_only=False))

    def similar(self, movie_id: str, k: int) -> list[Recommended] | None:
        """Movies like this one: shared genres, then quality. None for an unknown movie."""
        with self.lock:
            cat = self.catalog
            i = cat.ids.get(movie_id)
            if i is None or not cat.active[i]:
                return None
            gm = cat.genre_matrix()
            g = gm[i]
            inter = gm @ g
            union = gm.sum(axis=1) + g.sum() - inter
            jacc = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
            quality = self.genre_top_source.quality(cat)
            scores = jacc.astype(np.float64) + 0.1 * quality
            ok = cat.servable.copy()
            ok[i] = False
            idx = top_n(scores, ok, k, positive_only=True)
            return [
                Recommended(cat.ids.external(int(j)), "similar_genres", float(scores[j]))
                for j in idx
            ]

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "movies": int(self.catalog.servable.sum()),
                "users": len(self.users),
                "events": self.n_events,
                "sources": {
                    name: {"shown": t.shown, "liked": t.liked, "like_rate": round(t.like_rate, 4)}
                    for name, t in sorted(self.tallies.items())
                },
            }
