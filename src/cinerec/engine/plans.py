"""Plans: a user's ranked candidates, made when the user acts and served from on read.

Making a default list means asking every candidate source and running the ranker: a few
milliseconds to tens of milliseconds. A plan does that work once, when the user's events
arrive (or when the serving models change), and keeps several lists' worth of the result:

- ``ranked``: the ranker's best candidates, best first;
- ``proposals``: each asked source's own best candidates (the bandit slot draws a source and
  takes its best movie the ranker did not already pick);
- ``explore``: exploration picks (least-shown movies of a random sample of the catalogue,
  ordered by this user's taste);
- ``follow``: after a like, a movie that like explains, for the next list when the ranker's
  first picks hold none (so that the next list visibly answers the like).

Serving a list from a plan is a walk down those arrays that skips what the user has seen
since: microseconds. A plan is *invalid* once the user has acted since it was made (the next
list must reflect the like) and is then made again before serving; it is *stale* once the
serving models changed or it grew old, and is then served once more while a fresh one is made
in the background. Users with no history and no favourite genres share one plan per ranking
setting.

A plan is made for one :class:`RankingSetting` (an experiment's variant, or what a promoted
variant made the default): the learned ranker over every source, or one forced source. A
user's plan made for another setting than the user's current one is invalid.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cinerec.engine.policy import Pick

#: how deep a plan asks each source (the ranker orders the union): about a hundred lists'
#: worth, so a user who asks again and again without acting is served from the same plan
#: (the first lists' order does not depend on it, see ``ranking.gather``)
PLAN_DEPTH = 150
#: a user who reads a plan down without acting (list after list) gets the next one twice as
#: deep, up to this: the plan is remade half as often, for a little more work each time
#: (the sources score the whole catalogue whatever the depth)
PLAN_DEPTH_MAX = 600
#: a plan that serves one source's own order (an experiment's variant) holds this many
FORCED_DEPTH = 800
#: exploration picks movies outside the ranker's first this many (its first lists): those
#: the ranker shows anyway
RANKED_FIRST = 200
#: exploration picks a plan keeps, in lists' worth; once they are used up its exploration
#: slots draw from the shared plan's picks (the least-shown movies of the moment)
PLAN_EXPLORE_LISTS = 20
#: proposals of each source searched for the movie that answers a like (``Plan.follow``)
FOLLOW_LOOK = 20
#: the ranker's first picks that may answer a like already (the main slots of a 10-list)
FOLLOW_HEAD = 8
#: a plan with fewer lists than this left in it is made again in the background, before
#: it runs dry (a dry plan is made again on the request path)
PLAN_LOW_WATER = 3
#: exploration picks of the shared plan of users with no history (each list draws from them)
SHARED_EXPLORE = 200
#: a plan older than this is served once more while a fresh one is made (popularity and the
#: co-likes of other users move on; the user's own events remake it at once)
PLAN_TTL_S = 300.0
#: the same for the shared plan of newcomers: one plan serves every first list, and the
#: popularity it orders by moves with every like (most of all in a young catalogue), while
#: remaking it costs one plan for all of them (in the background)
SHARED_PLAN_TTL_S = 5.0
#: ... and sooner while the evidence it was ordered by is thin: once the catalogue holds
#: SHARED_PLAN_GROWTH times the positive signals it was made with, plus SHARED_PLAN_NEW
#: (a young catalogue: the first likes reorder popularity completely, and every newcomer of
#: the first seconds would otherwise get a list ordered by next to nothing), but not more
#: often than every SHARED_PLAN_MIN_AGE_S (a remake asks every source)
SHARED_PLAN_GROWTH = 1.25
SHARED_PLAN_NEW = 10
SHARED_PLAN_MIN_AGE_S = 0.2


def items_of(arr: np.ndarray) -> Sequence[Any]:
    """``arr``'s elements as Python numbers, read one at a time without making a NumPy
    scalar each (a memoryview, where the array's layout allows: the walks of the fast path
    read plans this way)."""
    if arr.dtype.isnative and arr.dtype.kind in "biuf" and arr.flags.c_contiguous:
        return memoryview(arr)  # type: ignore[arg-type]
    return arr.tolist()


def evidence_grown(made_with: int, now: int) -> bool:
    """Whether the catalogue's positive signals (``Catalog.n_positive``) outgrew the ones a
    shared plan was made with (``SHARED_PLAN_GROWTH``, ``SHARED_PLAN_NEW``)."""
    return now >= made_with * SHARED_PLAN_GROWTH + SHARED_PLAN_NEW


#: users whose walk of the shared plan it remembers (``Plan.walks``): a bound on its memory
#: if the plan outlives its few seconds (the engine lock held by a long job) under heavy
#: traffic; a user it does not remember walks it from the top (correct, only slower)
SHARED_WALKS_MAX = 50_000


@dataclass(slots=True, frozen=True)
class Cursor:
    """Where a walk of a user's plan resumes. A walk only moves past movies it serves or
    that may not be shown (seen, hidden), both for good, so a list costs O(k), not a walk
    from the top of a plan a hundred lists deep. Replaced (never changed in place) once the
    list it was walked for is served."""

    ranked: int
    explore: int
    proposals: dict[str, int]
    #: whether the plan's follow-up slot (``Plan.follow``) has been served
    followed: bool = False
    #: the shared plan: where the walk of its ``tail`` resumes
    tail: int = 0
    #: the walk of the shared plan's exploration picks (for a user's own plan: once its
    #: own are used up): that plan's ``made_at``, where in the pool this user's walk began
    #: (a random place: users spread over it) and how far it has gone since
    shared_explore: tuple[float, int, int] | None = None


#: a walk from the top of a plan
START = Cursor(0, 0, {})


@dataclass(frozen=True, slots=True)
class RankingSetting:
    """How a user's default list is made: ``source`` None is the learned ranker over every
    source (with the bandit slot); a source name serves that source's own order alone.
    ``explore`` False leaves out the exploration and bandit slots."""

    source: str | None = None
    explore: bool = True


#: the default list
DEFAULT_SETTING = RankingSetting()


@dataclass(slots=True)
class Plan:
    #: the engine's serving version when the plan was made (models, ranker, catalogue)
    version: int
    #: the user's event count when the plan was made (-1 for the shared plan)
    n_events: int
    made_at: float
    #: the catalogue's positive signals when the plan was made (``Catalog.n_positive``)
    evidence: int
    #: the ranker's order: movie ids, the source that ranks each best (an index into
    #: ``source_names``: a plan is kept per user, and a list of a thousand names per plan
    #: made every full pass of the garbage collector walk millions of references), and its
    #: ranker score
    ranked: np.ndarray
    source_of: np.ndarray
    source_names: tuple[str, ...]
    scores: np.ndarray
    #: per asked source: its best movie ids, best first, and their scores
    proposals: dict[str, tuple[np.ndarray, np.ndarray]]
    #: the source the bandit slot uses (drawn when the plan was made); None = draw per list
    drawn: str | None
    explore: np.ndarray
    #: whether a ranker ordered ``ranked`` (else every main slot is the bandit's)
    has_ranker: bool
    #: online evidence: the candidates' ids (sorted) and feature rows, kept until the plan's
    #: first list is shown (for the shared plan: for every list drawn as evidence)
    cand_idx: np.ndarray | None = None
    features: np.ndarray | None = None
    names: list[str] = field(default_factory=list)
    shared: bool = False
    #: set when a fresh plan has been asked for (so it is asked once)
    refreshing: bool = False
    #: lists served from this plan (a user's plan: to this user)
    lists: int = 0
    #: a user's plan: where the walk of ``ranked``, ``explore`` and each source's proposals
    #: resumes (everything before is shown or may not be shown; see ``Engine._take``)
    cursor: Cursor = START
    #: what the plan was made for
    setting: RankingSetting = DEFAULT_SETTING
    #: how deep it asked each source (``gather``'s ``deep``)
    depth: int = PLAN_DEPTH
    #: ``ranked``, ``scores`` and ``source_of`` read one element at a time (``views``)
    _views: tuple[Sequence[Any], Sequence[Any], Sequence[Any]] | None = field(
        default=None, repr=False, compare=False
    )
    #: a user's plan: a movie the user's newest like explains ("because you liked X"), put
    #: in its first list in place of the last ranked pick (the next list answers the like);
    #: None when the ranker's first picks answer it already, or no source names the like
    follow: Pick | None = None
    #: the shared plan: the rest of the servable catalogue, most popular first, for a user
    #: who has seen all the rest (one who asks faster than their own plan is remade)
    tail: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    #: the shared plan: where each user's next walk of it resumes, by user id, for as long
    #: as it serves (seconds: it is remade every SHARED_PLAN_TTL_S); a walk from the top
    #: past everything such a user saw would cost O(shown) per list
    walks: dict[str, Cursor] = field(default_factory=dict)

    def views(self) -> tuple[Sequence[Any], Sequence[Any], Sequence[Any]]:
        """``ranked``, ``scores`` and ``source_of`` as ``items_of`` views, made once per
        plan (a walk reads a few elements of each per list)."""
        v = self._views
        if v is None:
            v = self._views = (
                items_of(self.ranked),
                items_of(self.scores),
                items_of(self.source_of),
            )
        return v

    def walk_from(self, user_id: str) -> Cursor:
        """Where the walk of this plan for ``user_id`` begins."""
        return self.walks.get(user_id, START) if self.shared else self.cursor

    def walked(self, user_id: str, cursor: Cursor) -> None:
        """A list walked for ``user_id`` up to ``cursor`` is served: the next walk resumes
        there. Call under the engine's ``_pending_lock``."""
        if self.shared:
            if len(self.walks) < SHARED_WALKS_MAX or user_id in self.walks:
                self.walks[user_id] = cursor
        else:
            self.cursor = cursor

    def outdated(self, version: int, evidence: int) -> bool:
        """Made before the serving models, ranker or catalogue last changed (``version``),
        or longer than ``PLAN_TTL_S`` (the shared plan: ``SHARED_PLAN_TTL_S``) ago; the
        shared plan also once the catalogue's positive signals (``evidence``) outgrew the
        ones it was ordered by (``SHARED_PLAN_GROWTH``)."""
        if self.version != version:
            return True
        age = time.monotonic() - self.made_at
        if not self.shared:
            return age > PLAN_TTL_S
        return age > SHARED_PLAN_TTL_S or (
            age > SHARED_PLAN_MIN_AGE_S and evidence_grown(self.evidence, evidence)
        )

    def next_depth(self) -> int:
        """The depth of this user's next plan: twice this one's once the user has walked
        more than half of its ranked order (they read lists faster than they act), else
        ``PLAN_DEPTH``."""
        if self.has_ranker and self.cursor.ranked * 2 > len(self.ranked):
            return min(self.depth * 2, PLAN_DEPTH_MAX)
        return PLAN_DEPTH

    def running_low(self, k: int) -> bool:
        """Whether a user's plan has few lists left (an estimate: as if each list took
        its main slots from what is left of ``ranked``, or of the proposals without a
        ranker)."""
        if self.has_ranker:
            left = len(self.ranked) - self.cursor.ranked
        else:  # every main slot is the bandit's: what is left of the sources' proposals
            at = self.cursor.proposals
            left = sum(len(p) - at.get(name, 0) for name, (p, _) in self.proposals.items())
        return not self.shared and left / max(k - 2, 1) < PLAN_LOW_WATER
