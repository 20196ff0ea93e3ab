"""Serving rules shared by every recommender.

1. Never show a user a movie already shown to them, liked, disliked, rated, viewed,
   bookmarked or excluded, nor a hidden movie, nor one that is only known from events.
2. Mix sources by weight (largest-remainder quotas), each movie labelled with its source.
3. Give a share of the slots to exploration drawn from the whole catalogue, never-shown and
   then least-shown movies first, so every movie gets an audience (coverage) and cold movies
   are seen; once every movie has been shown to someone, exploration stops until a new one
   arrives.
4. Answer exactly ``k`` movies while the catalogue has that many: a source that runs dry
   hands its slots on; when a user has seen everything, already-shown movies come back
   (labelled ``reshow``) rather than a short list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from cinerec.engine.recommenders import Recommender
from cinerec.engine.state import Catalog, UserState

EXPLORE = "explore"
RESHOW = "reshow"
#: exploration draws ``want * EXPLORE_SAMPLE`` random movies, keeps the ``want * EXPLORE_TIER``
#: least shown of them, and picks the best of those for the user
EXPLORE_SAMPLE, EXPLORE_TIER = 64, 8


# Not frozen: a frozen dataclass's __init__ costs three times a plain one's (1.3 against
# 0.4 µs here), and every list makes twenty of these (Pick, Recommended). Treat as values.
@dataclass(slots=True)
class Pick:
    idx: int
    source: str
    score: float


@dataclass(frozen=True, slots=True)
class BlendPart:
    recommender: Recommender
    weight: float


def quotas(weights: Sequence[float], total: int) -> list[int]:
    """Split ``total`` slots by ``weights`` with the largest-remainder method.

    >>> quotas([0.5, 0.3, 0.2], 8)
    [4, 2, 2]
    """
    s = sum(weights)
    if total <= 0 or s <= 0:
        return [0] * len(weights)
    raw = [w / s * total for w in weights]
    base = [int(r) for r in raw]
    rest = sorted(range(len(raw)), key=lambda i: raw[i] - base[i], reverse=True)
    for i in rest[: total - sum(base)]:
        base[i] += 1
    return base


def top_n(scores: np.ndarray, ok: np.ndarray, n: int, positive_only: bool) -> np.ndarray:
    """Indices of the ``n`` best allowed scores, best first."""
    m = min(len(scores), len(ok))
    s = np.where(ok[:m], scores[:m], -np.inf)
    if positive_only:
        s[s <= 0] = -np.inf
    n = min(n, m)
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-s, n - 1)[:n] if n < m else np.arange(m)
    part = part[np.isfinite(s[part])]
    return part[np.argsort(-s[part], kind="stable")]


class ServingPolicy:
    def __init__(
        self, exploration_share: float = 0.2, seed: int | None = None, saturation: float = 0.8
    ) -> None:
        self.exploration_share = exploration_share
        self.saturation = saturation
        self.rng = np.random.default_rng(seed)

    def exploration_slots(self, catalog: Catalog, k: int) -> int:
        """``exploration_share`` of the list while much of the catalogue has never been
        shown; a single slot once ``saturation`` of it has an audience, as long as some
        movie has none (a movie added later opens it again); none once every movie has been
        shown to someone. Past that point, exploration's least-shown movies are those
        nobody liked when shown (in the closed loop, fewer likes per slot than a random
        movie): the slot serves the user's taste instead."""
        full = round(k * self.exploration_share)
        servable = catalog.servable
        n = int(servable.sum())
        if full == 0 or n == 0:
            return full
        shown = int(np.count_nonzero(catalog.shown_cnt[: catalog.n][servable]))
        if shown == n:
            return 0
        return 1 if full == 1 or shown / n >= self.saturation else full

    def allowed(
        self,
        user: UserState | None,
        catalog: Catalog,
        exclude: Iterable[int] = (),
        only: np.ndarray | None = None,
    ) -> np.ndarray:
        ok = catalog.servable.copy()
        if only is not None:
            ok &= only[: catalog.n]
        banned = list(exclude)
        if user is not None:
            banned.extend(user.seen)
        if banned:
            ok[np.fromiter(banned, dtype=np.int64, count=len(banned))] = False
        return ok

    def recommend(
        self,
        user: UserState | None,
        catalog: Catalog,
        parts: Sequence[BlendPart],
        k: int,
        *,
        exclude: Iterable[int] = (),
        only: np.ndarray | None = None,
        explore: bool = True,
    ) -> list[Pick]:
        exclude = list(exclude)
        ok = self.allowed(user, catalog, exclude, only)
        n_explore = self.exploration_slots(catalog, k) if explore else 0
        n_main = k - n_explore

        # Each source's ranked candidates; abstaining sources drop out of the mix.
        ranked: list[tuple[str, np.ndarray, np.ndarray]] = []
        weights: list[float] = []
        for part in parts:
            sc = part.recommender.scores(user, catalog)
            if sc is None:
                continue
            cand = top_n(sc, ok, k * 2 + 10, getattr(part.recommender, "positive_only", True))
            if len(cand):
                ranked.append((part.recommender.name, cand, sc))
                weights.append(part.weight)

        picks: list[Pick] = []
        taken: set[int] = set()
        self._interleave(picks, taken, ranked, weights, n_main)
        return self.complete(picks, user, catalog, ok, k, ranked, weights, exclude, only)

    def complete(
        self,
        picks: list[Pick],
        user: UserState | None,
        catalog: Catalog,
        ok: np.ndarray,
        k: int,
        ranked: Sequence[tuple[str, np.ndarray, np.ndarray]],
        weights: Sequence[float],
        exclude: list[int],
        only: np.ndarray | None,
    ) -> list[Pick]:
        """Fill the list after its main slots: exploration, then re-shows if the user has
        seen everything (``picks`` is extended in place and returned)."""
        taken = {p.idx for p in picks}
        self._explore(picks, taken, ok, catalog, k - len(picks), ranked, weights)
        if len(picks) < k and user is not None:
            self._reshow(picks, taken, user, catalog, exclude, only, k - len(picks))
        del picks[k:]
        return picks

    @staticmethod
    def _interleave(
        picks: list[Pick],
        taken: set[int],
        ranked: Sequence[tuple[str, np.ndarray, np.ndarray]],
        weights: Sequence[float],
        n_main: int,
    ) -> None:
        """Slots by quota: sources take turns in proportion to their weights."""
        cursors = [0] * len(ranked)

        def take_from(j: int, want: int) -> int:
            name, cand, sc = ranked[j]
            got = 0
            while got < want and cursors[j] < len(cand):
                i = int(cand[cursors[j]])
                cursors[j] += 1
                if i not in taken:
                    taken.add(i)
                    picks.append(Pick(i, name, float(sc[i])))
                    got += 1
            return got

        # Interleave sources one slot at a time in proportion to their quotas, so the head
        # of the list mixes sources; leftovers of a dry source go to the others.
        q = quotas(weights, n_main)
        order = sorted(((r + 1) / (qj + 1e-9), j) for j, qj in enumerate(q) for r in range(qj))
        for _, j in order:
            if not take_from(j, 1):
                for other in range(len(ranked)):
                    if take_from(other, 1):
                        break
        for j in range(len(ranked)):
            if len(picks) >= n_main:
                break
            take_from(j, n_main - len(picks))

    def _explore(
        self,
        picks: list[Pick],
        taken: set[int],
        ok: np.ndarray,
        catalog: Catalog,
        want: int,
        ranked: Sequence[tuple[str, np.ndarray, np.ndarray]] = (),
        weights: Sequence[float] = (),
    ) -> None:
        """Fill ``want`` slots from the least-shown movies of the whole catalogue.

        A random sample of allowed movies is cut to its least-shown ones (ties broken at
        random), and those are ordered by the blend's own scores for this user: exposure is
        spread over the catalogue, and each exploration slot goes to the movie of that tier
        this user is most likely to enjoy.
        """
        if want <= 0:
            return
        pool = np.flatnonzero(ok)
        if taken:
            pool = pool[~np.isin(pool, np.fromiter(taken, dtype=np.int64, count=len(taken)))]
        if len(pool) == 0:
            return
        # The sample holds every movie nobody has been shown, up to its size, however few
        # of them are left (a random sample of the catalogue would miss the last ones).
        size = min(len(pool), want * EXPLORE_SAMPLE)
        unseen = catalog.shown_cnt[pool] == 0
        never, rest = pool[unseen], pool[~unseen]
        if len(never) >= size:
            sample = self.rng.choice(never, size=size, replace=False)
        else:
            more = self.rng.choice(rest, size=size - len(never), replace=False)
            sample = np.concatenate([never, more])
        shown = catalog.shown_cnt[sample] + self.rng.random(len(sample))
        tier = sample[np.argsort(shown, kind="stable")[: want * EXPLORE_TIER]]
        taste = np.zeros(len(tier))
        for (_, _, sc), w in zip(ranked, weights, strict=True):
            v = sc[tier]
            v = np.where(np.isfinite(v), v, np.nan)
            lo, hi = np.nanmin(v, initial=np.inf), np.nanmax(v, initial=-np.inf)
            if np.isfinite(lo) and hi > lo:
                taste += w * np.nan_to_num((v - lo) / (hi - lo), nan=0.0)
        for i in tier[np.argsort(-taste, kind="stable")][:want]:
            taken.add(int(i))
            picks.append(Pick(int(i), EXPLORE, 0.0))

    def _reshow(
        self,
        picks: list[Pick],
        taken: set[int],
        user: UserState,
        catalog: Catalog,
        exclude: list[int],
        only: np.ndarray | None,
        want: int,
    ) -> None:
        banned = set(user.interactions) | user.disliked | set(exclude) | taken
        for i in self.reshow_order(catalog, user.shown, banned, only)[: max(want, 0)]:
            taken.add(i)
            picks.append(Pick(i, RESHOW, 0.0))

    @staticmethod
    def reshow_order(
        catalog: Catalog, shown: Iterable[int], banned: set[int], only: np.ndarray | None
    ) -> list[int]:
        """The movies of ``shown`` that may be shown again (servable, within ``only``, not
        ``banned``), least shown first."""
        ok = catalog.servable.copy()
        if only is not None:
            ok &= only[: catalog.n]
        usable = [i for i in shown if i < len(ok) and ok[i] and i not in banned]
        return sorted(usable, key=lambda i: catalog.shown_cnt[i])
