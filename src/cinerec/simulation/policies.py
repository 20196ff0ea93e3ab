"""Reference policies the simulator runs beside the service, in process.

Each learns only from what the simulated users send (likes and dislikes), like the service
does, and none of them re-shows a movie to a user: a re-shown movie never earns credit, so
this only makes the references stronger.

- ``random``: uniform over the movies the user has not seen.
- ``most_popular``: the most-liked movies so far (net of dislikes).
- ``most_liked``: the movies with the most likes so far (dislikes not subtracted).
- ``course_baseline``: the course's baseline, 5 most-liked + 5 random unseen movies.
- ``cooccurrence``: online item-to-item: movies liked by the users who liked what this user
  liked (co-like counts, normalised by the candidate's popularity), topped up by popularity.
- ``item_to_item_explore``: ``cooccurrence`` on like counts (topped up by the most liked) in
  8 of the 10 slots, and 2 exploration slots for the movies this policy has shown least so
  far, to anyone (ties at random). ../shared/POPULATIONS.md asks every run to carry it.
- ``genre_liked``: ``most_liked`` times the user's genre lift (the genres of the user's likes
  against everyone's): not asked for, but the strongest simple policy we know of here.

Oracle policies (``oracle = True``) are not references to beat: each reads the population's
hidden answers, which no real policy can, to estimate how far a policy could get on that
population (docs/simulation.md, *Oracles*). They are never "the best reference".

- ``oracle_popular``: every movie's true share of the run's users it is relevant to (the
  best list that is the same for everyone).
- ``oracle_popular_genres``: that share times the user's genre lift (the genres of the
  user's likes so far against everyone's, naive Bayes shrunk by 3 likes).
- ``oracle_user_knn``: movies relevant to the *other* users whose whole hidden lists hold
  what this user liked (user-based neighbours on the answers), ties by true share.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from scipy import sparse

from cinerec.simulation.world import World


class ReferencePolicy:
    name = "reference"
    #: reads the population's hidden answers: a yardstick, never a reference to beat
    oracle = False

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.items: list[str] = []
        self.index: dict[str, int] = {}
        self.likes = np.zeros(0)  # likes net of dislikes, per movie
        self.like_count = np.zeros(0)  # likes only
        self.seen: dict[str, set[int]] = defaultdict(set)
        self.liked: dict[str, list[int]] = defaultdict(list)

    # -- lifecycle ---------------------------------------------------------------------
    def reset(self, world: World) -> None:
        self.items = list(world.item_ids)
        self.index = {m: i for i, m in enumerate(self.items)}
        self.likes = np.zeros(len(self.items))
        self.like_count = np.zeros(len(self.items))
        self.seen.clear()
        self.liked.clear()

    def interact(self, user_id: str, item_ids: Sequence[str], actions: Sequence[str]) -> None:
        for mid, action in zip(item_ids, actions, strict=True):
            i = self.index.get(mid)
            if i is None:
                continue
            self.seen[user_id].add(i)
            if action == "like":
                self.likes[i] += 1
                self.like_count[i] += 1
                self.on_like(user_id, i)
                self.liked[user_id].append(i)
            else:
                self.likes[i] -= 1

    def on_like(self, user_id: str, i: int) -> None:
        """Hook for policies with more state (called before the like joins the user's list)."""

    def recs(self, user_id: str, k: int) -> list[str]:
        seen = self.seen[user_id]
        picks = self.pick(user_id, k, seen)
        picks = self._fill_random(picks, k, seen)
        seen.update(picks)
        return [self.items[i] for i in picks]

    def pick(self, user_id: str, k: int, seen: set[int]) -> list[int]:
        return []

    # -- helpers -----------------------------------------------------------------------
    def _top(self, scores: np.ndarray, k: int, banned: set[int]) -> list[int]:
        s = scores + self.rng.random(len(scores)) * 1e-6  # random tie-break
        if banned:
            s[np.fromiter(banned, dtype=np.int64, count=len(banned))] = -np.inf
        n = min(k, len(s))
        if n <= 0:
            return []
        part = np.argpartition(-s, n - 1)[:n]
        part = part[np.argsort(-s[part])]
        # only movies with a positive score (the tie-break must not make a zero positive)
        return [int(i) for i in part if scores[i] > 0]

    def _fill_random(self, picks: list[int], k: int, seen: set[int]) -> list[int]:
        taken = set(picks)
        tries = 0
        while len(picks) < k and tries < 50 * k:
            i = int(self.rng.integers(len(self.items)))
            tries += 1
            if i not in seen and i not in taken:
                taken.add(i)
                picks.append(i)
        return picks


class RandomPolicy(ReferencePolicy):
    name = "random"


class MostPopularPolicy(ReferencePolicy):
    name = "most_popular"

    def pick(self, user_id: str, k: int, seen: set[int]) -> list[int]:
        return self._top(self.likes, k, seen)


class MostLikedPolicy(ReferencePolicy):
    """The movies with the most likes so far (dislikes not subtracted)."""

    name = "most_liked"

    def pick(self, user_id: str, k: int, seen: set[int]) -> list[int]:
        return self._top(self.like_count, k, seen)


class CourseBaselinePolicy(ReferencePolicy):
    """The course's baseline: the 5 most-liked movies and 5 random unseen ones."""

    name = "course_baseline"

    def pick(self, user_id: str, k: int, seen: set[int]) -> list[int]:
        return self._top(self.likes, k // 2, seen)


class CooccurrencePolicy(ReferencePolicy):
    name = "cooccurrence"
    recent = 20

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.co: dict[int, Counter[int]] = defaultdict(Counter)

    def reset(self, world: World) -> None:
        super().reset(world)
        self.co.clear()

    def on_like(self, user_id: str, i: int) -> None:
        for j in self.liked[user_id]:
            if j != i:
                self.co[i][j] += 1
                self.co[j][i] += 1

    def popularity(self) -> np.ndarray:
        """What normalises the co-like counts and tops the list up: likes net of dislikes."""
        return self.likes

    def pick(self, user_id: str, k: int, seen: set[int]) -> list[int]:
        popularity = self.popularity()
        scores = np.zeros(len(self.items))
        for j in self.liked[user_id][-self.recent :]:
            row = self.co.get(j)
            if not row:
                continue
            idx = np.fromiter(row.keys(), dtype=np.int64, count=len(row))
            cnt = np.fromiter(row.values(), dtype=np.float64, count=len(row))
            scores[idx] += cnt / np.sqrt(np.maximum(popularity[idx], 1.0))
        picks = self._top(scores, k, seen)
        if len(picks) < k:
            picks += self._top(popularity, k - len(picks), seen | set(picks))
        return picks


class ItemToItemExplorePolicy(CooccurrencePolicy):
    """Online item-to-item co-likes (as :class:`CooccurrencePolicy`, on like counts, topped
    up by the most liked) in the first ``k - explore`` slots; the last ``explore`` slots, and
    any the first part leaves empty, go to the movies this policy has shown least so far,
    across all users (ties at random)."""

    name = "item_to_item_explore"
    explore = 2

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.shown = np.zeros(0)  # times each movie was shown, to anyone

    def reset(self, world: World) -> None:
        super().reset(world)
        self.shown = np.zeros(len(self.items))

    def popularity(self) -> np.ndarray:
        return self.like_count

    def pick(self, user_id: str, k: int, seen: set[int]) -> list[int]:
        n_explore = min(self.explore, k)
        picks = super().pick(user_id, k - n_explore, seen)
        return picks + self._least_shown(k - len(picks), seen | set(picks))

    def recs(self, user_id: str, k: int) -> list[str]:
        out = super().recs(user_id, k)
        self.shown[[self.index[m] for m in out]] += 1
        return out

    def _least_shown(self, k: int, banned: set[int]) -> list[int]:
        # fewest shows first; a random fraction < 1 breaks ties without crossing counts
        s = self.shown + self.rng.random(len(self.shown))
        if banned:
            s[np.fromiter(banned, dtype=np.int64, count=len(banned))] = np.inf
        n = min(k, len(s) - len(banned))
        if n <= 0:
            return []
        part = np.argpartition(s, n - 1)[:n]
        return [int(i) for i in part[np.argsort(s[part])]]


class GenreAwarePolicy(ReferencePolicy):
    """A policy that knows the movies' genres (``genre_lift``)."""

    def reset(self, world: World) -> None:
        super().reset(world)
        names = sorted({g for m in self.items for g in world.genres.get(m, ())})
        gi = {g: j for j, g in enumerate(names)}
        rows: list[int] = []
        cols: list[int] = []
        for i, m in enumerate(self.items):
            for g in world.genres.get(m, ()):
                rows.append(i)
                cols.append(gi[g])
        #: movies x genres
        self.item_genres = sparse.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(self.items), max(len(names), 1))
        )
        self.n_genres = np.maximum(np.asarray(self.item_genres.sum(axis=1)).ravel(), 1.0)

    def genre_lift(self, user_id: str, shrink: float = 3.0) -> np.ndarray:
        """Per movie, the mean over its genres of taste / share: ``share`` = the genres'
        share of all likes so far, ``taste`` = the user's likes' genres shrunk towards it by
        ``shrink`` likes (the service's ``genre_popular`` lift)."""
        n_g = self.item_genres.shape[1]
        everyone = np.asarray(self.item_genres.T @ self.like_count).ravel()
        share = (everyone + 1.0) / (everyone.sum() + n_g)
        liked = self.liked[user_id]
        mine = np.asarray(self.item_genres[liked].sum(axis=0)).ravel() if liked else 0.0
        taste = (mine + shrink * share) / (len(liked) + shrink)
        return np.asarray(self.item_genres @ (taste / share)).ravel() / self.n_genres


