"""The simulated world: a catalogue and users with hidden tastes, from a rating data set.

A user's *relevant* movies are the ones they rated at least ``relevant_rating`` in the data
set; the simulator never tells the service which they are. Ids are fresh on every run (a
run token prefixes them), as the course grader's are.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cinerec.datasets.movielens import detect


@dataclass(slots=True)
class SimUser:
    id: str
    relevant: frozenset[str]
    #: relevant movies already credited (shown, or found by the user) — each counts once
    credited: set[str] = field(default_factory=set)
    #: every movie the user was shown or reacted to
    seen: set[str] = field(default_factory=set)


@dataclass(slots=True)
class World:
    name: str
    item_ids: list[str]
    genres: dict[str, tuple[str, ...]]
    users: list[SimUser]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def fresh_users(self) -> list[SimUser]:
        """The same users with no history (one world serves several policies)."""
        return [SimUser(u.id, u.relevant) for u in self.users]


def load_world(
    path: str | Path,
    *,
    n_users: int | None = 1000,
    relevant_rating: float = 4.0,
    min_relevant: int = 1,
    seed: int = 0,
    token: str | None = None,
) -> World:
    """Catalogue and users of a MovieLens folder (100K, 1M or latest layouts).

    Every movie of the catalogue file is sent, rated or not (coverage counts them all).
    ``n_users`` users with at least ``min_relevant`` relevant movies are drawn at random.
    """
    ds = detect(path)
    token = token or uuid.uuid4().hex[:6]
    movies = list(ds.movies())
    item_ids = [f"{token}-m{m.movie_id}" for m in movies]
    genres = {f"{token}-m{m.movie_id}": m.genres for m in movies}

    r = ds.ratings()
    keep = r.ratings >= relevant_rating
    by_user: dict[str, set[str]] = {}
    for u, m in zip(r.user_ids[keep], r.movie_ids[keep], strict=True):
        mid = f"{token}-m{m}"
        if mid in genres:
            by_user.setdefault(str(u), set()).add(mid)
    eligible = sorted((u for u, rel in by_user.items() if len(rel) >= min_relevant), key=_num)
    rng = np.random.default_rng(seed)
    if n_users is not None and n_users < len(eligible):
        chosen = sorted(rng.choice(len(eligible), size=n_users, replace=False).tolist())
        eligible = [eligible[i] for i in chosen]
    users = [SimUser(f"{token}-u{u}", frozenset(by_user[u])) for u in eligible]
    return World(Path(path).name, item_ids, genres, users)


def _num(s: str) -> tuple[int, str]:
    return (int(s), s) if s.isdigit() else (1 << 62, s)
