from __future__ import annotations

import numpy as np
import pytest

from cinerec.evaluation.splitters import (
    InteractionLog,
    stratified_split,
    strong_generalization_split,
    time_split,
)


def _log(seed: int = 0, n: int = 3000) -> InteractionLog:
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.stack([rng.integers(0, 80, n), rng.integers(0, 120, n)], 1), axis=0)
    pairs = pairs[rng.permutation(len(pairs))]
    return InteractionLog(
        pairs[:, 0].astype(np.int32),
        pairs[:, 1].astype(np.int32),
        rng.integers(1, 6, len(pairs)).astype(np.float32),
        rng.random(len(pairs)) * 1e9,
        80,
        120,
    )


def _reference_ms_train_mask(log: InteractionLog, ratio: float, seed: int) -> np.ndarray:
    """Microsoft Recommenders ``_do_stratification`` re-done with plain Python loops."""
    np.random.seed(seed)
    rnd = np.random.rand(len(log))
    mask = np.zeros(len(log), dtype=bool)
    for u in np.unique(log.users):
        rows = sorted(np.flatnonzero(log.users == u), key=lambda i: rnd[i])
        for rank, i in enumerate(rows, 1):
            mask[i] = rank / len(rows) <= ratio
    return mask


def test_stratified_split_matches_reference() -> None:
    log = _log()
    split = stratified_split(log, 0.75, seed=42)
    mask = _reference_ms_train_mask(log, 0.75, 42)
    expected_train = log.to_csr(np.flatnonzero(mask))
    assert (split.train != expected_train).nnz == 0
    assert split.train.nnz + split.test.nnz == len(log)
    assert split.warm_users
    assert (split.test_input != split.train[split.test_users]).nnz == 0
    assert set(np.unique(split.test.data)) == {1.0}  # every rating counts as relevant


def test_stratified_split_per_item_and_bad_group() -> None:
    split = stratified_split(_log(), by="item")
    counts_train = np.diff(split.train.tocsc().indptr)
    assert counts_train.sum() > 0
    with pytest.raises(ValueError):
        stratified_split(_log(), by="genre")


def test_time_split_keeps_each_users_oldest() -> None:
    log = _log(1)
    split = time_split(log, 0.75)
    train = split.train.tocoo()
    ts = {(u, i): t for u, i, t in zip(log.users, log.items, log.timestamps, strict=True)}
    last_train = {}
    for u, i in zip(train.row, train.col, strict=True):
        last_train[u] = max(last_train.get(u, -1.0), ts[(u, i)])
    test = split.test.tocoo()
    for r, i in zip(test.row, test.col, strict=True):
        u = split.test_users[r]
        assert ts[(u, i)] >= last_train.get(u, -1.0)


def test_strong_generalization_holds_users_out() -> None:
    log = _log(2)
    split = strong_generalization_split(log, n_heldout_users=10, fold_in_ratio=0.8)
    assert not split.warm_users
    assert len(split.test_users) <= 10
    assert split.train[split.test_users].nnz == 0
    assert split.test_input.shape == split.test.shape
    assert split.test_input.multiply(split.test).nnz == 0