class GenreLikedPolicy(GenreAwarePolicy):
    """Most likes so far times the user's genre lift: most-liked within the genres the
    user's likes lean to (what the service's ``genre_popular`` scores, on like counts)."""

    name = "genre_liked"

    def pick(self, user_id: str, k: int, seen: set[int]) -> list[int]:
        return self._top(self.like_count * self.genre_lift(user_id), k, seen)


class OraclePopularPolicy(GenreAwarePolicy):
    """Every movie's true share of the run's users it is relevant to, most first."""

    name = "oracle_popular"
    oracle = True

    def reset(self, world: World) -> None:
        super().reset(world)
        rows: list[int] = []
        cols: list[int] = []
        self.row_of: dict[str, int] = {}
        for r, u in enumerate(world.users):
            idx = [self.index[m] for m in u.relevant if m in self.index]
            self.row_of[u.id] = r
            rows += [r] * len(idx)
            cols += idx
        #: users x movies, 1 where the movie is relevant to the user
        self.truth = sparse.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(world.users), len(self.items))
        )
        self.true_share = np.asarray(self.truth.sum(axis=0)).ravel() / max(len(world.users), 1)

    def pick(self, user_id: str, k: int, seen: set[int]) -> list[int]:
        return self._top(self.true_share, k, seen)


