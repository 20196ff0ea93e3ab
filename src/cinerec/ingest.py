"""Bulk data in: MovieLens import and the synthetic generator. Writes straight to the
store through its bulk path (:meth:`Store.load_events`: tuples, not :class:`Event` objects,
in transactions of ``BATCH`` rows); a running server picks the data up at its next start (or
use the batch API endpoints to feed a live one). Figures: ``benchmarks/ingest.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cinerec.datasets.movielens import detect
from cinerec.domain import Event, EventKind, Movie, User
from cinerec.store import EventRow, Store

#: rows per transaction of the bulk path: large enough that the commit (an fsync) is noise
BATCH = 100_000


@dataclass(slots=True)
class ImportReport:
    movies: int
    events: int
    users: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return (self.movies + self.events) / self.seconds if self.seconds else 0.0


def import_movielens(
    store: Store, path: str | Path, *, progress: bool = True, limit: int | None = None
) -> ImportReport:
    """Import a MovieLens folder (100K, 1M or latest): movies with title/year/genres and the
    catalogue rating (mean, count), then every rating as a ``rating`` event with its time."""
    t0 = time.perf_counter()
    ds = detect(path)
    ratings = ds.ratings()
    n = len(ratings) if limit is None else min(limit, len(ratings))

    # Catalogue rating statistics from the file itself.
    stats: dict[str, tuple[float, int]] = {}
    mids, inv = np.unique(ratings.movie_ids[:n].astype(str), return_inverse=True)
    sums = np.bincount(inv, weights=ratings.ratings[:n], minlength=len(mids))
    cnts = np.bincount(inv, minlength=len(mids))
    for mid, s, c in zip(mids, sums, cnts, strict=True):
        stats[str(mid)] = (float(s / c), int(c))

    # Movies keep the dataset's order; created_at makes that order stable in the store.
    base = time.time()
    movies = []
    for i, rec in enumerate(ds.movies()):
        avg, cnt = stats.get(rec.movie_id, (None, 0))
        movies.append(
            Movie(
                rec.movie_id,
                rec.title,
                rec.year,
                list(rec.genres),
                avg,
                cnt,
                created_at=base + i * 1e-6,
            )
        )
    store.upsert_movies(movies)

    # Columns to Python lists once (numpy scalars are slow to convert one by one).
    users = ratings.user_ids[:n].astype(str).tolist()
    movie_ids = ratings.movie_ids[:n].astype(str).tolist()
    stars = ratings.ratings[:n].astype(float).tolist()
    ts = np.nan_to_num(ratings.timestamps[:n].astype(float), nan=base).tolist()
    kind = EventKind.RATING.value
    with tqdm(total=n, desc=f"importing {ds.kind} ratings", unit="ev", disable=not progress) as bar:
        for start in range(0, n, BATCH):
            stop = min(n, start + BATCH)
            rows: list[EventRow] = [
                (users[i], movie_ids[i], kind, stars[i], ts[i], None) for i in range(start, stop)
            ]
            store.load_events(rows)
            bar.update(len(rows))
    return ImportReport(len(movies), n, len(set(users)), time.perf_counter() - t0)


GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


@dataclass(slots=True)
class SyntheticData:
    movies: list[Movie]
    users: list[User]
    #: user taste as genre weights (hidden truth, for tests of learnability)
    tastes: np.ndarray


def synthetic_catalog(n_movies: int, n_users: int, seed: int = 0) -> SyntheticData:
    """Movies with 1-3 genres and a latent quality; users with tastes over 1-3 genres."""
    rng = np.random.default_rng(seed)
    g = len(GENRES)
    now = time.time()
    movies = []
    for i in range(n_movies):
        k = int(rng.integers(1, 4))
        genres = [GENRES[j] for j in rng.choice(g, size=k, replace=False)]
        movies.append(
            Movie(
                f"m{i}",
                f"Synthetic movie {i}",
                int(rng.integers(1950, 2026)),
                genres,
                created_at=now + i * 1e-6,
            )
        )
    tastes = np.zeros((n_users, g), dtype=np.float32)
    users = []
    for u in range(n_users):
        k = int(rng.integers(1, 4))
        fav = rng.choice(g, size=k, replace=False)
        tastes[u, fav] = rng.dirichlet(np.ones(k))
        users.append(User(f"u{u}", []))
    return SyntheticData(movies, users, tastes)


@dataclass(slots=True)
class SyntheticBatch:
    """Synthetic events as columns: user and movie positions in :class:`SyntheticData`,
    whether each was liked, and its time."""

    users: np.ndarray
    movies: np.ndarray
    liked: np.ndarray
    ts: np.ndarray

    def rows(self, data: SyntheticData) -> list[EventRow]:
        uids = [data.users[u].id for u in self.users.tolist()]
        mids = [data.movies[m].id for m in self.movies.tolist()]
        kinds = [
            EventKind.LIKE.value if x else EventKind.DISLIKE.value for x in self.liked.tolist()
        ]
        ts = self.ts.tolist()
        return [(u, m, k, None, t, None) for u, m, k, t in zip(uids, mids, kinds, ts, strict=True)]


def synthetic_batches(
    data: SyntheticData, n_events: int, seed: int = 0, batch: int = BATCH
) -> Iterator[SyntheticBatch]:
    """Events drawn from each user's taste: a user picks a genre by taste, then a movie of
    that genre by popularity (Zipf); likes what matches, sometimes dislikes what does not.
    Drawn a batch at a time with array operations (one draw per event in Python was most of
    ``cinerec generate``'s time)."""
    rng = np.random.default_rng(seed + 1)
    g = len(GENRES)
    by_genre: list[np.ndarray] = [
        np.array([i for i, m in enumerate(data.movies) if GENRES[j] in m.genres], dtype=np.int64)
        for j in range(g)
    ]
    zipf = [1.0 / np.arange(1, len(ix) + 1) ** 0.8 for ix in by_genre]
    zipf = [z / z.sum() if len(z) else z for z in zipf]
    taste_cdf = np.cumsum(data.tastes.astype(np.float64), axis=1)
    n_users = len(data.users)
    t0 = time.time() - 30 * 86400
    done = 0
    while done < n_events:
        size = min(batch, n_events - done)
        us = rng.integers(0, n_users, size=size)
        off_taste = rng.random(size) < 0.1  # off-taste exploration: mostly disliked
        # a genre by the user's taste: the first whose cumulative share passes a uniform draw
        draw = rng.random(size) * taste_cdf[us, -1]
        genre = np.minimum((taste_cdf[us] <= draw[:, None]).sum(axis=1), g - 1)
        genre[off_taste] = rng.integers(0, g, size=int(off_taste.sum()))
        liked = rng.random(size) < np.where(off_taste, 0.2, 0.9)
        movie = np.full(size, -1, dtype=np.int64)
        for j in np.unique(genre).tolist():
            ix = by_genre[j]
            if len(ix):
                pick = genre == j
                movie[pick] = ix[rng.choice(len(ix), size=int(pick.sum()), p=zipf[j])]
        kept = movie >= 0  # a genre without movies draws nothing
        n_kept = int(kept.sum())
        yield SyntheticBatch(
            us[kept], movie[kept], liked[kept], t0 + (done + np.arange(n_kept)) * 0.5
        )
        done += size


def synthetic_events(
    data: SyntheticData, n_events: int, seed: int = 0, batch: int = BATCH
) -> Iterator[list[Event]]:
    """:func:`synthetic_batches` as :class:`Event` lists (tests, in-process feeding)."""
    for b in synthetic_batches(data, n_events, seed, batch):
        yield [Event(u, m, EventKind(k), v, t, c) for u, m, k, v, t, c in b.rows(data)]


def generate(
    store: Store,
    n_movies: int,
    n_users: int,
    n_events: int,
    *,
    seed: int = 0,
    progress: bool = True,
) -> ImportReport:
    t0 = time.perf_counter()
    data = synthetic_catalog(n_movies, n_users, seed)
    store.upsert_movies(data.movies)
    store.upsert_users(data.users)
    written = 0
    with tqdm(total=n_events, desc="generating events", unit="ev", disable=not progress) as bar:
        for batch in synthetic_batches(data, n_events, seed):
            written += store.load_events(batch.rows(data))
            bar.update(len(batch.users))
    return ImportReport(n_movies, written, n_users, time.perf_counter() - t0)
