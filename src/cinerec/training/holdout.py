"""The held-out slice a run is checked on: which positives are held out, how the matrix is cut
or reordered to a model's columns, and the held-out metrics (nDCG@10, HR@10)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from cinerec.engine import Engine
from cinerec.evaluation.metrics import ndcg_at_k
from cinerec.models import Model
from cinerec.training.data import TrainingData


def _positions(ids: list[str], first: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """New position of each of ``ids`` when ``first`` comes first (in its order) and the rest of
    ``ids`` follow in theirs; and the resulting id list."""
    pos = {x: j for j, x in enumerate(first)}
    order = list(first)
    new = np.empty(len(ids), dtype=np.int64)
    for j, x in enumerate(ids):
        p = pos.get(x)
        if p is None:
            p = len(order)
            order.append(x)
        new[j] = p
    return new, order


@dataclass(slots=True)
class Holdout:
    """The training matrix with held-out cells removed, and per held-out user the item."""

    train: sp.csr_matrix
    users: np.ndarray
    items: np.ndarray


def align_to(
    data: TrainingData,
    holdout: Holdout,
    item_ids: Sequence[str],
    user_ids: Sequence[str],
    engine: Engine,
) -> tuple[TrainingData, Holdout]:
    """``data`` and ``holdout`` with a model's items and users first, in the model's order.

    Movies (users) the model knows but the snapshot lacks get empty columns (rows), so the
    model's column ``j`` is column ``j`` here; everything else is appended in snapshot order.
    """
    if (
        list(item_ids) == data.item_ids[: len(item_ids)]
        and list(user_ids) == data.user_ids[: len(user_ids)]
    ):
        return data, holdout
    col_new, new_items = _positions(data.item_ids, item_ids)
    row_new, new_users = _positions(data.user_ids, user_ids)
    shape = (len(new_users), len(new_items))

    def remap(m: sp.csr_matrix) -> sp.csr_matrix:
        c = m.tocoo()
        out = sp.csr_matrix((c.data, (row_new[c.row], col_new[c.col])), shape=shape)
        out.sort_indices()
        return out

    known = dict(zip(data.item_ids, zip(data.item_genres, data.years, strict=True), strict=True))
    genres: list[tuple[str, ...]] = []
    years: list[int | None] = []
    with engine.lock:
        cat = engine.catalog
        for mid in new_items:
            if mid in known:
                g, y = known[mid]
            else:  # a movie of the model without interactions now
                idx = cat.ids.get(mid)
                g = tuple(cat.genre_names(idx)) if idx is not None else ()
                y = cat.years[idx] if idx is not None else None
            genres.append(g)
            years.append(y)
    aligned = replace(
        data,
        interactions=remap(data.interactions),
        item_genres=genres,
        years=years,
        item_ids=new_items,
        user_ids=new_users,
    )
    return aligned, Holdout(remap(holdout.train), row_new[holdout.users], col_new[holdout.items])


def keep_top_items(data: TrainingData, holdout: Holdout, n: int) -> tuple[TrainingData, Holdout]:
    """``data`` and ``holdout`` cut to the ``n`` movies with the most positive signals.

    Dense item-item models (EASE: memory and fit time grow with items squared) train on this
    head of the catalogue; the other movies reach users through the other sources. A held-out
    movie outside the head stays a miss in the hold-out metrics (index -1)."""
    if data.shape[1] <= n:
        return data, holdout
    positives = np.asarray((data.interactions > 0).sum(axis=0)).ravel()
    keep = np.sort(np.argsort(-positives, kind="stable")[:n])
    new_col = np.full(data.shape[1], -1, dtype=np.int64)
    new_col[keep] = np.arange(len(keep))
    cut = replace(
        data,
        interactions=data.interactions[:, keep].tocsr(),
        item_genres=[data.item_genres[i] for i in keep],
        years=[data.years[i] for i in keep],
        item_ids=[data.item_ids[i] for i in keep],
    )
    return cut, Holdout(holdout.train[:, keep].tocsr(), holdout.users, new_col[holdout.items])


def holdout_split(
    x: sp.csr_matrix,
    n_users: int,
    seed: int = 0,
    share: float = 0.2,
    most: int = 10,
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Hold out a random ``share`` of the positives (at least 1, at most ``most``) of up to
    ``n_users`` users with at least 3 positives.

    Returns ``(train, users, items)``: the matrix without the held-out cells and the held-out
    ``(user, item)`` pairs (a user appears once per held-out item).
    """
    rng = np.random.default_rng(seed)
    pos = (x > 0).astype(np.int32)
    counts = np.asarray(pos.sum(axis=1)).ravel()
    eligible = np.flatnonzero(counts >= 3)
    chosen = rng.choice(eligible, size=min(n_users, len(eligible)), replace=False)
    chosen.sort()
    users: list[int] = []
    items: list[int] = []
    keep = np.ones(x.nnz, dtype=bool)
    for u in chosen:
        lo, hi = x.indptr[u], x.indptr[u + 1]
        cells = np.arange(lo, hi)[x.data[lo:hi] > 0]
        n = int(min(max(1, round(share * len(cells))), most, len(cells) - 2))
        out = rng.choice(cells, size=n, replace=False)
        keep[out] = False
        users.extend([int(u)] * n)
        items.extend(x.indices[out].tolist())
    train = x.copy()
    train.data = np.where(keep, train.data, 0).astype(train.data.dtype)
    train.eliminate_zeros()
    return train, np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


def holdout_metrics(
    model: Model,
    train: sp.csr_matrix,
    users: np.ndarray,
    items: np.ndarray,
    features: dict[str, Any],
    k: int = 10,
) -> dict[str, float]:
    if len(users) == 0:
        return {}
    uniq, row = np.unique(users, return_inverse=True)
    uf = features.get("user_features")
    reco, _ = model.recommend(
        train[uniq],
        k=k,
        filter_seen=True,
        user_features=None if uf is None else uf[uniq],
        user_ids=uniq,
    )
    # A held-out movie the model has no column for (-1, see keep_top_items) is a miss: it
    # counts in the ideal (column n, which no model recommends) and is never found.
    n = train.shape[1]
    truth = sp.csr_matrix(
        (np.ones(len(items)), (row, np.where(items >= 0, items, n))), shape=(len(uniq), n + 1)
    )
    truth.sum_duplicates()
    truth.data[:] = 1.0
    hits = np.asarray(
        [
            np.isin(reco[j], truth.indices[truth.indptr[j] : truth.indptr[j + 1]]).any()
            for j in range(len(uniq))
        ]
    )
    ndcg = ndcg_at_k(reco, truth, k)
    return {
        "ndcg@10": round(float(ndcg), 5),
        "hr@10": round(float(hits.mean()), 5),
        "holdout_users": float(len(uniq)),
    }
