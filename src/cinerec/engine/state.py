"""In-memory serving state: the catalogue as arrays indexed by dense movie ids, and what
each user has done. Built from the store at start-up and kept current on every write, so
``/recs`` never touches the database on its read path.

Not thread-safe by itself: :class:`cinerec.engine.Engine` serialises access.
"""

from __future__ import annotations

import copy
import math
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cinerec.config import EventWeights
from cinerec.domain import Event, EventKind, Movie
from cinerec.engine.ids import IdMap

#: Reference time for the decayed popularity: scores are stored as w * 2**((t - T0)/half_life)
#: so that adding an event is O(1); the ratio between items is what ranking uses.
_T0 = 1_600_000_000.0
#: Likes and dislikes enter the rating statistics as these star values ("top rated" then works
#: on a catalogue that only ever gets likes, as in the course grader).
LIKE_STARS, DISLIKE_STARS = 5.0, 1.0
RECENT_LIKES = 50


@dataclass(slots=True)
class UserState:
    """What one user has done; the context every recommender scores against."""

    idx: int
    id: str = ""
    favorite_genres: list[str] = field(default_factory=list)
    #: movie idx -> latest signal weight (negative = dislike); the model's input row
    interactions: dict[int, float] = field(default_factory=dict)
    #: movie idx -> time (Unix s) of the event behind ``interactions[idx]``; same keys. Used
    #: only by training's optional time decay (``training_half_life_days``).
    interaction_ts: dict[int, float] = field(default_factory=dict)
    #: newest last; drives genre profiles and item-to-item neighbours
    recent_likes: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_LIKES))
    disliked: set[int] = field(default_factory=set)
    #: never recommend again: shown or interacted with
    seen: set[int] = field(default_factory=set)
    #: movie idx -> the source that showed it ("" when unknown)
    shown: dict[int, str] = field(default_factory=dict)
    #: ``seen`` in the order it grew, with a parallel 0/1 "liked now" flag, as compact
    #: arrays: the item-to-item source reads neighbours' recent histories from them
    seen_log: array = field(default_factory=lambda: array("i"))
    seen_liked: array = field(default_factory=lambda: array("b"))
    #: movie idx -> its position in ``seen_log``
    seen_at: dict[int, int] = field(default_factory=dict)
    #: every movie the user currently likes, oldest first
    liked: array = field(default_factory=lambda: array("i"))
    n_events: int = 0
    #: the movie whose like the user's next list answers ("because you liked X"): set by a
    #: new like of a user who has been shown lists, cleared by any other act; -1 for none
    answer: int = -1
    #: ranked candidates made on write (:class:`cinerec.engine.plans.Plan`); None until the
    #: user's first personal list
    plan: Any = None

    def see(self, idx: int) -> bool:
        """Add a movie to ``seen``; True if it is new there."""
        if idx in self.seen:
            return False
        self.seen.add(idx)
        self.seen_at[idx] = len(self.seen_log)
        self.seen_log.append(idx)
        self.seen_liked.append(0)
        return True

    def likes(self, idx: int) -> bool:
        """Whether the user currently likes ``idx`` (O(1), unlike a search of ``liked``)."""
        pos = self.seen_at.get(idx)
        return pos is not None and self.seen_liked[pos] == 1

    @property
    def is_cold(self) -> bool:
        return not self.interactions and not self.favorite_genres

    def without(self, items: set[int]) -> UserState:
        """A copy of this user as if ``items`` had never been met (held-out evaluation)."""
        u = UserState(self.idx, self.id, list(self.favorite_genres))
        u.interactions = {i: w for i, w in self.interactions.items() if i not in items}
        u.interaction_ts = {i: t for i, t in self.interaction_ts.items() if i not in items}
        u.recent_likes.extend(i for i in self.recent_likes if i not in items)
        u.disliked = self.disliked - items
        u.shown = {i: s for i, s in self.shown.items() if i not in items}
        for i, liked in zip(self.seen_log, self.seen_liked, strict=True):
            if i not in items:
                u.see(i)
                if liked:
                    u.liked.append(i)
                    u.seen_liked[-1] = 1
        u.n_events = self.n_events
        return u


@dataclass(slots=True)
class SourceTally:
    """Online quality of one source: movies it showed, and how many of them were then liked
    (or disliked)."""

    shown: int = 0
    liked: int = 0
    disliked: int = 0

    @property
    def like_rate(self) -> float:
        return self.liked / self.shown if self.shown else 0.0


