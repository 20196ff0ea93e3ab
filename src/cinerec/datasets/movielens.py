"""Readers for the three MovieLens layouts: 100K (``u.data``), 1M (``ratings*.dat``/
``ratings_reconstructed.csv``) and latest-small / latest (``ratings.csv``).

The readers know nothing about the store or the models: they yield plain records with
string ids, so the importer, the evaluation harness and the simulator share them.

>>> ds = detect("../shared/datasets/ml-latest-small")  # doctest: +SKIP
>>> ds.kind
'latest'
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip

_YEAR_RE = re.compile(r"\((\d{4})\)\s*$")


@dataclass(frozen=True, slots=True)
class MovieRecord:
    movie_id: str
    title: str
    year: int | None
    genres: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RatingRecord:
    user_id: str
    movie_id: str
    rating: float
    timestamp: float | None


@dataclass(frozen=True, slots=True)
class Ratings:
    """All ratings of a data set as parallel arrays (string ids, as in the files)."""

    user_ids: np.ndarray  # dtype object (str)
    movie_ids: np.ndarray  # dtype object (str)
    ratings: np.ndarray  # float32
    timestamps: np.ndarray  # float64, NaN where the file has none

    def __len__(self) -> int:
        return len(self.ratings)


def split_title(raw: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``."""
    raw = raw.strip()
    m = _YEAR_RE.search(raw)
    if not m:
        return raw, None
    return raw[: m.start()].strip(), int(m.group(1))


def _clean_genres(genres: list[str]) -> tuple[str, ...]:
    return tuple(g for g in genres if g and g not in ("(no genres listed)", "unknown"))


class MovieLens:
    """One MovieLens folder. Use :func:`detect` to build it."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind  # "100k" | "1m" | "latest"

    def __repr__(self) -> str:
        return f"MovieLens({str(self.path)!r}, kind={self.kind!r})"

    # -- movies -----------------------------------------------------------------
    def movies(self) -> Iterator[MovieRecord]:
        if self.kind == "100k":
            with open(self.path / "u.item", encoding="latin-1") as f:
                for line in f:
                    parts = line.rstrip("\n").split("|")
                    if len(parts) < 24:
                        continue
                    title, year = split_title(parts[1])
                    flags = parts[5:24]
                    genres = [
                        g for g, flag in zip(ML100K_GENRES, flags, strict=True) if flag == "1"
                    ]
                    yield MovieRecord(parts[0], title, year, _clean_genres(genres))
        elif self.kind == "1m":
            with open(self.path / "movies.dat", encoding="latin-1") as f:
                for line in f:
                    parts = line.rstrip("\n").split("::")
                    if len(parts) != 3:
                        continue
                    title, year = split_title(parts[1])
                    yield MovieRecord(parts[0], title, year, _clean_genres(parts[2].split("|")))
            # The reconstructed copy keys some ratings by item_index only (ambiguous ids):
            # give those a movie of their own so no rating is lost.
            amb = self.path / "ambiguous_items.csv"
            if amb.exists():
                with open(amb, encoding="utf-8") as f:
                    for row in csv.DictReader(f):
                        yield MovieRecord(
                            f"i{row['item_index']}", "(ambiguous MovieLens id)", None, ()
                        )
        else:
            with open(self.path / "movies.csv", encoding="utf-8", newline="") as f:
                for row in csv.DictReader(f):
                    title, year = split_title(row["title"])
                    yield MovieRecord(
                        row["movieId"], title, year, _clean_genres(row["genres"].split("|"))
                    )

    # -- ratings ----------------------------------------------------------------
    def iter_ratings(self) -> Iterator[RatingRecord]:
        r = self.ratings()
        for u, m, v, t in zip(r.user_ids, r.movie_ids, r.ratings, r.timestamps, strict=True):
            yield RatingRecord(u, m, float(v), None if np.isnan(t) else float(t))

    def ratings(self) -> Ratings:
        """Load every rating at once (fast path: NumPy parsing, ~1 s for ML-1M)."""
        if self.kind == "100k":
            raw = np.loadtxt(self.path / "u.data", dtype=np.int64, delimiter="\t")
            return Ratings(
                raw[:, 0].astype(str).astype(object),
                raw[:, 1].astype(str).astype(object),
                raw[:, 2].astype(np.float32),
                raw[:, 3].astype(np.float64),
            )
        if self.kind == "1m":
            rec = self.path / "ratings_reconstructed.csv"
            if rec.exists():
                return _read_csv_ratings(
                    rec,
                    user="user_id",
                    movie="movie_id",
                    rating="rating",
                    ts="timestamp",
                    fallback_movie="item_index",
                )
            raw = np.loadtxt(self.path / "ratings.dat", dtype=np.int64, delimiter="::")
            return Ratings(
                raw[:, 0].astype(str).astype(object),
                raw[:, 1].astype(str).astype(object),
                raw[:, 2].astype(np.float32),
                raw[:, 3].astype(np.float64),
            )
        return _read_csv_ratings(
            self.path / "ratings.csv",
            user="userId",
            movie="movieId",
            rating="rating",
            ts="timestamp",
        )


def _read_csv_ratings(
    path: Path, *, user: str, movie: str, rating: str, ts: str, fallback_movie: str | None = None
) -> Ratings:
    users: list[str] = []
    movies: list[str] = []
    values: list[float] = []
    stamps: list[float] = []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            mid = row[movie]
            if not mid and fallback_movie:
                mid = f"i{row[fallback_movie]}"
            users.append(row[user])
            movies.append(mid)
            values.append(float(row[rating]))
            t = row.get(ts) or ""
            stamps.append(float(t) if t else float("nan"))
    return Ratings(
        np.array(users, dtype=object),
        np.array(movies, dtype=object),
        np.array(values, dtype=np.float32),
        np.array(stamps, dtype=np.float64),
    )


def detect(path: str | Path) -> MovieLens:
    """Recognise a MovieLens folder by the files in it."""
    p = Path(path)
    if (p / "u.data").exists():
        return MovieLens(p, "100k")
    if (p / "movies.dat").exists():
        return MovieLens(p, "1m")
    if (p / "ratings.csv").exists() and (p / "movies.csv").exists():
        return MovieLens(p, "latest")
    raise ValueError(
        f"{p} is not a MovieLens folder: expected u.data (100K), movies.dat (1M) "
        "or movies.csv + ratings.csv (latest)"
    )
