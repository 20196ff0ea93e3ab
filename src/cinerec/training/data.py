"""The training snapshot: every user's current signal per movie, read from the engine's
serving state (so the weights per event kind are exactly the ones serving uses), with optional
time decay."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from cinerec.engine import Engine


@dataclass(slots=True)
class TrainingData:
    """One training snapshot. Rows are the engine's users (dense order); columns are the movies
    with at least one interaction, named by ``item_ids`` (genres and years aligned)."""

    interactions: sp.csr_matrix  # (n_users, n_items)
    item_genres: list[tuple[str, ...]]
    years: list[int | None]
    n_events: int
    item_ids: list[str]
    user_ids: list[str]
    generation: int
    #: newest event time in the data (decay reference); None when decay is off
    t_ref: float | None = None
    #: catalogue dense id of each column
    item_idx: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def shape(self) -> tuple[int, int]:
        return self.interactions.shape


def decay_factors(ts: np.ndarray, t_ref: float, half_life_days: float) -> np.ndarray:
    """``0.5 ** ((t_ref - ts) / half_life)``; unknown times (NaN) and future ones count fully.

    >>> decay_factors(np.array([0.0, 86400.0, np.nan]), 86400.0, 1.0).tolist()
    [0.5, 1.0, 1.0]
    """
    age_days = np.nan_to_num((t_ref - ts) / 86400.0, nan=0.0)
    return np.power(0.5, np.maximum(age_days, 0.0) / half_life_days)


def build_training_data(engine: Engine, half_life_days: float = 0.0) -> TrainingData:
    """Snapshot of every user's current signal per movie (latest event wins).

    Only movies with at least one interaction get a column. With ``half_life_days > 0`` each
    weight is multiplied by ``0.5 ** ((t_ref - t) / half_life)``, ``t`` the time of the event
    behind it and ``t_ref`` the newest such time in the data (not the wall clock, so a replayed
    historical log decays the same way as a live one).
    """
    decay = half_life_days > 0
    with engine.lock:
        cat = engine.catalog
        n_users = len(engine.user_ids)
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        times: list[float] = []
        for uidx, u in engine.users.items():
            inter = u.interactions
            if not inter:
                continue
            rows.extend([uidx] * len(inter))
            cols.extend(inter.keys())
            vals.extend(inter.values())
            if decay:
                ts = u.interaction_ts
                times.extend([ts.get(i, math.nan) for i in inter])
        items, col_idx = np.unique(np.asarray(cols, dtype=np.int64), return_inverse=True)
        genres = [tuple(cat.genres.external(g) for g in cat.movie_genres[i]) for i in items]
        years = [cat.years[i] for i in items]
        n_events = engine.n_events
        item_ids = cat.ids.externals(items.tolist())
        user_ids = engine.user_ids.externals(range(n_users))
        generation = engine.generation
    v = np.asarray(vals, dtype=np.float64)
    t_ref = None
    if decay and len(times):
        t = np.asarray(times, dtype=np.float64)
        if np.isfinite(t).any():
            t_ref = float(np.nanmax(t))
            v = v * decay_factors(t, t_ref, half_life_days)
    x = sp.csr_matrix(
        (v.astype(np.float32), (np.asarray(rows, dtype=np.int64), col_idx.ravel())),
        shape=(n_users, len(items)),
    )
    x.sum_duplicates()
    return TrainingData(x, genres, years, n_events, item_ids, user_ids, generation, t_ref, items)