class OraclePopularGenresPolicy(OraclePopularPolicy):
    """The true share times the user's genre lift from the likes so far."""

    name = "oracle_popular_genres"

    def pick(self, user_id: str, k: int, seen: set[int]) -> list[int]:
        return self._top(self.true_share * self.genre_lift(user_id), k, seen)


class OracleUserKnnPolicy(OraclePopularPolicy):
    """User-based neighbours on the hidden lists: every other user is weighted by how many of
    this user's likes are relevant to them, over the square root of their list's length,
    squared (the closest neighbours count most); a movie scores the weights of the users it
    is relevant to. The user's own hidden list is left out (it would tell the answer); ties
    and newcomers by true share."""

    name = "oracle_user_knn"

    def reset(self, world: World) -> None:
        super().reset(world)
        self.truth_t = self.truth.T.tocsr()
        self.list_len = np.maximum(np.asarray(self.truth.sum(axis=1)).ravel(), 1.0)

    def pick(self, user_id: str, k: int, seen: set[int]) -> list[int]:
        liked = self.liked[user_id]
        if not liked:
            return self._top(self.true_share, k, seen)
        overlap = np.asarray(self.truth_t[liked].sum(axis=0)).ravel()
        if user_id in self.row_of:
            overlap[self.row_of[user_id]] = 0.0
        weight = (overlap / np.sqrt(self.list_len)) ** 2
        scores = np.asarray(self.truth_t @ weight).ravel()
        return self._top(scores + 1e-6 * self.true_share, k, seen)


REFERENCE_POLICIES: dict[str, type[ReferencePolicy]] = {
    p.name: p
    for p in (
        RandomPolicy,
        MostPopularPolicy,
        MostLikedPolicy,
        CourseBaselinePolicy,
        CooccurrencePolicy,
        ItemToItemExplorePolicy,
        GenreLikedPolicy,
        OraclePopularPolicy,
        OraclePopularGenresPolicy,
        OracleUserKnnPolicy,
    )
}
#: the oracles among them (yardsticks, not references)
ORACLE_POLICIES = frozenset(n for n, p in REFERENCE_POLICIES.items() if p.oracle)
