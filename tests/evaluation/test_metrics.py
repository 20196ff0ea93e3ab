"""Our metrics against independent implementations on the same predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score

from cinerec.evaluation.metrics import (
    catalog_coverage,
    intra_list_diversity,
    map_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
)


def _random_case(
    seed: int, n_users: int = 60, n_items: int = 40, k: int = 10
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    scores = rng.random((n_users, n_items))
    reco = np.argsort(-scores, axis=1)[:, :k]
    truth = rng.random((n_users, n_items)) < rng.uniform(0.02, 0.3, size=(n_users, 1))
    truth[0] = False  # a user without test items must be ignored
    return scores, reco, sp.csr_matrix(truth.astype(np.float32))


def _brute(reco: np.ndarray, truth: sp.csr_matrix, k: int) -> dict[str, float]:
    """Microsoft Recommenders' definitions, written out literally."""
    p, r, n, m = [], [], [], []
    dense = truth.toarray() > 0
    for u in range(len(reco)):
        rel = set(np.flatnonzero(dense[u]))
        if not rel:
            continue
        hits = [int(i) in rel for i in reco[u][:k]]
        p.append(sum(hits) / k)
        r.append(sum(hits) / len(rel))
        dcg = sum(1 / math.log(1 + rank) for rank, h in enumerate(hits, 1) if h)
        idcg = sum(1 / math.log(1 + rank) for rank in range(1, min(k, len(rel)) + 1))
        n.append(dcg / idcg)
        seen, ap = 0, 0.0
        for rank, h in enumerate(hits, 1):
            if h:
                seen += 1
                ap += seen / rank
        m.append(ap / min(k, len(rel)))
    return {
        "p": float(np.mean(p)),
        "r": float(np.mean(r)),
        "n": float(np.mean(n)),
        "m": float(np.mean(m)),
    }


@pytest.mark.parametrize("seed", range(5))
def test_against_brute_force(seed: int) -> None:
    _, reco, truth = _random_case(seed)
    ref = _brute(reco, truth, 10)
    assert precision_at_k(reco, truth, 10) == pytest.approx(ref["p"])
    assert recall_at_k(reco, truth, 10) == pytest.approx(ref["r"])
    assert ndcg_at_k(reco, truth, 10) == pytest.approx(ref["n"])
    assert map_at_k(reco, truth, 10) == pytest.approx(ref["m"])


@pytest.mark.parametrize("seed", range(5))
def test_ndcg_against_sklearn(seed: int) -> None:
    scores, reco, truth = _random_case(seed)
    dense = truth.toarray()
    keep = dense.sum(axis=1) > 0
    expected = ndcg_score(dense[keep], scores[keep], k=10)
    assert ndcg_at_k(reco, truth, 10) == pytest.approx(expected)


def test_per_user_values_and_empty_slots() -> None:
    reco = np.array([[1, -1, -1], [0, 1, 2]])
    truth = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 0]], dtype=np.float32))
    per_user = ndcg_at_k(reco, truth, 3, per_user=True)
    assert isinstance(per_user, np.ndarray)
    assert per_user[0] == pytest.approx(1.0) and np.isnan(per_user[1])
    assert precision_at_k(reco, truth, 3) == pytest.approx(1 / 3)


def test_beyond_accuracy() -> None:
    reco = np.array([[0, 1], [0, 2]])
    assert catalog_coverage(reco, 4) == 0.75
    assert novelty(reco, np.array([2, 1, 1, 0]), n_users=2) == pytest.approx(0.5)
    genres = [frozenset({"A"}), frozenset({"A"}), frozenset({"B"})]
    assert intra_list_diversity(reco, genres) == pytest.approx(0.5)
