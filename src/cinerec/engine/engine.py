"""The recommendation engine: serving state + recommenders + policy, behind one lock.

Knows nothing of HTTP or SQL: the service layer (``cinerec.service``) feeds it from the store
and calls it from the API, the CLI, the simulator and the trainer alike.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from cinerec.config import EventWeights
from cinerec.domain import Event, EventKind, Movie
from cinerec.engine.bandit import SourceBandit
from cinerec.engine.explain import (
    MAX_BECAUSE,
    Reason,
    genre_reason,
    liked_reason,
    plain_reason,
)
from cinerec.engine.ids import IdMap
from cinerec.engine.plans import (
    DEFAULT_SETTING,
    FOLLOW_HEAD,
    FOLLOW_LOOK,
    FORCED_DEPTH,
    PLAN_DEPTH,
    PLAN_EXPLORE_LISTS,
    RANKED_FIRST,
    SHARED_EXPLORE,
    Cursor,
    Plan,
    RankingSetting,
    items_of,
)
from cinerec.engine.policy import EXPLORE, RESHOW, BlendPart, Pick, ServingPolicy, top_n
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
    genre_profile,
)
from cinerec.engine.state import (
    DISLIKE_STARS,
    LIKE_STARS,
    Catalog,
    SourceTally,
    UserState,
    event_weight,
)


@dataclass(slots=True)  # not frozen, as Pick: made ten times per list
class Recommended:
    movie_id: str
    source: str
    score: float


class UnknownSourceError(ValueError):
    pass


#: sources whose reason is what they measure, and those led by the user's genres
_PLAIN_SOURCES = {"popular": "popular", "like_rate": "like_rate", "top_rated": "top_rated"}
_GENRE_SOURCES = {"genre_top": "genre_top", "genre_popular": "genre_popular", "newest": "new"}


def _reads_likes(source: str) -> bool:
    """Whether a source scores from the user's likes (and can name them as its reason)."""
    return source not in _PLAIN_SOURCES and source not in _GENRE_SOURCES


def _put_follow_up(picks: list[Pick], follow: Pick, n_ranked: int, taken: set[int]) -> None:
    """Put the movie that answers a like into a list's main picks (the first ``n_ranked``
    are the ranker's, the bandit's come after): if another source picked it already, it
    keeps its place under the source that names the like; else it takes the place of the
    ranker's last pick (of the last pick without a ranker), which stays unshown for the
    next lists (it leaves ``taken``)."""
    for n, p in enumerate(picks):
        if p.idx == follow.idx:
            picks[n] = follow
            return
    last = n_ranked - 1 if n_ranked > 0 else len(picks) - 1
    taken.discard(picks[last].idx)
    picks[last] = follow
    taken.add(follow.idx)


#: likers of a movie whose other likes make its "similar movies"
SIMILAR_LIKERS = 500


class Viewer(array):
    """What a user who has only ever been shown lists (no event yet) needs remembered: the
    movies shown (the array itself, 32-bit) and which source showed each (``codes``: the
    index of its source in ``Engine._source_names``, one byte a movie), about 230 bytes for a
    list where a full :class:`UserState` takes ~3.5 KB. Anonymous traffic (``GET /recs/{any
    id}``) makes these, so every byte counts; the user's first event turns it into a
    :class:`UserState`. ``idx in viewer`` is the array's own scan (in C)."""

    __slots__ = ("codes",)

    def __new__(cls) -> Viewer:
        return cast(Viewer, super().__new__(cls, "i"))

    def __init__(self) -> None:
        self.codes = bytearray()

    def show(self, idx: int, source_code: int) -> None:
        self.append(idx)
        self.codes.append(source_code)

    def shown_by(self) -> Iterator[tuple[int, int]]:
        """(movie, source code) pairs, in the order shown."""
        return zip(self, self.codes, strict=True)


def _default_setting(user_id: str) -> RankingSetting:
    return DEFAULT_SETTING


#: a viewer shown more movies than this becomes a full UserState (``in`` on the compact
#: array is a scan)
VIEWER_MAX_SHOWN = 100


