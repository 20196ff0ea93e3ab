"""MovieLens folder -> :class:`InteractionLog` with dense ids (external ids kept at the edge)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cinerec.datasets.movielens import MovieRecord, detect
from cinerec.evaluation.splitters import InteractionLog

__all__ = ["LoadedDataset", "encode_ids", "load_movielens"]


def encode_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids in order of first appearance: ``(codes int32 (n,), uniques (n_unique,))``.

    >>> codes, uniq = encode_ids(np.array(["b", "a", "b"], dtype=object))
    >>> codes.tolist(), uniq.tolist()
    ([0, 1, 0], ['b', 'a'])
    """
    uniq, first, inv = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    remap = np.empty(len(uniq), dtype=np.int32)
    remap[order] = np.arange(len(uniq), dtype=np.int32)
    return remap[inv.ravel()], uniq[order]


@dataclass(frozen=True)
class LoadedDataset:
    """A data set in model space.

    Attributes:
        log: rows in file order (the Microsoft splitter relies on it), dense ids.
        user_ids, item_ids: external string ids, index = dense id.
        movies: ``MovieRecord`` per dense item id (None if the movie file lacks it).
    """

    name: str
    log: InteractionLog
    user_ids: np.ndarray
    item_ids: np.ndarray
    movies: list[MovieRecord | None]

    @property
    def item_genres(self) -> list[frozenset[str]]:
        return [frozenset(m.genres) if m else frozenset() for m in self.movies]


def load_movielens(path: str | Path) -> LoadedDataset:
    """Read any MovieLens layout through :func:`cinerec.datasets.movielens.detect`."""
    ds = detect(path)
    r = ds.ratings()
    users, user_ids = encode_ids(r.user_ids)
    items, item_ids = encode_ids(r.movie_ids)
    by_id = {m.movie_id: m for m in ds.movies()}
    log = InteractionLog(
        users,
        items,
        r.ratings.astype(np.float32),
        r.timestamps.astype(np.float64),
        len(user_ids),
        len(item_ids),
    )
    return LoadedDataset(
        Path(path).name, log, user_ids, item_ids, [by_id.get(str(i)) for i in item_ids]
    )
