"""The recommendation engine: serving state + recommenders + policy, behind one lock.

Knows nothing of HTTP or SQL: the service layer (``cinerec.service``) feeds it from the store
and calls it from the API, the CLI, the simulator and the trainer alike.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cinerec.config import EventWeights
from cinerec.domain import Event, EventKind, Movie
from cinerec.engine.ids import IdMap
from cinerec.engine.policy import BlendPart, Pick, ServingPolicy, top_n
from cinerec.engine.ranking import Candidates, ImpressionLog, Ranker, gather
from cinerec.engine.recommenders import (
    CoLikesRecommender,
    GenrePopularRecommender,
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


#: likers of a movie whose other likes make its "similar movies"
SIMILAR_LIKERS = 500


class Engine:
    def __init__(
        self,
        weights: EventWeights | None = None,
        *,
        exploration_share: float = 0.2,
        exploration_saturation: float = 0.8,
        half_life_days: float = 30.0,
        prior_count: float = 20.0,
        evidence_share: float = 0.25,
        seed: int | None = None,
    ) -> None:
        self.weights = weights or EventWeights()
        self.half_life_days = half_life_days
        self.policy = ServingPolicy(exploration_share, seed, exploration_saturation)
        self.lock = threading.RLock()
        self.recommenders: dict[str, Recommender] = {}
        #: the personal model with the best held-out figure (reports; set by the trainer)
        self.personal: str | None = None
        #: personal models that propose candidates to the ranker (set by the trainer)
        self.personal_pool: list[str] = []
        #: orders the candidates of the default list (None until one is trained: then a
        #: bandit over the sources fills the list)
        self.ranker: Ranker | None = None
        self.impressions = ImpressionLog()
        #: share of the default lists that ask every source and log their feature rows
        #: (online evidence for the next ranker); the others ask only the sources the
        #: serving ranker reads, plus the one the bandit draws
        self.evidence_share = evidence_share
        self._rng = np.random.default_rng(seed)
        #: bumped by reset(); lets long jobs notice the state they started from is gone
        self.generation = 0
        self.prior_count = prior_count
        self.genre_top_source = GenreTopRecommender(prior_count)
        like_rate = LikeRateRecommender()
        item_to_item = ItemToItemRecommender(like_rate, lambda idx: self.users[idx])
        for rec in (
            PopularRecommender(),
            like_rate,
            item_to_item,
            CoLikesRecommender(item_to_item),
            TopRatedRecommender(prior_count),
            NewestRecommender(),
            self.genre_top_source,
            GenrePopularRecommender(),
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
            self.ranker = None
            self.impressions.clear()
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
                # The same like (or dislike) again changes only when the state was last
                # confirmed (training's time decay): the catalogue counts each user once, so
                # that one client cannot push a movie up by repeating itself.
                if (
                    e.kind is EventKind.LIKE and u.likes(i) and u.interactions.get(i) == weight
                ) or (e.kind is EventKind.DISLIKE and i in u.disliked):
                    u.interaction_ts[i] = e.ts
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
                            self.impressions.like(u.idx, i)
                            if source := u.shown.get(i):
                                self.tallies[source].liked += 1
                    cat.add_positive(i, weight, e.ts)
                elif weight is not None and weight < 0:
                    if i not in u.disliked and (source := u.shown.get(i)):
                        self.tallies[source].disliked += 1
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
            cat.tick += 1

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
            self.catalog.tick += 1
            if source:
                tally = self.tallies[source]
                tally.shown += 1
                if u.likes(i):  # replaying the rec log after the events (start-up)
                    tally.liked += 1
                elif i in u.disliked:
                    tally.disliked += 1

    # -- reads -------------------------------------------------------------------------
    def candidate_sources(self) -> dict[str, Recommender]:
        """Every source that proposes candidates: the built-in ones and the personal models
        in ``personal_pool``."""
        return {
            name: rec
            for name, rec in self.recommenders.items()
            if name in self._builtin or name in self.personal_pool
        }

    def draw_source(self, sources: Sequence[str]) -> str:
        """Thompson sampling over sources: each draws from Beta(1 + liked, 1 + not liked) of
        what it showed; the highest draw wins. Evidence moves slots to the source users like,
        and no source is ever quite written off."""
        draws = [
            self._rng.beta(1 + t.liked, 1 + max(t.shown - t.liked, 0))
            for t in (self.tallies[s] for s in sources)
        ]
        return sources[int(np.argmax(draws))]

    def _ranked(
        self, cands: Candidates, n_main: int, explore: bool, drawn: str | None = None
    ) -> tuple[list[Pick], list[int]]:
        """The main slots: the ranker's order, with one slot (when exploring) given to a source
        drawn by :meth:`draw_source` (``drawn``, when drawn already); every slot drawn that
        way while no ranker serves. Returns the picks and their rows in ``cands``."""
        picks: list[Pick] = []
        rows: list[int] = []
        taken: set[int] = set()
        n_bandit = n_main
        if self.ranker is not None and len(cands):
            n_bandit = 1 if explore and n_main > 1 else 0
            s = self.ranker.score(cands.features, cands.names)
            for r in np.argsort(-s, kind="stable")[: n_main - n_bandit]:
                i = int(cands.idx[r])
                picks.append(Pick(i, cands.best_source[r], float(s[r])))
                rows.append(int(r))
                taken.add(i)
        cursors = dict.fromkeys(cands.proposals, 0)
        for _ in range(n_bandit):
            open_ = [name for name, c in cursors.items() if c < len(cands.proposals[name])]
            while open_:
                name = drawn if drawn in open_ else self.draw_source(open_)
                prop, c = cands.proposals[name], cursors[name]
                while c < len(prop) and int(prop[c]) in taken:
                    c += 1
                cursors[name] = c + 1
                if c < len(prop):
                    i = int(prop[c])
                    taken.add(i)
                    picks.append(Pick(i, name, float(cands.scores[name][i])))
                    rows.append(int(np.searchsorted(cands.idx, i)))
                    break
                open_.remove(name)
        return picks, rows

    def _needed(
        self, u: UserState | None, sources: Mapping[str, Recommender], bandit: bool
    ) -> tuple[frozenset[str] | None, str | None]:
        """The sources a default list must ask (None = all) and the bandit's source, drawn
        now so that only it is asked besides the ranker's. Every source is asked while no
        ranker serves (the bandit fills every slot then)."""
        if self.ranker is None:
            return None, None
        needed = self.ranker.needs(u is None or not u.interactions)
        if needed is None:
            return None, None
        drawn = self.draw_source(sorted(sources)) if bandit else None
        return needed | {drawn} if drawn else needed, drawn

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

        ``source`` forces one recommender (``popular``, ``top_rated``, …); the default list is
        the ranker's order of every source's candidates (see :mod:`cinerec.engine.ranking`).
        With ``mark_shown`` the answer joins the user's never-show-again set before the lock
        is released, so concurrent requests of the same user never overlap, and the feature
        rows of what was shown wait for the user's reaction (online ranker training).
        """
        with self.lock:
            u = self.user(user_id, create=mark_shown)
            cat = self.catalog
            ex = [i for i in (cat.ids.get(m) for m in exclude) if i is not None]
            only = self.genre_mask(genres) if genres else None
            if source:
                if source not in self.recommenders:
                    raise UnknownSourceError(source)
                parts = [BlendPart(self.recommenders[source], 1.0)]
                picks = self.policy.recommend(
                    u, cat, parts, k, exclude=ex, only=only, explore=explore
                )
                rows: list[int] = []
                cands = None
                evidence = False
            else:
                ok = self.policy.allowed(u, cat, ex, only)
                sources = self.candidate_sources()
                evidence = mark_shown and self._rng.random() < self.evidence_share
                needed, drawn = self._needed(u, sources, explore and not evidence)
                cands = gather(u, cat, sources, ok, only=None if evidence else needed)
                n_explore = self.policy.exploration_slots(cat, k) if explore else 0
                picks, rows = self._ranked(cands, k - n_explore, explore, drawn)
                ranked = [(n, cands.proposals[n], cands.scores[n]) for n in cands.proposals]
                self.policy.complete(picks, u, cat, ok, k, ranked, [1.0] * len(ranked), ex, only)
            if mark_shown and u is not None:
                for p in picks:
                    self._shown(u, p.idx, p.source)
                if evidence and cands is not None and rows:
                    self.impressions.add(
                        u.idx,
                        [p.idx for p in picks[: len(rows)]],
                        cands.features[rows],
                        cands.names,
                    )
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
        """Movies like this one: liked by the same people (cosine of co-likes over the
        movie's ``SIMILAR_LIKERS`` most recent likers), then shared genres and quality for the
        rest (a movie nobody has liked yet). None for an unknown movie."""
        with self.lock:
            cat = self.catalog
            i = cat.ids.get(movie_id)
            if i is None or not cat.active[i]:
                return None
            ok = cat.servable.copy()
            ok[i] = False
            out: list[Recommended] = []
            likers = np.array(cat.likers.get(i) or (), dtype=np.int64)[-SIMILAR_LIKERS:]
            if len(likers):
                liked = np.concatenate([np.asarray(self.users[int(u)].liked) for u in likers])
                co = np.bincount(liked.astype(np.int64), minlength=cat.n).astype(np.float64)
                pos = np.maximum(cat.positive_cnt[: cat.n], 1.0)
                cos = co / np.sqrt(pos * max(float(cat.positive_cnt[i]), 1.0))
                for j in top_n(cos, ok, k, positive_only=True):
                    out.append(Recommended(cat.ids.external(int(j)), "co_likes", float(cos[j])))
                    ok[j] = False
            if len(out) < k:
                gm = cat.genre_matrix()
                g = gm[i]
                inter = gm @ g
                union = gm.sum(axis=1) + g.sum() - inter
                jacc = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
                scores = jacc.astype(np.float64) + 0.1 * self.genre_top_source.quality(cat)
                for j in top_n(scores, ok, k - len(out), positive_only=True):
                    out.append(
                        Recommended(cat.ids.external(int(j)), "similar_genres", float(scores[j]))
                    )
            return out

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
