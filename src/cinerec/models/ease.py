"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders") and its closed-form relatives."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cinerec.models.base import Model

__all__ = ["EASEModel", "EASEPlusModel", "ease_weights", "gram_matrix"]


def gram_matrix(x: sp.csr_matrix) -> np.ndarray:
    """Dense ``XᵀX`` of shape ``(n_items, n_items)``, float64."""
    g = (x.T @ x).toarray()
    return np.asarray(g, dtype=np.float64)


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of the regularised Gram matrix.

    ``np.linalg.inv`` rather than SciPy's Cholesky: as fast here (3.7k items: 4.8 s against
    4.6 s, one thread) and it releases the GIL, while SciPy's LAPACK wrappers hold it for the
    whole factorisation. Training runs beside request handling in ``cinerec serve``; with the
    GIL held, every ``/recs`` waited out the fit (simulator over HTTP, ML-latest-small: mean
    /recs latency 39 ms and p99 0.67 s before, 12 ms and 0.18 s after).
    """
    return np.linalg.inv(a)


def ease_weights(gram: np.ndarray, lambda_: float, dropout: float = 0.0) -> np.ndarray:
    """Closed-form EASE item-item weights with a zero diagonal.

    ``B = I - P · diagMat(1 / diag(P))`` with ``P = (G + Λ)⁻¹`` and
    ``Λ = λ·I + dropout/(1-dropout) · diagMat(diag(G))``. ``dropout = 0`` is plain EASE; a
    positive ``dropout`` adds the popularity-proportional L2 that input dropout implies
    (Steck 2020, "Autoencoders that don't overfit towards the identity", EDLAE), which
    regularises popular items more.

    Args:
        gram: ``(n_items, n_items)`` ``XᵀX``.
        lambda_: constant L2 strength.
        dropout: emphasised-dropout probability in ``[0, 1)``.

    Returns:
        ``(n_items, n_items)`` float64 ``B``; ``scores = x @ B``.
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError("dropout must be in [0, 1)")
    a = gram.copy()
    diag = np.diag(gram).copy()
    a[np.diag_indices_from(a)] += lambda_ + dropout / (1.0 - dropout) * diag
    p = _spd_inverse(a)
    b = p / (-np.diag(p))[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


class EASEModel(Model):
    """EASE: a dense item-item linear model learned in closed form.

    Fit: one ``n_items x n_items`` Cholesky inverse (ML-1M, 3.7k items: a few seconds). Scores
    are ``x @ B``: fold-in is exact, costs one sparse-row times dense-matrix product, and a
    negative entry (dislike, weight ``-dislike_weight`` when ``binary``) subtracts the items
    the disliked one predicts. ``partial_fit`` is a full refit (cheap enough up to ~10k items).

    Args:
        lambda_: L2 strength (Steck: 200-1000 for MovieLens-sized data).
        dropout: EDLAE emphasised-dropout regularisation, see :func:`ease_weights`.
        binary: train on 1/0 instead of the raw weights.
        dislike_weight: magnitude of a dislike at scoring time (``binary`` only).
    """

    kind = "ease"
    supports_negatives = True

    def __init__(
        self,
        lambda_: float = 500.0,
        dropout: float = 0.0,
        binary: bool = True,
        dislike_weight: float = 1.0,
    ) -> None:
        super().__init__(
            lambda_=lambda_, dropout=dropout, binary=binary, dislike_weight=dislike_weight
        )
        self.weights = np.zeros((0, 0), dtype=np.float32)

    def _input(self, x: sp.csr_matrix) -> sp.csr_matrix:
        if not self._params["binary"]:
            return x
        out = x.copy()
        neg = out.data < 0
        out.data = np.where(neg, -float(self._params["dislike_weight"]), 1.0).astype(np.float32)
        return out

    def _fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None,
        user_features: sp.csr_matrix | None,
    ) -> None:
        g = gram_matrix(self._input(interactions))
        b = ease_weights(g, float(self._params["lambda_"]), float(self._params["dropout"]))
        # cho_solve returns Fortran order; scoring multiplies row-major, and SciPy would copy
        # the whole matrix on every call (30 ms on ML-1M instead of 0.3 ms).
        self.weights = np.ascontiguousarray(b, dtype=np.float32)

    def _score_users(
        self,
        user_items: sp.csr_matrix,
        user_features: sp.csr_matrix | None,
        user_ids: np.ndarray | None,
    ) -> np.ndarray:
        return np.asarray(self._input(user_items) @ self.weights)

    def _item_similarities(self, item: int) -> np.ndarray:
        # Row i of B: how much liking ``item`` raises every other item's score.
        return self.weights[item]

    def _contributions(self, row: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
        # Scores are x @ B: entry j adds x_j * B[j, i], exactly.
        x = self._input(row)
        return x.data[:, None] * self.weights[np.ix_(x.indices, items)]

    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = np.ascontiguousarray(arrays["weights"], dtype=np.float32)


class EASEPlusModel(EASEModel):
    """EASE tuned for explicit-rating logs; our best offline model (see docs/benchmarks.md).

    Three changes to :class:`EASEModel`, each cheap and each kept by a validation split carved
    out of the ML-100K *training* set (not the test set):

    1. **EDLAE regularisation** (``dropout``, default 0.5): the L2 penalty grows with item
       popularity, ``Λ = λI + p/(1-p)·diag(XᵀX)`` (Steck 2020), which stops popular items from
       dominating ``B``.
    2. **Strength-weighted fold-in** (``strength_exponent``, default 0.5): ``B`` is learned on
       binary data, but at scoring time a positive entry ``v`` enters as
       ``(v / max_strength) ** strength_exponent``, so a 5-star rating pulls harder than a
       1-star one while a single mediocre rating still counts. ``max_strength`` is the
       largest training weight.
    3. **Popularity normalisation of scores** (``popularity_exponent``, default 0.1): scores are
       divided by ``(1 + n_i)^β`` where ``n_i`` counts the item's training users, trading a
       little head for long-tail items.

    Dislikes enter the fold-in as ``-dislike_weight`` like in :class:`EASEModel`. Fit cost and
    ``partial_fit`` (a refit) are those of EASE; fold-in costs the same sparse-row product plus
    an element-wise scale.
    """

    kind = "ease_plus"

    def __init__(
        self,
        lambda_: float = 400.0,
        dropout: float = 0.5,
        strength_exponent: float = 0.5,
        popularity_exponent: float = 0.1,
        dislike_weight: float = 1.0,
    ) -> None:
        Model.__init__(
            self,
            lambda_=lambda_,
            dropout=dropout,
            strength_exponent=strength_exponent,
            popularity_exponent=popularity_exponent,
            dislike_weight=dislike_weight,
        )
        self.weights = np.zeros((0, 0), dtype=np.float32)
        self.item_scale = np.zeros(0, dtype=np.float32)
        self.max_strength = 1.0

    def _binary(self, x: sp.csr_matrix) -> sp.csr_matrix:
        out = x.copy()
        out.data = np.ones_like(out.data)
        return out

    def _input(self, x: sp.csr_matrix) -> sp.csr_matrix:
        out = x.copy()
        neg = out.data < 0
        pos = np.clip(out.data / self.max_strength, 0.0, 1.0) ** float(
            self._params["strength_exponent"]
        )
        out.data = np.where(neg, -float(self._params["dislike_weight"]), pos).astype(np.float32)
        return out

    def _fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None,
        user_features: sp.csr_matrix | None,
    ) -> None:
        self.max_strength = float(interactions.data.max()) if interactions.nnz else 1.0
        g = gram_matrix(self._binary(interactions))
        b = ease_weights(g, float(self._params["lambda_"]), float(self._params["dropout"]))
        counts = np.diag(g)
        beta = float(self._params["popularity_exponent"])
        # Folding the score normalisation into B keeps fold-in a single product.
        self.item_scale = np.power(1.0 + counts, -beta).astype(np.float32)
        self.weights = np.ascontiguousarray(b * self.item_scale[None, :], dtype=np.float32)

    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {
            "weights": self.weights,
            "item_scale": self.item_scale,
            "max_strength": np.asarray([self.max_strength], dtype=np.float64),
        }

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = np.ascontiguousarray(arrays["weights"], dtype=np.float32)
        self.item_scale = arrays["item_scale"]
        self.max_strength = float(arrays["max_strength"][0])