@dataclass(slots=True)
class _Served:
    """A list served on the fast path, not yet folded into the serving state."""

    picks: list[Pick]
    rows: list[int]
    plan: Plan


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
        #: bumped whenever what makes a plan changes (sources, models, ranker, catalogue):
        #: plans made before are stale (see :mod:`cinerec.engine.plans`)
        self.version = 0
        #: the personal model with the best held-out figure (reports; set by the trainer)
        self.personal: str | None = None
        self._personal_pool: list[str] = []
        self._ranker: Ranker | None = None
        #: called (under the lock) with a user id, or None for the shared plan, when a stale
        #: plan was served: the service makes a fresh one in the background. Unset, stale
        #: plans are made again at once.
        self.on_stale: Callable[[str | None], None] | None = None
        #: the ranking setting of a user's default list (an experiment's variant; the
        #: service sets it, see :meth:`set_assignment`) and every setting it may return
        self.setting_for: Callable[[str], RankingSetting] = _default_setting
        self.settings_in_use: tuple[RankingSetting, ...] = (DEFAULT_SETTING,)
        #: the one plan per ranking setting of the users with no history
        self._shared_plans: dict[RankingSetting, Plan] = {}
        #: (key, value) caches of per-list catalogue figures that change slowly
        #: ``catalog.servable`` as the walks read it (``items_of``: one element at a time)
        self._servable: tuple[tuple[int, int], Sequence[Any]] | None = None
        self._explore_slots: tuple[tuple[int, int, int], int] | None = None
        #: lists served without the engine lock (:meth:`try_serve`), by user id, until the
        #: next holder of the lock folds them into the users' shown sets (:meth:`_drain`).
        #: ``_pending_lock`` is only ever held for microseconds; a holder of ``lock`` may
        #: take it, never the other way round.
        self._pending_lock = threading.Lock()
        self._pending: dict[str, list[_Served]] = {}
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
    @property
    def ranker(self) -> Ranker | None:
        """Orders the candidates of the default list (None until one is trained: then a
        bandit over the sources fills the list)."""
        return self._ranker

    @ranker.setter
    def ranker(self, ranker: Ranker | None) -> None:
        with self.lock:
            self._ranker = ranker
            self.version += 1

    @property
    def personal_pool(self) -> list[str]:
        """Personal models that propose candidates to the ranker (set by the trainer)."""
        return self._personal_pool

    @personal_pool.setter
    def personal_pool(self, names: list[str]) -> None:
        with self.lock:
            self._personal_pool = list(names)
            self.version += 1

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
            self.version += 1
            self._shared_plans = {}
            with self._pending_lock:
                self._pending = {}
            self.catalog = Catalog(self.half_life_days)
            self.user_ids = IdMap()
            self.users: dict[int, UserState] = {}
            #: users known only by what they were shown (dense id -> Viewer)
            self.viewers: dict[int, Viewer] = {}
            #: per user id: the hour (since the epoch) a viewer was last shown a list
            self._viewer_hours = array("I")
            self._source_names: list[str] = []
            self._source_codes: dict[str, int] = {}
            self.n_events = 0
            #: per source label: what it showed and how much of that was liked
            self.tallies: dict[str, SourceTally] = defaultdict(SourceTally)
            self.bandit = SourceBandit(self.tallies, self._rng)

    def register(self, rec: Recommender) -> None:
        """Add or replace a recommender (personal models register themselves here)."""
        with self.lock:
            self.recommenders[rec.name] = rec
            self.version += 1

    def user(self, user_id: str, create: bool = True) -> UserState | None:
        """The user's full state; made (from their :class:`Viewer`, if any) when ``create``.
        Call under the lock when creating."""
        idx = self.user_ids.get(user_id)
        if idx is None:
            if not create:
                return None
            idx = self.user_ids.add(user_id)
        u = self.users.get(idx)
        if u is None:
            if not create:
                return None
            u = self.users[idx] = UserState(idx, user_id)
            viewer = self.viewers.pop(idx, None)
            if viewer is not None:  # counted when shown: only the user's own record now
                names = self._source_names
                for i, code in viewer.shown_by():
                    u.shown[i] = names[code]
                    u.see(i)
        return u

    def planned(self, user_ids: Iterable[str]) -> list[str]:
        """Those of ``user_ids`` who hold a plan: they have asked for lists before. (Read
        without the lock, as :meth:`try_serve` does: a plan made meanwhile is made fresh.)"""
        out = []
        for uid in user_ids:
            u = self.user(uid, create=False)
            if u is not None and u.plan is not None:
                out.append(uid)
        return out

    def _viewer(self, user_id: str, at: float | None = None) -> tuple[int, Viewer] | None:
        """The compact state of a user who has no full state yet (made when missing), about
        to be shown a list (at ``at``, default now); None for a user who has one, or whose
        viewer grew past ``VIEWER_MAX_SHOWN``."""
        idx = self.user_ids.get(user_id)
        if idx is None:
            idx = self.user_ids.add(user_id)
        elif idx in self.users:
            return None
        viewer = self.viewers.get(idx)
        if viewer is None:
            viewer = self.viewers[idx] = Viewer()
        elif len(viewer) > VIEWER_MAX_SHOWN:
            return None
        hours = self._viewer_hours
        if idx >= len(hours):
            hours.extend([0] * (idx + 1 - len(hours)))
        hours[idx] = int((time.time() if at is None else at) // 3600)
        return idx, viewer

    def forget_viewers(self, before: float) -> int:
        """Forget the users known only by lists shown before ``before`` (a Unix time; to the
        hour): their viewer and their id, as the rec log's retention forgets their lists.
        Such a user who comes back is a newcomer. Returns how many were forgotten."""
        cutoff = int(before // 3600)
        with self.lock:
            hours = self._viewer_hours
            gone = [idx for idx in self.viewers if hours[idx] < cutoff]
            for idx in gone:
                del self.viewers[idx]
                self.user_ids.forget(self.user_ids.external(idx))
        return len(gone)

    def _show_viewer(self, viewer: Viewer, i: int, source: str) -> None:
        if i in viewer:
            return
        code = self._source_codes.get(source)
        if code is None:
            code = self._source_codes[source] = len(self._source_names)
            assert code <= 0xFF, "a viewer's entries hold 256 source codes"
            self._source_names.append(source)
        viewer.show(i, code)
        self.catalog.shown_cnt[i] += 1
        self.catalog.tick += 1
        if source:
            self.tallies[source].shown += 1

    # -- writes ------------------------------------------------------------------------
    def upsert_movies(self, movies: Iterable[Movie]) -> None:
        with self.lock:
            for m in movies:
                self.catalog.upsert(m)
            self.version += 1

    def set_hidden(self, movie_id: str, hidden: bool) -> None:
        with self.lock:
            idx = self.catalog.ids.get(movie_id)
            if idx is not None:
                self.catalog.hidden[idx] = hidden
                self.version += 1

    def set_favorite_genres(self, user_id: str, genres: Sequence[str]) -> None:
        with self.lock:
            u = self.user(user_id)
            assert u is not None
            u.favorite_genres = list(genres)
            u.plan = None

    def apply_events(self, events: Iterable[Event]) -> None:
        """Fold new events into the serving state (call once per stored event)."""
        w = self.weights
        with self.lock:
            self._drain()
            cat = self.catalog
            for e in events:
                u = self.user(e.user_id)
                assert u is not None
                i = cat.index(e.movie_id)
                weight = event_weight(e, w)
                u.n_events += 1
                self.n_events += 1
                u.see(i)
                if e.kind is EventKind.NOT_INTERESTED:
                    u.answer = -1
                    continue
                # The same like (or dislike) again changes only when the state was last
                # confirmed (training's time decay): the catalogue counts each user once, so
                # that one client cannot push a movie up by repeating itself.
                if (
                    e.kind is EventKind.LIKE and u.likes(i) and u.interactions.get(i) == weight
                ) or (e.kind is EventKind.DISLIKE and i in u.disliked):
                    u.interaction_ts[i] = e.ts
                    continue
                u.answer = -1
                if weight is not None:
                    u.interactions[i] = weight
                    u.interaction_ts[i] = e.ts
                if weight is not None and weight > 0:
                    if i in u.disliked:
                        u.disliked.discard(i)
                    if weight >= 0.5 or e.kind is EventKind.LIKE:
                        if i not in u.recent_likes:
                            u.recent_likes.append(i)
                        if u.shown:  # a like in reply to lists: the next one answers it
                            u.answer = i
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
        self,
        user_id: str,
        movie_ids: Sequence[str],
        sources: Sequence[str] = (),
        at: float | None = None,
    ) -> None:
        """Record what a user was shown (``sources``: which source chose each movie; ``at``:
        when, default now)."""
        with self.lock:
            v = self._viewer(user_id, at)
            u = self.user(user_id) if v is None else None
            for n, mid in enumerate(movie_ids):
                i = self.catalog.ids.get(mid)
                if i is None:
                    continue
                source = sources[n] if n < len(sources) else ""
                if v is not None:
                    self._show_viewer(v[1], i, source)
                else:
                    assert u is not None
                    self._shown(u, i, source)

    def _shown(self, u: UserState, i: int, source: str) -> None:
        if i in u.shown:
            return
        u.shown[i] = source
        # Every event marks its movie seen first, so a movie the user acted on before it was
        # shown (the rec log replayed after the events at start-up) is the only one that
        # may be liked or disliked here: a list's usual new movie skips both lookups.
        acted = not u.see(i)
        cat = self.catalog
        cat.shown_cnt[i] += 1
        cat.tick += 1
        if source:
            tally = self.tallies[source]
            tally.shown += 1
            if acted:
                if u.likes(i):
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
        and no source is ever quite written off (:class:`~cinerec.engine.bandit.SourceBandit`)."""
        return self.bandit.best(sources)

    def source_order(self, sources: Sequence[str]) -> list[str]:
        """``sources`` by one Thompson draw each (see :meth:`draw_source`), best first."""
        return self.bandit.order(sources)

    def _ranked(
        self, cands: Candidates, n_main: int, explore: bool
    ) -> tuple[list[Pick], list[int], int]:
        """The main slots: the ranker's order, with one slot (when exploring) given to a source
        drawn by :meth:`draw_source`; every slot drawn that way while no ranker serves.
        Returns the picks, their rows in ``cands`` and how many of them are the ranker's."""
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
        n_ranked = len(picks)
        cursors = dict.fromkeys(cands.proposals, 0)
        for _ in range(n_bandit):
            open_ = [name for name, c in cursors.items() if c < len(cands.proposals[name])]
            while open_:
                name = self.draw_source(open_)
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
        return picks, rows, n_ranked

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
        setting: RankingSetting = DEFAULT_SETTING,
    ) -> list[Recommended]:
        """Top-``k`` movies for a user, each with the source that chose it.

        ``source`` forces one recommender (``popular``, ``top_rated``, …); the default list is
        the ranker's order of every source's candidates (see :mod:`cinerec.engine.ranking`).
        With ``mark_shown`` the answer joins the user's never-show-again set before the lock
        is released, so concurrent requests of the same user never overlap, and the feature
        rows of what was shown wait for the user's reaction (online ranker training).

        ``setting`` is the user's ranking setting (an experiment's variant): the default list
        is served from a plan made for it, and a filtered list or a preview follows its
        forced source and exploration unless ``source`` is given.
        """
        with self.lock:
            if source is None and not exclude and not genres and mark_shown:
                return self._external(self._serve(user_id, k, explore, setting))
            if source is None:  # the setting's, unless the caller chose
                source = setting.source if setting.source in self.recommenders else None
                explore = explore and setting.explore
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
            else:
                # A filtered list or a preview: made on the spot, from every source.
                ok = self.policy.allowed(u, cat, ex, only)
                cands = gather(u, cat, self.candidate_sources(), ok)
                n_explore = self.policy.exploration_slots(cat, k) if explore else 0
                picks, _, n_ranked = self._ranked(cands, k - n_explore, explore)
                # The default list less some movies (not a genre preview) answers a like too.
                if u is not None and not genres and picks:
                    follow = self._follow_up(u, cands, [(p.idx, p.source) for p in picks])
                    if follow is not None:
                        _put_follow_up(picks, follow, n_ranked, set())
                ranked = [(n, cands.proposals[n], cands.scores[n]) for n in cands.proposals]
                self.policy.complete(picks, u, cat, ok, k, ranked, [1.0] * len(ranked), ex, only)
            if mark_shown and u is not None:
                for p in picks:
                    self._shown(u, p.idx, p.source)
            return self._external(picks)

    # -- plans (see cinerec.engine.plans) -------------------------------------------------
    def _uses_shared_plan(self, u: UserState | None) -> bool:
        return u is None or (not u.interactions and not u.favorite_genres)

    def make_plan(
        self,
        u: UserState | None,
        setting: RankingSetting = DEFAULT_SETTING,
        depth: int = PLAN_DEPTH,
    ) -> Plan:
        """Ask the sources and the ranker for a user's candidates (``None``: the shared plan
        of users with no history), for one ranking setting, each source ``depth`` deep.
        Call under the lock."""
        if setting.source is not None and setting.source in self.recommenders:
            return self._forced_plan(u, setting)
        # A forced source that is gone (a model dropped by a wipe) serves the default list.
        cat = self.catalog
        shared = u is None
        ok = self.policy.allowed(u, cat)
        sources = self.candidate_sources()
        # The shared plan serves many lists: it asks every source and keeps the rows, and
        # each list it serves is evidence with probability evidence_share.
        evidence = shared or self._rng.random() < self.evidence_share
        needed, drawn = self._needed(u, sources, not evidence)
        if needed is not None and u is not None and u.answer >= 0:  # for the follow-up
            needed = needed | {n for n in sources if _reads_likes(n) and n in self._builtin}
        cands = gather(u, cat, sources, ok, only=None if evidence else needed, deep=depth)
        has_ranker = self.ranker is not None
        if has_ranker and len(cands):
            assert self.ranker is not None
            s = self.ranker.score(cands.features, cands.names)
            order = np.argsort(-s, kind="stable")
            ranked = cands.idx[order].astype(np.int64)
            best = [cands.best_source[r] for r in order.tolist()]
            scores = s[order].astype(np.float64)
        else:
            ranked, best, scores = np.empty(0, np.int64), [], np.empty(0)
        codes: dict[str, int] = {}
        source_of = np.array([codes.setdefault(b, len(codes)) for b in best], dtype=np.uint8)
        proposals = {
            name: (prop, cands.scores[name][prop].astype(np.float64))
            for name, prop in cands.proposals.items()
        }
        taste = [(n, cands.proposals[n], cands.scores[n]) for n in cands.proposals]
        explore = self._explore_pool(shared, ok, ranked, taste)
        keep = evidence and len(cands) > 0
        tail = np.empty(0, np.int64)
        if shared:  # the rest, most popular first: the last resort of a fill
            rest = ok.copy()
            rest[ranked] = False
            rest[explore] = False
            left = np.flatnonzero(rest)
            tail = left[np.argsort(-cat.popularity()[left], kind="stable")].astype(np.int64)
        head = list(zip(ranked[:FOLLOW_HEAD].tolist(), best[:FOLLOW_HEAD], strict=True))
        follow = None if u is None else self._follow_up(u, cands, head)
        return Plan(
            version=self.version,
            n_events=u.n_events if u is not None else -1,
            made_at=time.monotonic(),
            evidence=cat.n_positive,
            ranked=ranked,
            source_of=source_of,
            source_names=tuple(codes),
            scores=scores,
            proposals=proposals,
            drawn=drawn,
            explore=explore,
            has_ranker=has_ranker,
            cand_idx=cands.idx if keep else None,
            features=cands.features if keep else None,
            names=cands.names if keep else [],
            shared=shared,
            setting=setting,
            depth=depth,
            follow=follow,
            tail=tail,
        )

    def _follow_up(
        self, u: UserState, cands: Candidates, head: Sequence[tuple[int, str]]
    ) -> Pick | None:
        """The movie that answers the like behind ``u.answer`` (a like given in reply to
        lists, and the user's latest act) in the next list, when the head of that list
        (``head``: movie and source, the ranker's first picks) holds none that the like
        explains: among the best ``FOLLOW_LOOK`` proposals of each source that explains by
        likes (item-to-item, co-likes, the personal models), in the order of a Thompson draw
        over those sources, the first that the source explains by that like. None when
        the head answers it already, when there is no such like (an imported history has
        none), or when no source names it. It takes the place of the list's last ranked
        pick, where the ranker is least sure (:func:`_put_follow_up`)."""
        newest = u.answer
        if newest < 0 or newest not in u.recent_likes:
            return None
        by_source: dict[str, list[int]] = defaultdict(list)
        for movie, source in head:
            by_source[source].append(movie)
        if any(self._first_named(u, newest, s, idxs) is not None for s, idxs in by_source.items()):
            return None  # the list answers the like already
        readers = [n for n in cands.proposals if _reads_likes(n) and n in self.recommenders]
        for name in self.source_order(readers) if readers else []:
            prop = cands.proposals[name][:FOLLOW_LOOK].tolist()
            found = self._first_named(u, newest, name, prop)
            if found is not None:
                return Pick(found, name, float(cands.scores[name][found]))
        return None

    def _first_named(self, u: UserState, liked: int, source: str, idxs: list[int]) -> int | None:
        """The first of ``idxs`` (movies of ``source``) whose reason names ``liked``."""
        rec = self.recommenders.get(source)
        if rec is None or not idxs or not _reads_likes(source):
            return None
        for i, because in zip(idxs, rec.explain_many(u, self.catalog, idxs), strict=True):
            if liked in because[:MAX_BECAUSE]:
                return int(i)
        return None

    def _explore_pool(
        self,
        shared: bool,
        ok: np.ndarray,
        ranked: np.ndarray,
        taste: Sequence[tuple[str, np.ndarray, np.ndarray]],
    ) -> np.ndarray:
        """Exploration picks of a plan: several lists' worth of least-shown movies, ordered
        by the taste of ``taste``'s sources."""
        cat = self.catalog
        want = (
            SHARED_EXPLORE
            if shared
            else PLAN_EXPLORE_LISTS * max(1, self.policy.exploration_slots(cat, 10))
        )
        picks: list[Pick] = []
        ok_explore = ok.copy()
        ok_explore[ranked[:RANKED_FIRST]] = False
        self.policy._explore(picks, set(), ok_explore, cat, want, taste, [1.0] * len(taste))
        return np.fromiter((p.idx for p in picks), dtype=np.int64, count=len(picks))

    def _forced_plan(self, u: UserState | None, setting: RankingSetting) -> Plan:
        """A plan that serves one source's own order (``setting.source``, a known source):
        no ranker, no bandit slot, no online evidence for the ranker (its lists are not
        the ranker's choices); exploration as the setting says."""
        assert setting.source is not None
        rec = self.recommenders[setting.source]
        cat = self.catalog
        ok = self.policy.allowed(u, cat)
        sc = rec.scores(u, cat)
        if sc is None:  # the source abstains: exploration and the fill serve this user
            ranked, scores = np.empty(0, np.int64), np.empty(0)
            taste: list[tuple[str, np.ndarray, np.ndarray]] = []
        else:
            ranked = top_n(sc, ok, FORCED_DEPTH, getattr(rec, "positive_only", True))
            ranked = np.asarray(ranked, dtype=np.int64)
            scores = sc[ranked].astype(np.float64)
            taste = [(rec.name, ranked, sc)]
        return Plan(
            version=self.version,
            n_events=u.n_events if u is not None else -1,
            made_at=time.monotonic(),
            evidence=cat.n_positive,
            ranked=ranked,
            source_of=np.zeros(len(ranked), dtype=np.uint8),
            source_names=(rec.name,),
            scores=scores,
            proposals={},
            drawn=None,
            explore=self._explore_pool(u is None, ok, ranked, taste),
            has_ranker=True,
            shared=u is None,
            setting=setting,
        )

    def set_assignment(
        self, setting_for: Callable[[str], RankingSetting], settings: Iterable[RankingSetting]
    ) -> None:
        """Change how users are assigned ranking settings (an experiment started, stopped or
        promoted). Users' plans made for another setting are made again on their next list;
        the newcomers' shared plans are made again for the settings now in use."""
        with self.lock:
            self.setting_for = setting_for
            self.settings_in_use = tuple(dict.fromkeys(settings)) or (DEFAULT_SETTING,)
            self._shared_plans = {}
        self.refresh([None])

    def _plan_for(self, u: UserState, setting: RankingSetting) -> Plan:
        """The plan to serve ``u`` from: made now when there is none, the user acted since
        (the list must reflect it) or it was made for another setting, and for the shared
        plan when the models changed; served stale (and refreshed in the background) when
        only the models or the clock moved on."""
        shared = self._uses_shared_plan(u)
        plan = self._shared_plans.get(setting) if shared else u.plan
        if (
            plan is None
            or (not shared and (plan.n_events != u.n_events or plan.setting != setting))
            # the one plan of every newcomer follows a model swap at once
            or (shared and plan.version != self.version)
        ) or (
            plan.outdated(self.version, self.catalog.n_positive)
            and not self._ask_refresh(plan, u.id)
        ):
            plan = self.make_plan(None if shared else u, setting)
        if shared:
            self._shared_plans[setting] = plan
        else:
            u.plan = plan
        return plan

    def _ask_refresh(self, plan: Plan, user_id: str) -> bool:
        """Have a fresh plan made in the background (once per plan) while this one serves;
        False when nothing makes plans in the background (then make it now)."""
        if self.on_stale is None:
            return False
        if not plan.refreshing:
            plan.refreshing = True
            self.on_stale(None if plan.shared else user_id)
        return True

    def refresh(self, user_ids: Iterable[str | None]) -> int:
        """Make fresh plans for these users (None: the shared plan) where theirs is missing,
        invalid or stale; returns how many were made. The write path calls this after a
        user's events, so that the next list is served from a plan at once."""
        made = 0
        for uid in user_ids:
            with self.lock:
                self._drain()
                if uid is None:
                    for setting in self.settings_in_use:
                        self._shared_plans[setting] = self.make_plan(None, setting)
                        made += 1
                    continue
                u = self.user(uid, create=False)
                if u is None or self._uses_shared_plan(u):
                    continue
                p = u.plan
                setting = self.setting_for(uid)
                if (
                    p is None
                    or p.n_events != u.n_events
                    or p.version != self.version
                    or p.setting != setting
                    or p.refreshing
                ):
                    # A plan read down (valid, only running low or old) is followed by a deeper one.
                    invalid = p is None or p.n_events != u.n_events or p.setting != setting
                    depth = PLAN_DEPTH if invalid else p.next_depth()
                    u.plan = self.make_plan(u, setting, depth)
                    made += 1
        return made

    def try_serve(
        self,
        user_id: str,
        k: int,
        explore: bool = True,
        setting: RankingSetting = DEFAULT_SETTING,
    ) -> list[Recommended] | None:
        """The default list (as :meth:`recommend`) if the user's plan can serve it now,
        without the engine lock: the event loop calls this, so a reader never waits for a
        plan being made, training, a large batch or a wipe. None when the plan needs making
        (then call :meth:`recommend` from a worker thread).

        What it serves joins ``_pending`` (under a lock held for microseconds) and reaches
        the user's shown set when the engine lock is next taken; until then every list of
        the user, on either path, skips it too.
        """
        gen, cat = self.generation, self.catalog
        idx = self.user_ids.get(user_id)
        u = self.users.get(idx) if idx is not None else None
        shared = u is None or self._uses_shared_plan(u)
        plan = self._shared_plans.get(setting) if shared else u.plan  # type: ignore[union-attr]
        servable = self._servable[1] if self._servable is not None else None
        slots = self._explore_slots
        if (
            plan is None
            or servable is None
            or self._servable[0] != (cat.n, self.version)  # type: ignore[index]
            or slots is None
            or slots[0][:2] != (k, self.version)
            or (u is not None and not shared and plan.n_events != u.n_events)
            or plan.setting != setting  # a user's plan from before an experiment changed
            or (shared and plan.version != self.version)  # remade once, on the locked path
        ):
            return None
        if (
            plan.outdated(self.version, cat.n_positive) or plan.running_low(k)
        ) and not self._ask_refresh(plan, user_id):
            return None
        explore = explore and setting.explore
        n_explore = slots[1] if explore else 0
        with self._pending_lock:
            if self.generation != gen:
                return None
            # What the user was shown, read under the lock that folds served lists in: a
            # list leaves ``_pending`` and joins the shown set in one step under it, so a
            # walk never sees it in neither (a re-show).
            idx = self.user_ids.get(user_id)
            if (self.users.get(idx) if idx is not None else None) is not u:
                return None  # the user's state was made meanwhile: the locked path
            viewer = self.viewers.get(idx) if idx is not None and u is None else None
            # A viewer's shown movies as a set for this walk (the array is scanned per lookup).
            seen: Container[int] = (
                u.seen if u is not None else (set(viewer) if viewer is not None else ())
            )
            earlier = self._pending.get(user_id, [])
            also = {p.idx for served in earlier for p in served.picks}
            picks, rows, cursor = self._take(
                seen, plan, plan.walk_from(user_id), k, explore, servable, n_explore, also=also
            )
            if len(picks) < k and not self._fill_from_shared(
                user_id, picks, seen, setting, k, servable, also
            ):
                return None  # nothing cheap fills the list: the locked path makes it
            self._pending.setdefault(user_id, earlier).append(_Served(picks, rows, plan))
            plan.lists += 1
            plan.walked(user_id, cursor)
        ids = cat.ids.externals([p.idx for p in picks])
        return [Recommended(m, p.source, p.score) for m, p in zip(ids, picks, strict=True)]

    def _fill_from_shared(
        self,
        user_id: str,
        picks: list[Pick],
        seen: Container[int],
        setting: RankingSetting,
        k: int,
        servable: Sequence[Any],
        also: set[int],
    ) -> bool:
        """The rest of a list whose plan ran dry before its remake (asked for already) is
        ready: from the shared plan, the list every newcomer gets, skipping what the user saw,
        and when the user has seen all of that (a user who asks again and again, faster than
        plans are remade), from its exploration picks, the least-shown movies of the moment,
        then from the rest of the catalogue. The cheap list instead of the slow path (a plan
        made on the request, behind the engine lock and every other such request). True if
        the list is full; then the user's next fill resumes where this one ended. Call under
        ``_pending_lock``."""
        shared = self._shared_plans.get(setting)
        if shared is None or shared.version != self.version:
            return False
        more, _, cursor = self._take(
            seen,
            shared,
            shared.walk_from(user_id),
            k - len(picks),
            explore=False,
            servable=servable,
            n_explore=0,
            fill=True,
            also=also | {p.idx for p in picks},
        )
        picks += more
        if len(picks) < k:
            return False
        shared.walked(user_id, cursor)
        return True

    def fold_served(self) -> bool:
        """Fold what the fast path served into the serving state now, if the lock is free
        and anything waits; True if it did. A background thread calls this every few
        milliseconds, so exposure counts and source tallies stay current."""
        if not self._pending or not self.lock.acquire(blocking=False):
            return False
        try:
            self._drain()
            return True
        finally:
            self.lock.release()

    def _drain(self) -> None:
        """Fold the lists served on the fast path into the serving state: shown sets,
        exposure counts, source tallies, online evidence. Call under the engine lock."""
        with self._pending_lock:
            users = list(self._pending)
        for uid in users:
            # Out of ``_pending`` and into the shown set in one step under the fast path's
            # lock (one user at a time: it stays a few microseconds): a fast-path walk in
            # between would find the lists in neither and show them again.
            with self._pending_lock:
                lists = self._pending.pop(uid, None)
                if lists:
                    self._fold(uid, lists)

    def _fold(self, user_id: str, lists: list[_Served]) -> None:
        v = self._viewer(user_id)
        if v is not None:
            for served in lists:
                for p in served.picks:
                    self._show_viewer(v[1], p.idx, p.source)
            # No online evidence from users who never acted: anonymous traffic would fill
            # memory with feature rows that no like will ever label.
            return
        u = self.user(user_id)
        assert u is not None
        for served in lists:
            for p in served.picks:
                self._shown(u, p.idx, p.source)
            self._evidence(u.idx, served.plan, served.picks, served.rows)

    def _evidence(self, user_idx: int, plan: Plan, picks: list[Pick], rows: list[int]) -> None:
        features = plan.features
        if features is None or not rows:
            return
        if not plan.shared or self._rng.random() < self.evidence_share:
            self.impressions.add(
                user_idx, [p.idx for p in picks[: len(rows)]], features[rows], plan.names
            )
        if not plan.shared:  # a user's plan is evidence for its first list only
            plan.features = plan.cand_idx = None

    def _serve(self, user_id: str, k: int, explore: bool, setting: RankingSetting) -> list[Pick]:
        """A default list from the user's plan; marks it shown. Call under the lock."""
        self._drain()
        u = self.user(user_id)
        assert u is not None
        plan = self._plan_for(u, setting)
        explore = explore and setting.explore
        servable = self._servable_now()
        # Counted even when this list does not explore: the lock-free path needs it cached.
        slots = self._exploration_slots(k)
        n_explore = slots if explore else 0
        for fill in (False, True):
            # The fast path may serve this user meanwhile: take and mark under its lock.
            with self._pending_lock:
                self._fold(user_id, self._pending.pop(user_id, []))
                picks, rows, cursor = self._take(
                    u.seen, plan, plan.walk_from(user_id), k, explore, servable, n_explore, fill
                )
                if len(picks) == k or fill:
                    if len(picks) < k:
                        # Too few candidates: the rest from the whole catalogue, then
                        # re-shows.
                        ok = self.policy.allowed(u, self.catalog)
                        self.policy.complete(picks, u, self.catalog, ok, k, [], [], [], None)
                    for p in picks:
                        self._shown(u, p.idx, p.source)
                    self._evidence(u.idx, plan, picks, rows)
                    plan.lists += 1
                    plan.walked(user_id, cursor)
                    return picks
            # The plan ran dry (or is from before what the user has since seen): make it
            # again, outside the fast path's lock.
            depth = PLAN_DEPTH if plan.shared else plan.next_depth()
            plan = self.make_plan(None if plan.shared else u, setting, depth)
            if plan.shared:
                self._shared_plans[setting] = plan
            else:
                u.plan = plan
        raise AssertionError("unreachable")

    def _servable_now(self) -> Sequence[Any]:
        """``catalog.servable``, made again only when the catalogue or a hidden flag changed
        (both bump ``version``)."""
        key = (self.catalog.n, self.version)
        if self._servable is None or self._servable[0] != key:
            self._servable = (key, items_of(self.catalog.servable))
        return self._servable[1]

    def _exploration_slots(self, k: int) -> int:
        """``policy.exploration_slots``, counted again at most once a second (coverage moves
        slowly; counting it is a pass over the catalogue)."""
        key = (k, self.version, int(time.monotonic()))
        if self._explore_slots is None or self._explore_slots[0] != key:
            self._explore_slots = (key, self.policy.exploration_slots(self.catalog, k))
        return self._explore_slots[1]

    def _take(
        self,
        seen: Container[int],
        plan: Plan,
        start: Cursor,
        k: int,
        explore: bool,
        servable: Sequence[Any],
        n_explore: int,
        fill: bool = False,
        also: Container[int] = (),
    ) -> tuple[list[Pick], list[int], Cursor]:
        """Walk the plan from ``start`` (``Plan.walk_from``): the ranker's order, the bandit
        slot, then exploration (and for a ``fill`` of the shared plan, its tail); skip what
        the user has seen (``seen``, ``also``) or may no longer be shown. Exploration fills
        its own slots only, unless ``fill`` (then it also fills what the plan's main slots
        lack); a user's plan whose own exploration picks are used up draws from the shared
        plan's. Returns the picks, for evidence plans the candidate rows of the ranked and
        bandit picks, and where the next walk of a user's plan resumes (the caller stores it
        in ``plan.cursor`` once the list is served). Reads only; safe without the engine
        lock (under ``_pending_lock``, which orders the walks of one plan)."""
        n_main = k - n_explore
        # The bandit slot tries a source the ranker under-uses; not in a newcomer's lists
        # (the shared plan): a first impression is the ranker's best plus exploration.
        if not plan.has_ranker:
            n_bandit = n_main
        else:
            n_bandit = 1 if explore and n_main > 1 and not plan.shared and plan.proposals else 0
        n_ok, ok = len(servable), servable
        picks: list[Pick] = []
        taken: set[int] = set()

        def usable(i: int) -> bool:
            return i < n_ok and ok[i] and i not in seen and i not in also

        def resume(arr: np.ndarray, at: int) -> int:
            """``at`` moved past the movies this walk took or may not show."""
            items = items_of(arr)
            while at < len(items) and ((i := items[at]) in taken or not usable(i)):
                at += 1
            return at

        ranked, scores, source_of = plan.views()
        names = plan.source_names
        r = start.ranked
        want = n_main - n_bandit
        while r < len(ranked) and len(picks) < want:
            i = ranked[r]
            if usable(i):
                picks.append(Pick(i, names[source_of[r]], scores[r]))
                taken.add(i)
            r += 1
        n_ranked = len(picks)
        # Where the walks of the sources' proposals resume: only those the bandit drew from
        # move (the next draw from one skips what was shown meanwhile: ``resume``).
        proposals = start.proposals
        if n_bandit:
            cursors = {name: proposals.get(name, 0) for name in plan.proposals}
            for _ in range(n_bandit):
                open_ = [n for n, (p, _) in plan.proposals.items() if cursors[n] < len(p)]
                while open_:
                    name = plan.drawn if plan.drawn in open_ else self.draw_source(open_)
                    prop, sc = plan.proposals[name]
                    c = resume(prop, cursors[name])
                    cursors[name] = c + 1
                    if c < len(prop):
                        i = int(prop[c])
                        taken.add(i)
                        picks.append(Pick(i, name, float(sc[c])))
                        break
                    open_.remove(name)
            proposals = {
                name: resume(plan.proposals[name][0], c) if c != proposals.get(name, 0) else c
                for name, c in cursors.items()
            }
        # The first list after a like answers it (see _follow_up).
        follow = plan.follow
        if follow is not None and not start.followed and picks and usable(follow.idx):
            _put_follow_up(picks, follow, n_ranked, taken)
        cand_idx = plan.cand_idx
        rows = (
            np.searchsorted(cand_idx, [p.idx for p in picks]).tolist()
            if cand_idx is not None and picks
            else []
        )
        stop = k if fill else len(picks) + n_explore

        def walk(pool: np.ndarray, at: int, first: int = 0) -> int:
            """Exploration picks from ``pool``, walked from ``at`` and read from ``first``
            on, round the pool; returns where the walk stopped."""
            n = len(pool)
            items = items_of(pool)
            while at < n and len(picks) < stop:
                i = items[(first + at) % n]
                at += 1
                if i not in taken and usable(i):
                    taken.add(i)
                    picks.append(Pick(i, EXPLORE, 0.0))
            return at

        shared_explore = start.shared_explore

        def walk_shared(shared: Plan) -> None:
            """The exploration picks of the shared plan, which many users share: a user's
            first walk of them starts at a random place, the next ones resume there."""
            nonlocal shared_explore
            pool = shared.explore
            if not len(pool) or len(picks) >= stop:
                return
            if shared_explore is None or shared_explore[0] != shared.made_at:
                shared_explore = (shared.made_at, int(self.policy.rng.integers(len(pool))), 0)
            key, first, at = shared_explore
            shared_explore = (key, first, walk(pool, at, first))

        e, tail = start.explore, start.tail
        if plan.shared:
            walk_shared(plan)
            if fill:  # a user who has seen all the rest
                tail = walk(plan.tail, tail)
        else:
            e = walk(plan.explore, e)
            fallback = self._shared_plans.get(plan.setting)
            if fallback is not None:  # once this plan's own picks are used up
                walk_shared(fallback)
        cursor = Cursor(
            # From where this walk began: the follow-up may have handed a ranked pick back.
            resume(plan.ranked, start.ranked),
            e,
            proposals,
            followed=True,
            tail=tail,
            shared_explore=shared_explore,
        )
        return picks, rows, cursor

    def _external(self, picks: Sequence[Pick]) -> list[Recommended]:
        ext = self.catalog.ids.external
        return [Recommended(ext(p.idx), p.source, p.score) for p in picks]

    def reshows(
        self,
        user_id: str,
        shown: Iterable[str],
        want: int,
        exclude: Sequence[str] = (),
        genres: Sequence[str] = (),
    ) -> list[Recommended]:
        """Up to ``want`` of ``shown`` (movies already shown to the user, as the topology's
        shared state knows them) to show again, least shown first, labelled ``reshow``:
        what a user who has seen every servable movie gets, as the in-process policy does
        (never a movie the user acted on, an excluded or hidden one, or one outside
        ``genres``)."""
        with self.lock:
            cat = self.catalog
            u = self.user(user_id, create=False)
            banned = set(u.interactions) | u.disliked if u is not None else set()
            banned.update(i for i in (cat.ids.get(m) for m in exclude) if i is not None)
            idx = [i for i in (cat.ids.get(m) for m in shown) if i is not None]
            only = self.genre_mask(genres) if genres else None
            order = self.policy.reshow_order(cat, idx, banned, only)[: max(want, 0)]
            return self._external([Pick(i, RESHOW, 0.0) for i in order])

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

    def explain(self, user_id: str, items: Sequence[Recommended]) -> list[Reason]:
        """A reason per recommended movie, from the evidence of the source that chose it
        (:mod:`cinerec.engine.explain`). Each source that explains by the user's likes is
        asked once for all its movies of the list: call this for the movies shown, not for
        a plan's candidates."""
        with self.lock:
            cat = self.catalog
            u = self.user(user_id, create=False)
            idxs = [cat.ids.get(it.movie_id) for it in items]
            because: dict[int, list[int]] = {}
            by_source: dict[str, list[tuple[int, int]]] = defaultdict(list)
            for n, (it, i) in enumerate(zip(items, idxs, strict=True)):
                if i is not None and it.source not in _PLAIN_SOURCES | _GENRE_SOURCES.keys():
                    by_source[it.source].append((n, i))
            for source, picks in by_source.items():
                rec = self.recommenders.get(source)
                if rec is None or u is None:
                    continue
                found = rec.explain_many(u, cat, [i for _, i in picks])
                for (n, _), liked in zip(picks, found, strict=True):
                    because[n] = liked[:MAX_BECAUSE]
            profile = genre_profile(u, cat)
            return [
                plain_reason("other")
                if i is None
                else self._reason(profile, i, it.source, because.get(n))
                for n, (it, i) in enumerate(zip(items, idxs, strict=True))
            ]

    def _reason(
        self, profile: np.ndarray | None, i: int, source: str, because: list[int] | None
    ) -> Reason:
        cat = self.catalog
        if source == EXPLORE:
            return plain_reason("explore")
        if source in _PLAIN_SOURCES:
            return plain_reason(_PLAIN_SOURCES[source])
        if source in _GENRE_SOURCES:
            genre = None
            if profile is not None and len(cat.movie_genres[i]):
                best = max(cat.movie_genres[i], key=lambda g: profile[g])
                genre = cat.genres.external(best) if profile[best] > 0 else None
            return genre_reason(_GENRE_SOURCES[source], genre)
        if because is None:
            return plain_reason("other")
        if not because:
            return plain_reason("taste")
        return liked_reason(cat.ids.externals(because), [cat.titles[j] for j in because])

    def stats(self) -> dict[str, Any]:
        with self.lock:
            self._drain()
            return {
                "movies": int(self.catalog.servable.sum()),
                "users": len(self.users) + len(self.viewers),
                "events": self.n_events,
                "sources": {
                    name: {"shown": t.shown, "liked": t.liked, "like_rate": round(t.like_rate, 4)}
                    for name, t in sorted(self.tallies.items())
                },
            }
