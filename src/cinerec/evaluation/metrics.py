"""Ranking and beyond-accuracy metrics over top-k lists and sparse ground truth.

Accuracy metrics follow Microsoft Recommenders ``python_evaluation`` (``relevancy_method=
"top_k"``, binary relevance): a user counts if they have at least one test item, and the
average is over those users.

* ``precision@k = hits / k`` (even if fewer than k items were recommended);
* ``recall@k = hits / |relevant|``;
* ``ndcg@k = DCG / IDCG`` with gains 1 and discount ``1/log(1 + rank)``; IDCG puts
  ``min(k, |relevant|)`` hits first (the log base cancels);
* ``map@k = Σ_{hits at rank r} (hits up to r / r) / min(k, |relevant|)`` (``map_at_k``).

Inputs everywhere: ``reco`` an ``(n_users, ≥k)`` int array of item ids best first (``-1`` =
empty slot) and ``truth`` an ``(n_users, n_items)`` sparse matrix whose non-zeros are the
relevant items of the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

__all__ = [
    "catalog_coverage",
    "hit_matrix",
    "intra_list_diversity",
    "map_at_k",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "ranking_report",
    "recall_at_k",
]


def hit_matrix(reco: np.ndarray, truth: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """``(n_users, k)`` bool: is the item at rank ``r`` relevant for that user?

    >>> import numpy as np, scipy.sparse as sp
    >>> hit_matrix(np.array([[2, 0, 1]]), sp.csr_matrix([[1, 0, 1]]), 3).tolist()
    [[True, True, False]]
    """
    t = sp.csr_matrix(truth)
    t.sort_indices()
    top = np.asarray(reco)[:, :k]
    hits = np.zeros(top.shape, dtype=bool)
    for u in range(top.shape[0]):
        rel = t.indices[t.indptr[u] : t.indptr[u + 1]]
        if len(rel):
            hits[u] = np.isin(top[u], rel) & (top[u] >= 0)
    return hits


def _n_relevant(truth: sp.spmatrix | sp.sparray) -> np.ndarray:
    t = sp.csr_matrix(truth)
    t.eliminate_zeros()
    return np.diff(t.indptr)


def _per_user(values: np.ndarray, n_rel: np.ndarray, per_user: bool) -> float | np.ndarray:
    mask = n_rel > 0
    if per_user:
        return np.where(mask, values, np.nan)
    return float(values[mask].mean()) if mask.any() else 0.0


def precision_at_k(
    reco: np.ndarray, truth: sp.spmatrix | sp.sparray, k: int, per_user: bool = False
) -> float | np.ndarray:
    """Mean ``hits / k`` over users with a relevant item.

    >>> import numpy as np, scipy.sparse as sp
    >>> precision_at_k(np.array([[2, 0, 1], [1, 2, 0]]), sp.csr_matrix([[1, 0, 1], [1, 0, 0]]), 2)
    0.5
    """
    n_rel = _n_relevant(truth)
    hits = hit_matrix(reco, truth, k).sum(axis=1)
    return _per_user(hits / k, n_rel, per_user)


def recall_at_k(
    reco: np.ndarray, truth: sp.spmatrix | sp.sparray, k: int, per_user: bool = False
) -> float | np.ndarray:
    """Mean ``hits / |relevant|`` over users with a relevant item.

    >>> import numpy as np, scipy.sparse as sp
    >>> recall_at_k(np.array([[2, 0, 1]]), sp.csr_matrix([[1, 1, 1]]), 2)
    0.6666666666666666
    """
    n_rel = _n_relevant(truth)
    hits = hit_matrix(reco, truth, k).sum(axis=1)
    return _per_user(hits / np.maximum(n_rel, 1), n_rel, per_user)


def ndcg_at_k(
    reco: np.ndarray, truth: sp.spmatrix | sp.sparray, k: int, per_user: bool = False
) -> float | np.ndarray:
    """Mean binary-gain nDCG@k over users with a relevant item.

    >>> import numpy as np, scipy.sparse as sp
    >>> round(ndcg_at_k(np.array([[2, 0, 1]]), sp.csr_matrix([[1, 0, 0]]), 3), 4)  # hit at rank 2
    0.6309
    """
    n_rel = _n_relevant(truth)
    hits = hit_matrix(reco, truth, k)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ disc[: hits.shape[1]]
    ideal = np.r_[0.0, np.cumsum(disc)][np.minimum(n_rel, k)]
    return _per_user(dcg / np.where(ideal > 0, ideal, 1.0), n_rel, per_user)


def map_at_k(
    reco: np.ndarray, truth: sp.spmatrix | sp.sparray, k: int, per_user: bool = False
) -> float | np.ndarray:
    """Mean average precision@k, normalised by ``min(k, |relevant|)``.

    >>> import numpy as np, scipy.sparse as sp
    >>> map_at_k(np.array([[2, 1, 0]]), sp.csr_matrix([[1, 0, 1]]), 3)  # (1/1 + 2/3) / 2
    0.8333333333333333
    """
    n_rel = _n_relevant(truth)
    hits = hit_matrix(reco, truth, k)
    ranks = np.arange(1, hits.shape[1] + 1)
    prec = np.cumsum(hits, axis=1) / ranks
    ap = (prec * hits).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1)
    return _per_user(ap, n_rel, per_user)


def catalog_coverage(reco: np.ndarray, n_items: int, k: int | None = None) -> float:
    """Share of the catalogue that appears in at least one top-k list.

    >>> import numpy as np
    >>> catalog_coverage(np.array([[0, 1], [1, 2]]), n_items=4)
    0.75
    """
    top = np.asarray(reco) if k is None else np.asarray(reco)[:, :k]
    shown = np.unique(top[top >= 0])
    return len(shown) / n_items if n_items else 0.0


def novelty(
    reco: np.ndarray, item_popularity: np.ndarray, n_users: int, k: int | None = None
) -> float:
    """Mean self-information ``-log2(p(i))`` of recommended items, ``p(i)`` = share of
    (training) users who interacted with ``i``; never-seen items count as one user.

    >>> import numpy as np
    >>> novelty(np.array([[0, 1]]), np.array([4, 1]), n_users=4)  # (0 + 2) / 2
    1.0
    """
    top = np.asarray(reco) if k is None else np.asarray(reco)[:, :k]
    items = top[top >= 0]
    if len(items) == 0:
        return 0.0
    p = np.maximum(np.asarray(item_popularity, dtype=np.float64)[items], 1.0) / n_users
    return float(np.mean(-np.log2(p)))


def intra_list_diversity(
    reco: np.ndarray, item_genres: Sequence[frozenset[str] | set[str]], k: int | None = None
) -> float:
    """Mean pairwise genre Jaccard *distance* inside each list, averaged over lists.

    Pairs where both items have no genre count as distance 0 (nothing tells them apart).

    >>> import numpy as np
    >>> g = [{"Drama"}, {"Drama", "War"}, {"Comedy"}]
    >>> round(intra_list_diversity(np.array([[0, 1, 2]]), g), 4)  # (0.5 + 1 + 1) / 3
    0.8333
    """
    top = np.asarray(reco) if k is None else np.asarray(reco)[:, :k]
    per_list = []
    for row in top:
        items = [int(i) for i in row if i >= 0]
        if len(items) < 2:
            continue
        dists = []
        for a in range(len(items)):
            ga = item_genres[items[a]]
            for b in range(a + 1, len(items)):
                gb = item_genres[items[b]]
                union = len(ga | gb)
                dists.append(0.0 if union == 0 else 1.0 - len(ga & gb) / union)
        per_list.append(np.mean(dists))
    return float(np.mean(per_list)) if per_list else 0.0


def ranking_report(
    reco: np.ndarray, truth: sp.spmatrix | sp.sparray, k: int = 10
) -> dict[str, float]:
    """``{"ndcg@k", "precision@k", "recall@k", "map@k"}`` in one call."""
    return {
        f"ndcg@{k}": float(ndcg_at_k(reco, truth, k)),
        f"precision@{k}": float(precision_at_k(reco, truth, k)),
        f"recall@{k}": float(recall_at_k(reco, truth, k)),
        f"map@{k}": float(map_at_k(reco, truth, k)),
    }
