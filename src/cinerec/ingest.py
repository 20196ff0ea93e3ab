"""Bulk data in: MovieLens import and the synthetic generator. Writes straight to the
store in large batches (thousands of rows per second); a running server picks the data up
at its next start (or use the batch API endpoints to feed a live one)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cinerec.datasets.movielens import detect
from cinerec.domain import Event, EventKind, Movie, User
from cinerec.store import Store

BATCH = 20_000


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

    fallback_ts = base
    with tqdm(total=n, desc=f"importing {ds.kind} ratings", unit="ev", disable=not progress) as bar:
        for start in range(0, n, BATCH):
            stop = min(n, start + BATCH)
            batch = [
                Event(
                    str(ratings.user_ids[i]),
                    str(ratings.movie_ids[i]),
                    EventKind.RATING,
                    float(ratings.ratings[i]),
                    fallback_ts
                    if math.isnan(ratings.timestamps[i])
                    else float(ratings.timestamps[i]),
                )
                for i in range(start, stop)
            ]
            store.add_events(batch)
            bar.update(len(batch))
    users = len(set(ratings.user_ids[:n]))
    return ImportReport(len(movies), n, users, time.perf_counter() - t0)


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


def synthetic_events(
    data: SyntheticData, n_events: int, seed: int = 0, batch: int = BATCH
) -> Iterator[list[Event]]:
    """Events drawn from each user's taste: a user picks a genre by taste, then a movie of
    that genre by popularity (Zipf); likes what matches, sometimes dislikes what does not."""
    rng = np.random.default_rng(seed + 1)
    g = len(GENRES)
    by_genre: list[np.ndarray] = [
        np.array([i for i, m in enumerate(data.movies) if GENRES[j] in m.genres]) for j in range(g)
    ]
    zipf = [1.0 / np.arange(1, len(ix) + 1) ** 0.8 for ix in by_genre]
    zipf = [z / z.sum() if len(z) else z for z in zipf]
    n_users = len(data.users)
    t0 = time.time() - 30 * 86400
    done = 0
    while done < n_events:
        size = min(batch, n_events - done)
        us = rng.integers(0, n_users, size=size)
        out: list[Event] = []
        for u in us:
            taste = data.tastes[u]
            if rng.random() < 0.1:  # off-taste exploration: mostly disliked
                gj = int(rng.integers(0, g))
                liked = rng.random() < 0.2
            else:
                gj = int(rng.choice(g, p=taste))
                liked = rng.random() < 0.9
            ix = by_genre[gj]
            if len(ix) == 0:
                continue
            m = data.movies[int(ix[rng.choice(len(ix), p=zipf[gj])])]
            out.append(
                Event(
                    data.users[u].id,
                    m.id,
                    EventKind.LIKE if liked else EventKind.DISLIKE,
                    ts=t0 + (done + len(out)) * 0.5,
                )
            )
        done += size
        yield out


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
        for chunk in synthetic_events(data, n_events, seed):
            store.add_events(chunk)
            written += len(chunk)
            bar.update(len(chunk))
    return ImportReport(n_movies, written, n_users, time.perf_counter() - t0)