class Catalog:
    """Movies as dense-id arrays. Arrays grow by doubling; ``n`` is the live length."""

    active: np.ndarray
    hidden: np.ndarray
    created: np.ndarray
    pop: np.ndarray
    rating_sum: np.ndarray
    rating_cnt: np.ndarray
    shown_cnt: np.ndarray
    positive_cnt: np.ndarray
    genre_mat: np.ndarray  # (capacity, genre capacity) 0/1

    def __init__(self, half_life_days: float = 30.0) -> None:
        self.ids = IdMap()
        self.genres = IdMap()
        self.half_life_s = half_life_days * 86400.0
        self.n = 0
        #: bumped whenever a movie is added or its metadata (genres, year, active) changes;
        #: lets serving sources cache per-movie derived data (e.g. cold-item features)
        self.version = 0
        #: bumped by the engine whenever likes, impressions or events change (cache key of
        #: per-request computations)
        self.tick = 0
        #: positive signals ever added (never lowered): how much evidence popularity has
        self.n_positive = 0
        self._cap = 0
        self.titles: list[str] = []
        self.years: list[int | None] = []
        self.movie_genres: list[tuple[int, ...]] = []
        #: movie idx -> dense ids of the users who like it, oldest first
        self.likers: dict[int, array] = {}
        self._alloc(1024, 32)

    #: per-movie 1-D arrays and their dtypes; all grow together
    _ARRAYS: dict[str, type] = {
        "active": bool,  # in the catalogue (not just named by an event)
        "hidden": bool,
        "created": np.float64,
        "pop": np.float64,  # time-decayed interest, see add_positive
        "rating_sum": np.float64,
        "rating_cnt": np.float64,
        "shown_cnt": np.float64,
        "positive_cnt": np.float64,  # positive signals (likes, good ratings, views, bookmarks)
    }

    def _alloc(self, cap: int, gcap: int) -> None:
        for name, dtype in self._ARRAYS.items():
            new: np.ndarray = np.zeros(cap, dtype=dtype)
            old = self.__dict__.get(name)
            if old is not None:
                new[: len(old)] = old
            setattr(self, name, new)
        mat = np.zeros((cap, gcap), dtype=np.float32)
        old_mat = self.__dict__.get("genre_mat")
        if old_mat is not None:
            mat[: old_mat.shape[0], : old_mat.shape[1]] = old_mat
        self.genre_mat = mat
        self._cap, self._gcap = cap, gcap

    def _ensure(self, n: int, g: int) -> None:
        if n > self._cap or g > self._gcap:
            cap, gcap = self._cap, self._gcap
            while cap < n:
                cap *= 2
            while gcap < g:
                gcap *= 2
            self._alloc(cap, gcap)

    def index(self, movie_id: str) -> int:
        """Dense id of a movie, allocating one (inactive) for an id seen only in events."""
        idx = self.ids.add(movie_id)
        if idx >= self.n:
            self._ensure(idx + 1, self._gcap)
            self.n = idx + 1
            self.titles.append("")
            self.years.append(None)
            self.movie_genres.append(())
            self.version += 1
        return idx

    def upsert(self, m: Movie) -> int:
        idx = self.index(m.id)
        gidx = tuple(self.genres.add(g) for g in m.genres)
        self._ensure(self.n, len(self.genres))
        self.genre_mat[idx, :] = 0
        if gidx:
            self.genre_mat[idx, list(gidx)] = 1.0
        self.movie_genres[idx] = gidx
        self.titles[idx] = m.title
        self.years[idx] = m.year
        self.active[idx] = True
        self.hidden[idx] = m.hidden
        self.created[idx] = m.created_at
        self.version += 1
        if m.rating_count and m.rating_avg is not None and self.rating_cnt[idx] == 0:
            # Catalogue-supplied rating (e.g. IMDb) until our own ratings arrive.
            self.rating_sum[idx] = m.rating_avg * m.rating_count
            self.rating_cnt[idx] = m.rating_count
        return idx

    def is_active(self, movie_id: str) -> bool:
        idx = self.ids.get(movie_id)
        return idx is not None and bool(self.active[idx])

    # -- views used by recommenders ---------------------------------------------------------
    @property
    def servable(self) -> np.ndarray:
        """Bool mask of movies that may be recommended at all."""
        return self.active[: self.n] & ~self.hidden[: self.n]

    def genre_matrix(self) -> np.ndarray:
        return self.genre_mat[: self.n, : len(self.genres)]

    def popularity(self) -> np.ndarray:
        return self.pop[: self.n]

    def bayesian_rating(self, prior_count: float) -> np.ndarray:
        """IMDb-style weighted rating: (v*R + m*C) / (v + m)."""
        cnt = self.rating_cnt[: self.n]
        s = self.rating_sum[: self.n]
        total = cnt.sum()
        c = s.sum() / total if total else 3.0
        return (s + prior_count * c) / (cnt + prior_count)

    def genre_names(self, idx: int) -> list[str]:
        return [self.genres.external(g) for g in self.movie_genres[idx]]

    def without(self, removed: dict[int, list[tuple[UserState, float, float]]]) -> Catalog:
        """A view of the catalogue as if the given positive signals had never arrived
        (``movie idx -> [(user, weight, time)]``): counts, decayed popularity, ratings (a
        strong positive counted as 5 stars) and likers adjusted; the rest is shared."""
        view = copy.copy(self)
        for name in ("pop", "positive_cnt", "rating_sum", "rating_cnt"):
            setattr(view, name, getattr(self, name).copy())
        view.likers = dict(self.likers)
        for i, signals in removed.items():
            gone = {u.idx for u, _, _ in signals if u.likes(i)}
            if gone and i in view.likers:
                view.likers[i] = array("i", (v for v in view.likers[i] if v not in gone))
            for _, w, ts in signals:
                exponent = (ts - _T0) / self.half_life_s if math.isfinite(ts) else 0.0
                view.pop[i] = max(view.pop[i] - w * math.pow(2.0, min(exponent, 1000.0)), 0.0)
                view.positive_cnt[i] = max(view.positive_cnt[i] - 1.0, 0.0)
                if w >= 0.7 and view.rating_cnt[i] >= 1:
                    view.rating_sum[i] -= min(5.0 * w, LIKE_STARS)
                    view.rating_cnt[i] -= 1.0
        view.tick = -1 - self.tick  # never the key of the live catalogue's caches
        return view

    # -- updates ---------------------------------------------------------------------------
    def add_positive(self, idx: int, weight: float, ts: float) -> None:
        """A positive signal: adds to the decayed popularity and to the positive count."""
        exponent = (ts - _T0) / self.half_life_s
        self.pop[idx] += weight * math.pow(2.0, min(exponent, 1000.0))
        self.positive_cnt[idx] += 1.0
        self.n_positive += 1

    def add_liker(self, idx: int, user: UserState) -> None:
        """``user`` likes movie ``idx`` (once, and after :meth:`UserState.see` of it)."""
        user.liked.append(idx)
        user.seen_liked[user.seen_at[idx]] = 1
        self.likers.setdefault(idx, array("i")).append(user.idx)

    def remove_liker(self, idx: int, user: UserState) -> None:
        """``user`` no longer likes ``idx`` (a later dislike): O(likes), and rare."""
        if user.likes(idx):
            user.liked.remove(idx)
            user.seen_liked[user.seen_at[idx]] = 0
            self.likers[idx].remove(user.idx)

    def add_rating(self, idx: int, stars: float) -> None:
        self.rating_sum[idx] += stars
        self.rating_cnt[idx] += 1.0


def event_weight(e: Event, w: EventWeights) -> float | None:
    """Signal strength of one event for the user's profile (None: no profile signal)."""
    kind = e.kind
    if kind is EventKind.LIKE:
        return w.like
    if kind is EventKind.DISLIKE:
        return w.dislike
    if kind is EventKind.BOOKMARK:
        return w.bookmark
    if kind is EventKind.NOT_INTERESTED:
        return w.not_interested
    if kind is EventKind.VIEW:
        progress = e.value if e.value is not None else 1.0
        return w.view_complete if progress >= 0.9 else w.view_partial * progress / 0.9
    if kind is EventKind.RATING:
        v = e.value if e.value is not None else 0.0
        if v >= w.rating_positive_threshold:
            return v / 5.0
        if v <= w.rating_negative_threshold:
            return w.dislike * (1.0 - v / 5.0)
        return 0.1  # lukewarm: watched, mildly positive
    return None
