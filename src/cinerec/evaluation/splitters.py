"""Train/test splitters over interaction logs with dense ids.

Every splitter takes an :class:`InteractionLog` (parallel arrays) and returns a :class:`Split`:

* ``train``: ``(n_users, n_items)`` CSR to fit on;
* ``test_users``: ``(n_test,)`` dense ids of the evaluated users;
* ``test_input``: ``(n_test, n_items)`` interactions each evaluated user is scored from
  (fold-in input; for the "weak generalisation" splits these are the users' training rows);
* ``test``: ``(n_test, n_items)`` held-out ground truth.

``Split.warm_users`` says whether the evaluated users are part of ``train`` (so a model may use
learned per-user state) or held out entirely (strong generalisation: fold-in only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = [
    "InteractionLog",
    "Split",
    "Splitter",
    "stratified_split",
    "strong_generalization_split",
    "time_split",
]


@dataclass(frozen=True)
class InteractionLog:
    """Interactions as parallel arrays over dense ids (duplicate pairs are summed).

    Attributes:
        users, items: ``(n,)`` int32 dense ids.
        weights: ``(n,)`` float32 (ratings, counts, signed like strengths...).
        timestamps: ``(n,)`` float64, NaN where unknown.
        n_users, n_items: matrix shape.
    """

    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    timestamps: np.ndarray
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return len(self.users)

    def to_csr(self, index: np.ndarray | None = None, binary: bool = False) -> sp.csr_matrix:
        """``(n_users, n_items)`` float32 CSR of the selected rows (all if ``index`` is None)."""
        sel = slice(None) if index is None else index
        data = self.weights[sel]
        if binary:
            data = np.ones_like(data)
        m = sp.csr_matrix(
            (data.astype(np.float32), (self.users[sel], self.items[sel])),
            shape=(self.n_users, self.n_items),
        )
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
        return m


@dataclass(frozen=True)
class Split:
    train: sp.csr_matrix
    test_users: np.ndarray
    test_input: sp.csr_matrix
    test: sp.csr_matrix
    warm_users: bool
    name: str = ""


Splitter = Callable[[InteractionLog], Split]


def _group_rank(groups: np.ndarray, order_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``rank / count`` inside its group, ranks 1-based by ``order_key`` ascending."""
    order = np.lexsort((order_key, groups))
    g_sorted = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g_sorted)) + 1]
    counts = np.diff(np.r_[starts, len(g_sorted)])
    first = np.repeat(starts, counts)
    rank_sorted = np.arange(len(g_sorted)) - first + 1
    rank = np.empty(len(groups), dtype=np.float64)
    rank[order] = rank_sorted / np.repeat(counts, counts)
    return rank, order


def _weak_split(
    log: InteractionLog, train_mask: np.ndarray, binary_truth: bool, name: str
) -> Split:
    train = log.to_csr(np.flatnonzero(train_mask))
    test_full = log.to_csr(np.flatnonzero(~train_mask), binary=binary_truth)
    users = np.flatnonzero(np.diff(test_full.indptr) > 0)
    return Split(train, users, train[users], test_full[users], warm_users=True, name=name)


def stratified_split(
    log: InteractionLog, ratio: float = 0.75, seed: int = 42, by: str = "user"
) -> Split:
    """Microsoft Recommenders ``python_stratified_split`` (pandas-free, same rows).

    Their code draws ``np.random.seed(seed); np.random.rand(n_rows)`` in row order, sorts by
    ``(group, random)``, and keeps a row in train when ``rank / group_size <= ratio``. The
    default group is the **user** (``filter_by="user"``), which is what their MovieLens
    benchmark uses, although it is often described as "stratified per item". Given rows in
    file order this selects exactly the rows their splitter selects.

    Args:
        log: all interactions, rows in the data set's file order.
        ratio: training share per group.
        seed: NumPy legacy seed (as in their code).
        by: ``"user"`` or ``"item"``.

    Returns:
        A warm-user :class:`Split` whose ``test`` is binary (every rating counts as relevant).
    """
    if by not in ("user", "item"):
        raise ValueError("by must be 'user' or 'item'")
    rng = np.random.RandomState(seed)
    rnd = rng.rand(len(log))
    groups = log.users if by == "user" else log.items
    rank, _ = _group_rank(groups.astype(np.int64), rnd)
    return _weak_split(log, rank <= ratio, True, f"stratified-{by}-{ratio:g}")


def time_split(log: InteractionLog, ratio: float = 0.75) -> Split:
    """Per-user chronological split (``python_chrono_split``): each user's oldest ``ratio``
    of interactions train, the rest test. Rows without a timestamp sort first (train)."""
    ts = np.nan_to_num(log.timestamps, nan=-np.inf)
    rank, _ = _group_rank(log.users.astype(np.int64), ts)
    return _weak_split(log, rank <= ratio, True, f"time-{ratio:g}")


def strong_generalization_split(
    log: InteractionLog,
    n_heldout_users: int | float = 0.1,
    fold_in_ratio: float = 0.8,
    seed: int = 42,
    min_positive: float | None = None,
) -> Split:
    """Held-out users (Liang et al. 2018; Steck 2019): train on the other users only; each
    held-out user's interactions are split at random, ``fold_in_ratio`` becomes the scoring
    input and the rest the truth.

    Args:
        n_heldout_users: a count, or a share of the users if < 1.
        fold_in_ratio: share of a held-out user's interactions given to the model.
        seed: for the user choice and the per-user split.
        min_positive: keep only interactions with weight >= this (their ML-20M protocol uses
            ratings > 3.5); None keeps all.

    Returns:
        A cold-user :class:`Split` (``warm_users = False``); ``train`` keeps the full shape
        with the held-out users' rows empty.
    """
    keep = np.ones(len(log), dtype=bool) if min_positive is None else log.weights >= min_positive
    rng = np.random.default_rng(seed)
    present = np.unique(log.users[keep])
    n_out = round(n_heldout_users * len(present)) if n_heldout_users < 1 else int(n_heldout_users)
    heldout = np.sort(rng.choice(present, size=min(n_out, len(present)), replace=False))
    is_out = np.isin(log.users, heldout) & keep
    train = log.to_csr(np.flatnonzero(keep & ~is_out))
    idx = np.flatnonzero(is_out)
    rank, _ = _group_rank(log.users[idx].astype(np.int64), rng.random(len(idx)))
    fold = log.to_csr(idx[rank <= fold_in_ratio])
    truth = log.to_csr(idx[rank > fold_in_ratio], binary=True)
    users = heldout[(np.diff(truth.indptr)[heldout] > 0) & (np.diff(fold.indptr)[heldout] > 0)]
    return Split(
        train, users, fold[users], truth[users], warm_users=False, name=f"strong-{len(users)}users"
    )
