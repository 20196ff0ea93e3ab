"""LightFM hybrid matrix factorisation (WARP) with item and user side features."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from cinerec.models.base import Model, csr_from_arrays, csr_to_arrays

__all__ = ["LightFMModel"]

_STATE = (
    "item_embeddings", "item_embedding_gradients", "item_embedding_momentum",
    "item_biases", "item_bias_gradients", "item_bias_momentum",
    "user_embeddings", "user_embedding_gradients", "user_embedding_momentum",
    "user_biases", "user_bias_gradients", "user_bias_momentum",
)  # fmt: skip


def _import_lightfm() -> Any:
    try:
        from lightfm import LightFM
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "LightFMModel needs the 'lightfm' module: pip install rectools-lightfm"
        ) from exc
    return LightFM


class LightFMModel(Model):
    """LightFM (Kula 2015) with WARP loss.

    Item features: pass the full matrix (identity block included, see
    :func:`cinerec.models.features.item_features`); without it LightFM uses the identity.
    User features: pass only the *side* columns (e.g. favourite genres); the model prepends a
    per-user identity block itself, because fold-in has to tell the two apart.

    Scoring: for a user known at fit time and passed as ``user_id`` the learned
    representation is used. Otherwise (fold-in, no retraining) the user vector is the sum of
    the side-feature embeddings of ``user_features_row`` plus the strength-weighted mean of the
    representations of the items the user liked; a brand-new user with one like thus gets that
    item's neighbourhood. Scores are ``item_repr @ u + item_bias``.

    ``partial_fit``: same shape -> ``epochs_partial`` more epochs of ``fit_partial`` on the new
    matrix; a grown matrix -> full refit (LightFM cannot add feature columns).

    Cold items: an item added after ``fit`` has no identity embedding, but when the model was
    fitted with named side features (``fit(..., item_feature_names=...)``)
    :meth:`score_cold_items` represents it as LightFM does any item, the weighted sum of its
    feature embeddings (genres, decade; the identity term simply absent) plus the sum of those
    features' biases, and scores it against the same user vector as the known items.
    """

    kind = "lightfm"
    uses_item_features = True
    uses_user_features = True
    supports_incremental = True

    def __init__(
        self,
        no_components: int = 64,
        loss: str = "warp",
        learning_rate: float = 0.05,
        item_alpha: float = 0.0,
        user_alpha: float = 0.0,
        max_sampled: int = 10,
        epochs: int = 20,
        epochs_partial: int = 3,
        random_state: int = 42,
        num_threads: int = 1,
    ) -> None:
        super().__init__(
            no_components=no_components,
            loss=loss,
            learning_rate=learning_rate,
            item_alpha=item_alpha,
            user_alpha=user_alpha,
            max_sampled=max_sampled,
            epochs=epochs,
            epochs_partial=epochs_partial,
            random_state=random_state,
            num_threads=num_threads,
        )
        self._lfm: Any = None
        self.item_features = sp.csr_matrix((0, 0), dtype=np.float32)
        self.user_side = sp.csr_matrix((0, 0), dtype=np.float32)
        self._refresh_cache()

    # -- training -------------------------------------------------------------------------
    def _new_lightfm(self) -> Any:
        p = self._params
        return _import_lightfm()(
            no_components=p["no_components"],
            loss=p["loss"],
            learning_rate=p["learning_rate"],
            item_alpha=p["item_alpha"],
            user_alpha=p["user_alpha"],
            max_sampled=p["max_sampled"],
            random_state=p["random_state"],
        )

    def _user_matrix(self, n_users: int) -> sp.csr_matrix:
        ident = sp.identity(n_users, dtype=np.float32, format="csr")
        if self.user_side.shape[1] == 0:
            return ident
        return sp.hstack([ident, self.user_side], format="csr", dtype=np.float32)

    def _set_features(
        self,
        shape: tuple[int, int],
        item_features: sp.csr_matrix | None,
        user_features: sp.csr_matrix | None,
    ) -> None:
        n_users, n_items = shape
        if item_features is None:
            if self.item_features.shape[0] not in (0, n_items):
                raise ValueError("the catalogue grew: pass item_features for every item")
            if self.item_features.shape[0] == 0:
                item_features = sp.identity(n_items, dtype=np.float32, format="csr")
            else:
                item_features = self.item_features
        self.item_features = sp.csr_matrix(item_features, dtype=np.float32)
        if user_features is None:
            if self.user_side.shape[0] not in (0, n_users):
                user_features = sp.vstack(
                    [
                        self.user_side,
                        sp.csr_matrix((n_users - self.user_side.shape[0], self.user_side.shape[1])),
                    ],
                    format="csr",
                )
            else:
                user_features = (
                    self.user_side
                    if self.user_side.shape[0]
                    else sp.csr_matrix((n_users, 0), dtype=np.float32)
                )
        self.user_side = sp.csr_matrix(user_features, dtype=np.float32)

    def _train(self, x: sp.csr_matrix, epochs: int, resume: bool) -> None:
        if not resume or self._lfm is None:
            self._lfm = self._new_lightfm()
        pos = x.tocoo()
        pos.data = np.ones_like(pos.data)  # WARP ranks positives; strengths are not used
        self._lfm.fit_partial(
            pos,
            user_features=self._user_matrix(x.shape[0]),
            item_features=self.item_features,
            epochs=epochs,
            num_threads=self._params["num_threads"],
        )
        self._refresh_cache()

    def _fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None,
        user_features: sp.csr_matrix | None,
    ) -> None:
        self.item_features = sp.csr_matrix((0, 0), dtype=np.float32)
        self.user_side = sp.csr_matrix((0, 0), dtype=np.float32)
        self._set_features(interactions.shape, item_features, user_features)
        self._train(interactions, int(self._params["epochs"]), resume=False)

    def _partial_fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None,
        user_features: sp.csr_matrix | None,
    ) -> None:
        grown = interactions.shape != (self._n_users, self._n_items)
        old_cols = (self.item_features.shape[1], self.user_side.shape[1])
        self._set_features(interactions.shape, item_features, user_features)
        same_cols = old_cols == (self.item_features.shape[1], self.user_side.shape[1])
        if grown or not same_cols:
            self._train(interactions, int(self._params["epochs"]), resume=False)
        else:
            self._train(interactions, int(self._params["epochs_partial"]), resume=True)

    # -- cached representations -----------------------------------------------------------
    def _refresh_cache(self) -> None:
        self._cold_cache: tuple[sp.csr_matrix, np.ndarray, np.ndarray] | None = None
        lfm = self._lfm
        if lfm is None or lfm.item_embeddings is None:
            d = int(self._params["no_components"])
            self.item_repr = np.zeros((0, d), dtype=np.float32)
            self.item_bias = np.zeros(0, dtype=np.float32)
            self.user_repr = np.zeros((0, d), dtype=np.float32)
            return
        self.item_repr = np.asarray(self.item_features @ lfm.item_embeddings, dtype=np.float32)
        self.item_bias = np.asarray(self.item_features @ lfm.item_biases, dtype=np.float32)
        n_users = self.user_side.shape[0]
        self.user_repr = np.asarray(
            self._user_matrix(n_users) @ lfm.user_embeddings, dtype=np.float32
        )

    # -- scoring --------------------------------------------------------------------------
    def _user_vectors(
        self,
        user_items: sp.csr_matrix,
        user_features: sp.csr_matrix | None,
        user_ids: np.ndarray | None,
    ) -> np.ndarray:
        """``(n_rows, no_components)``: learned for known users, folded in for the rest."""
        pos = user_items.copy()
        pos.data = np.maximum(pos.data, 0.0)
        pos.eliminate_zeros()
        sums = np.asarray(pos.sum(axis=1)).ravel()
        sums[sums == 0] = 1.0
        u = np.asarray(sp.diags(1.0 / sums) @ pos @ self.item_repr, dtype=np.float32)
        side_emb = self._lfm.user_embeddings[self._n_users :]
        if user_features is not None and side_emb.shape[0]:
            uf = user_features[:, : side_emb.shape[0]]
            u = u + np.asarray(uf @ side_emb, dtype=np.float32)
        if user_ids is not None:
            warm = (user_ids >= 0) & (user_ids < len(self.user_repr))
            u[warm] = self.user_repr[user_ids[warm]]
        return u

    def _score_users(
        self,
        user_items: sp.csr_matrix,
        user_features: sp.csr_matrix | None,
        user_ids: np.ndarray | None,
    ) -> np.ndarray:
        u = self._user_vectors(user_items, user_features, user_ids)
        return u @ self.item_repr.T + self.item_bias[None, :]

    def _score_cold_items(
        self,
        user_items: sp.csr_matrix,
        user_features: sp.csr_matrix | None,
        user_ids: np.ndarray | None,
        item_side_features: sp.csr_matrix,
    ) -> np.ndarray | None:
        n_side = len(self.item_feature_names)
        if self._lfm is None or n_side == 0:
            return None
        cached = self._cold_cache
        if cached is None or cached[0] is not item_side_features:
            # Serving passes the same feature matrix until the catalogue changes: cache the
            # items' representations for it (one entry).
            emb = self._lfm.item_embeddings[-n_side:]
            bias = self._lfm.item_biases[-n_side:]
            cached = (
                item_side_features,
                np.ascontiguousarray(item_side_features @ emb, dtype=np.float32),
                np.asarray(item_side_features @ bias, dtype=np.float32),
            )
            self._cold_cache = cached
        _, repr_, b = cached
        u = self._user_vectors(user_items, user_features, user_ids)
        return u @ repr_.T + b[None, :]

    def _item_similarities(self, item: int) -> np.ndarray:
        norms = np.linalg.norm(self.item_repr, axis=1)
        norms[norms == 0] = 1.0
        return (self.item_repr @ self.item_repr[item]) / (norms * norms[item])

    def _contributions(self, row: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
        # The user vector is the mean of the liked items' representations (or learned), so
        # no exact split exists: the cosine of each of the user's items to each of
        # ``items``, weighted by the interaction, computed for those items only.
        mine, theirs = self.item_repr[row.indices], self.item_repr[items]
        norms = np.outer(np.linalg.norm(mine, axis=1), np.linalg.norm(theirs, axis=1))
        return row.data[:, None] * (mine @ theirs.T) / np.maximum(norms, 1e-12)

    # -- persistence ----------------------------------------------------------------------
    def _get_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"lightfm.{name}": getattr(self._lfm, name) for name in _STATE}
        arrays.update(csr_to_arrays("item_features", self.item_features))
        arrays.update(csr_to_arrays("user_side", self.user_side))
        return arrays

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._lfm = self._new_lightfm()
        for name in _STATE:
            setattr(self._lfm, name, np.ascontiguousarray(arrays[f"lightfm.{name}"]))
        self.item_features = csr_from_arrays("item_features", arrays)
        self.user_side = csr_from_arrays("user_side", arrays)
        self._refresh_cache()
