"""The model interface every recommender in :mod:`cinerec.models` implements.

Modelled on implicit's ``RecommenderBase`` (documented shapes, ``fit``/``recommend``/
``similar_items``/``save``/``load``) and on RecTools' ``ModelBase`` (public methods do the
bookkeeping, subclasses do the maths in ``_fit``/``_score_users``/...; capability flags).

Conventions
-----------
* Users and items are **dense integer ids** ``0..n-1``; external (string) ids stay outside.
* An *interaction matrix* is a ``scipy.sparse.csr_matrix`` of shape ``(n_users, n_items)`` and
  dtype float32. Positive values are like/consume strengths, **negative values are explicit
  dislikes** (their magnitude is the strength). Models with ``trains_on_negatives = False``
  never see the negative entries in ``fit``; models with ``supports_negatives = False`` never
  see them when scoring. Disliked items still count as *seen* for ``filter_seen``.
* Scores are float32, higher is better. Items appended after ``fit`` (a wider matrix at scoring
  time) get :meth:`Model._cold_item_scores`, by default the lowest known score, so they never
  crash scoring and never outrank items the model knows something about. Models that learned
  side-feature embeddings (LightFM) can do better through :meth:`Model.score_cold_items`, which
  scores unknown items from their feature rows in the columns named by
  :attr:`Model.item_feature_names`.
* Model files are a single ``.npz``: arrays plus a JSON metadata blob stored as a ``uint8``
  array under the key ``__meta__``. They are read with ``np.load(..., allow_pickle=False)``,
  so loading a model file can never execute code.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

FORMAT_VERSION = "cinerec-model/1"
META_KEY = "__meta__"

__all__ = [
    "FORMAT_VERSION",
    "Model",
    "NotFittedError",
    "check_interactions",
    "csr_from_arrays",
    "csr_to_arrays",
    "read_metadata",
]


class NotFittedError(RuntimeError):
    """A scoring method was called before ``fit``/``load``."""


def check_interactions(
    x: sp.spmatrix | sp.sparray | np.ndarray, name: str = "interactions"
) -> sp.csr_matrix:
    """Return ``x`` as a canonical float32 CSR matrix (sorted indices, no explicit zeros)."""
    if isinstance(x, np.ndarray):
        if x.ndim == 1:
            x = x[None, :]
        m = sp.csr_matrix(x, dtype=np.float32)
    elif sp.issparse(x):
        m = sp.csr_matrix(x, dtype=np.float32)
    else:
        raise TypeError(f"{name} must be a scipy sparse matrix, got {type(x).__name__}")
    if m.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {m.shape}")
    if m is x:  # never mutate the caller's matrix
        m = m.copy()
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    return m


def positive_part(x: sp.csr_matrix) -> sp.csr_matrix:
    """Entries > 0 of ``x`` (dislikes dropped), same shape."""
    if x.nnz == 0 or x.data.min() > 0:
        return x
    out = x.copy()
    out.data[out.data < 0] = 0
    out.eliminate_zeros()
    return out


def csr_to_arrays(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Flatten a CSR matrix into plain arrays for ``np.savez`` (no pickle)."""
    return {
        f"{prefix}.data": m.data,
        f"{prefix}.indices": m.indices,
        f"{prefix}.indptr": m.indptr,
        f"{prefix}.shape": np.asarray(m.shape, dtype=np.int64),
    }


def csr_from_arrays(prefix: str, arrays: dict[str, np.ndarray]) -> sp.csr_matrix:
    """Inverse of :func:`csr_to_arrays`."""
    shape = tuple(int(v) for v in arrays[f"{prefix}.shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}.data"], arrays[f"{prefix}.indices"], arrays[f"{prefix}.indptr"]),
        shape=shape,
    )


def _package_version() -> str:
    try:
        return importlib.metadata.version("cinerec")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"


def _npz_path(path: str | Path) -> Path:
    p = Path(path)
    return p if p.suffix == ".npz" else p.with_name(p.name + ".npz")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read only the JSON metadata of a saved model (cheap: the arrays are not loaded)."""
    with np.load(_npz_path(path), allow_pickle=False) as npz:
        if META_KEY not in npz.files:
            raise ValueError(f"{path} is not a cinerec model file (no {META_KEY!r} entry)")
        meta: dict[str, Any] = json.loads(npz[META_KEY].tobytes().decode("utf-8"))
    if not str(meta.get("format", "")).startswith("cinerec-model/"):
        raise ValueError(f"{path}: unknown model file format {meta.get('format')!r}")
    return meta


class Model(ABC):
    """Base class of every cinerec recommender.

    Subclasses set ``kind`` and the capability flags, accept their hyper-parameters as keyword
    arguments of ``__init__`` (stored in :attr:`params`, which must be JSON-serialisable) and
    implement the underscored hooks:

    * ``_fit(interactions, item_features, user_features)``: learn from a canonical float32 CSR
      matrix of shape ``(n_users, n_items)``;
    * ``_score_users(rows, user_features, user_ids)``: dense ``(n_rows, n_items_fitted)`` scores;
    * ``_item_similarities(item)``: ``(n_items_fitted,)`` similarity of one item to all;
    * ``_get_arrays()`` / ``_set_arrays(arrays)``: the learned state as plain NumPy arrays;
    * optionally ``_partial_fit`` (default: full refit), ``_cold_item_scores`` and
      ``_score_cold_items`` (scores of unknown items from side features; default: cannot).
    """

    #: Name stored in model files and used by :func:`cinerec.models.load_model`.
    kind: ClassVar[str] = ""
    #: Scoring uses negative entries (dislikes) to push related items down.
    supports_negatives: ClassVar[bool] = False
    #: ``fit`` sees negative entries (otherwise they are dropped before ``_fit``).
    trains_on_negatives: ClassVar[bool] = False
    #: ``fit`` uses ``item_features`` / ``user_features`` when given.
    uses_item_features: ClassVar[bool] = False
    uses_user_features: ClassVar[bool] = False
    #: ``partial_fit`` is cheaper than a refit (otherwise it is a documented refit).
    supports_incremental: ClassVar[bool] = False
    #: Scores are the same for every user (baselines).
    is_personal: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        self._params: dict[str, Any] = dict(params)
        self.is_fitted = False
        self._n_users = 0
        self._n_items = 0
        self.created_at: float | None = None
        #: Free-form evaluation results stored alongside the model (``{"ndcg@10": 0.48}``).
        self.metrics: dict[str, float] = {}
        #: Names of the *side* columns of the ``item_features`` given to ``fit``: the last
        #: ``len(item_feature_names)`` columns (identity columns, if any, come first). Saved
        #: with the model so features of unknown items can be built in the same columns.
        self.item_feature_names: list[str] = []

    # -- introspection --------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """Hyper-parameters (a copy), JSON-serialisable."""
        return dict(self._params)

    @property
    def n_items(self) -> int:
        """Number of items the model was fitted on (scores are padded beyond it)."""
        return self._n_items

    @property
    def n_users(self) -> int:
        """Number of users (rows) the model was fitted on."""
        return self._n_users

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        state = f"fitted {self._n_users}x{self._n_items}" if self.is_fitted else "not fitted"
        return f"{type(self).__name__}({args}) [{state}]"

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load()")

    # -- training -------------------------------------------------------------------------
    def fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None = None,
        user_features: sp.csr_matrix | None = None,
        *,
        item_feature_names: Sequence[str] | None = None,
    ) -> Self:
        """Learn from scratch.

        Args:
            interactions: ``(n_users, n_items)`` weights; negative = dislike (see module doc).
            item_features: ``(n_items, n_item_features)``, used if ``uses_item_features``.
            user_features: ``(n_users, n_user_features)``, used if ``uses_user_features``.
            item_feature_names: names of the side (non-identity) columns of ``item_features``,
                which are its last columns; kept as :attr:`item_feature_names`.

        Returns:
            ``self``, fitted.
        """
        x = self._prepare_training(interactions, item_features, user_features)
        used_items, used_users = self._used_features(x, item_features, user_features)
        self.item_feature_names = self._feature_names(used_items, item_feature_names, [])
        self._fit(x, used_items, used_users)
        self._n_users, self._n_items = x.shape
        self.is_fitted = True
        self.created_at = time.time()
        return self

    def partial_fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None = None,
        user_features: sp.csr_matrix | None = None,
        *,
        item_feature_names: Sequence[str] | None = None,
    ) -> Self:
        """Update with a possibly larger matrix (new users/items appended at the end).

        ``interactions`` is the *whole* current matrix, not a delta: row ``u`` / column ``i``
        keep meaning the same user / item as at ``fit`` time. Models whose
        ``supports_incremental`` is False simply refit (documented per model). Calling it on
        an unfitted model is the same as ``fit``.

        Returns:
            ``self``.
        """
        if not self.is_fitted:
            return self.fit(
                interactions, item_features, user_features, item_feature_names=item_feature_names
            )
        x = self._prepare_training(interactions, item_features, user_features)
        if x.shape[0] < self._n_users or x.shape[1] < self._n_items:
            raise ValueError(
                f"partial_fit needs at least the fitted shape {(self._n_users, self._n_items)}, "
                f"got {x.shape}: ids are dense and append-only"
            )
        used_items, used_users = self._used_features(x, item_features, user_features)
        names = self._feature_names(used_items, item_feature_names, self.item_feature_names)
        self._partial_fit(x, used_items, used_users)
        self.item_feature_names = names
        self._n_users, self._n_items = x.shape
        self.created_at = time.time()
        return self

    def _prepare_training(
        self, interactions: sp.csr_matrix, item_features: Any, user_features: Any
    ) -> sp.csr_matrix:
        x = check_interactions(interactions)
        if not self.trains_on_negatives:
            x = positive_part(x)
        return x

    def _used_features(
        self, x: sp.csr_matrix, item_features: Any, user_features: Any
    ) -> tuple[sp.csr_matrix | None, sp.csr_matrix | None]:
        """The feature matrices this model uses, checked against ``x``; None for the rest."""
        return (
            self._checked_features(item_features, x.shape[1], "item_features")
            if self.uses_item_features
            else None,
            self._checked_features(user_features, x.shape[0], "user_features")
            if self.uses_user_features
            else None,
        )

    @staticmethod
    def _feature_names(
        item_features: sp.csr_matrix | None, names: Sequence[str] | None, current: list[str]
    ) -> list[str]:
        """Side-column names that go with the ``item_features`` the model uses."""
        if item_features is None:
            return current  # the model keeps (or has no) features of its own
        if names is None:
            return []
        if len(names) > item_features.shape[1]:
            raise ValueError(
                f"{len(names)} item feature names for {item_features.shape[1]} feature columns"
            )
        return [str(n) for n in names]

    @staticmethod
    def _checked_features(f: sp.csr_matrix | None, n_rows: int, name: str) -> sp.csr_matrix | None:
        if f is None:
            return None
        m = check_interactions(f, name)
        if m.shape[0] != n_rows:
            raise ValueError(f"{name} has {m.shape[0]} rows, expected {n_rows}")
        return m

    # -- scoring --------------------------------------------------------------------------
    def score_user(
        self,
        user_row: sp.csr_matrix,
        user_features_row: sp.csr_matrix | None = None,
        user_id: int | None = None,
    ) -> np.ndarray:
        """Score every item for one user from their *current* interactions (fold-in).

        No retraining: this is the real-time path, so it works for users the model has never
        seen (a brand-new user with one like gets personal scores).

        Args:
            user_row: ``(1, n_items_now)`` interactions of the user; ``n_items_now`` may exceed
                :attr:`n_items` (items added after fit). Negative entries are dislikes.
            user_features_row: ``(1, n_user_features)``, used by models with
                ``uses_user_features``.
            user_id: dense id of the user if known to the model. Models with learned per-user
                state (LightFM) use it when ``user_id < n_users``; others ignore it.

        Returns:
            ``(n_items_now,)`` float32 scores; seen items are *not* filtered here.
        """
        scores = self.score_users(
            user_row,
            user_features_row,
            None if user_id is None else np.asarray([user_id], dtype=np.int64),
        )
        return scores[0]

    def score_users(
        self,
        user_items: sp.csr_matrix,
        user_features: sp.csr_matrix | None = None,
        user_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """Batched :meth:`score_user`: ``(n_rows, n_items_now)`` float32 dense scores."""
        self._check_fitted()
        x = check_interactions(user_items, "user_items")
        n_now = x.shape[1]
        known, uf, user_ids = self._scoring_input(x, user_features, user_ids)
        scores = np.asarray(self._score_users(known, uf, user_ids), dtype=np.float32)
        if n_now > self._n_items:
            pad = self._cold_item_scores(scores, n_now - self._n_items)
            scores = np.hstack([scores, pad])
        return scores

    def _scoring_input(
        self, x: sp.csr_matrix, user_features: sp.csr_matrix | None, user_ids: np.ndarray | None
    ) -> tuple[sp.csr_matrix, sp.csr_matrix | None, np.ndarray | None]:
        """Rows cut/padded to exactly ``n_items`` columns, checked user features and ids."""
        # Columns beyond the fitted catalogue carry no information the model can use.
        known = x[:, : self._n_items] if x.shape[1] > self._n_items else x
        if known.shape[1] < self._n_items:
            known = sp.csr_matrix(
                (known.data, known.indices, known.indptr), shape=(known.shape[0], self._n_items)
            )
        if not self.supports_negatives:
            known = positive_part(known)
        uf = user_features if self.uses_user_features else None
        if uf is not None:
            uf = check_interactions(uf, "user_features")
        if user_ids is not None:
            user_ids = np.asarray(user_ids, dtype=np.int64)
            if user_ids.shape != (x.shape[0],):
                raise ValueError("user_ids must have one entry per row of user_items")
        return known, uf, user_ids

    def score_cold_items(
        self,
        user_items: sp.csr_matrix,
        item_side_features: sp.csr_matrix,
        user_features: sp.csr_matrix | None = None,
        user_ids: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """Score items the model was not fitted on from their side features alone.

        Args:
            user_items: ``(n_rows, n_items_now)`` interactions, as for :meth:`score_users`.
            item_side_features: ``(n_new, len(item_feature_names))`` feature rows of the
                unknown items in the model's side columns
                (:func:`cinerec.models.features.cold_item_features`).
            user_features, user_ids: as for :meth:`score_users`.

        Returns:
            ``(n_rows, n_new)`` float32 scores on the scale of :meth:`score_users`, or None
            when the model cannot score from features (it has no side-feature embeddings).
        """
        self._check_fitted()
        if not self.item_feature_names:
            return None
        f = item_side_features
        if not (isinstance(f, sp.csr_matrix) and f.dtype == np.float32):
            # (a canonical matrix is passed through as is, so models may cache per object)
            f = check_interactions(f, "item_side_features")
        if f.shape[1] != len(self.item_feature_names):
            raise ValueError(
                f"item_side_features has {f.shape[1]} columns, the model "
                f"{len(self.item_feature_names)} item feature names"
            )
        x = check_interactions(user_items, "user_items")
        known, uf, ids = self._scoring_input(x, user_features, user_ids)
        out = self._score_cold_items(known, uf, ids, f)
        return None if out is None else np.asarray(out, dtype=np.float32)

    def recommend(
        self,
        user_items: sp.csr_matrix,
        k: int = 10,
        filter_seen: bool = True,
        user_features: sp.csr_matrix | None = None,
        user_ids: np.ndarray | None = None,
        batch_size: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each row of ``user_items`` (batched, for evaluation).

        Args:
            user_items: ``(n_rows, n_items_now)`` interactions used for fold-in and filtering.
            k: list length (clipped to the number of items).
            filter_seen: drop items with any non-zero entry (likes *and* dislikes) in the row.
            user_features: ``(n_rows, n_user_features)`` for models using user features.
            user_ids: ``(n_rows,)`` dense ids of the rows' users, see :meth:`score_user`.
            batch_size: rows scored at once (bounds the dense score buffer).

        Returns:
            ``(ids, scores)``, both ``(n_rows, k)``: int64 item ids best first and their float32
            scores. Slots that could not be filled (fewer than ``k`` unseen items) hold id
            ``-1`` and score ``-inf``.
        """
        self._check_fitted()
        x = check_interactions(user_items, "user_items")
        n_rows, n_now = x.shape
        k = max(0, min(int(k), n_now))
        ids = np.full((n_rows, k), -1, dtype=np.int64)
        out = np.full((n_rows, k), -np.inf, dtype=np.float32)
        if k == 0:
            return ids, out
        for start in range(0, n_rows, batch_size):
            stop = min(start + batch_size, n_rows)
            rows = x[start:stop]
            scores = self.score_users(
                rows,
                None if user_features is None else user_features[start:stop],
                None if user_ids is None else user_ids[start:stop],
            )
            if filter_seen:
                r, c = rows.nonzero()
                scores[r, c] = -np.inf
            top = _top_k(scores, k)
            ids[start:stop] = top
            out[start:stop] = np.take_along_axis(scores, top, axis=1)
        ids[~np.isfinite(out)] = -1
        return ids, out

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``item`` (itself excluded).

        Returns:
            ``(ids, scores)``, each ``(min(k, n_items - 1),)``, int64 / float32, best first.
        """
        self._check_fitted()
        if not 0 <= item < self._n_items:
            raise IndexError(f"item {item} out of range 0..{self._n_items - 1}")
        sims = np.asarray(self._item_similarities(int(item)), dtype=np.float32).copy()
        sims[item] = -np.inf
        k = max(0, min(int(k), self._n_items - 1))
        top = _top_k(sims[None, :], k)[0]
        return top.astype(np.int64), sims[top]

    def explain(
        self, user_row: sp.csr_matrix, items: Sequence[int]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Which of the user's items raise each of ``items``' scores most ("because you
        liked …").

        Args:
            user_row: ``(1, n)`` interactions of the user, as given to :meth:`score_user`;
                entries beyond :attr:`n_items` are ignored.
            items: recommended items (fitted ones), e.g. the movies of one list.

        Returns:
            Per item, ``(user_items, contributions)``: the user's fitted items with a
            positive contribution to its score, strongest first. Exact for models whose
            score is a sum over the user's items (EASE, item-kNN, ALS's fold-in); the
            similarity of each of the user's items, weighted by the interaction, for the
            others (LightFM). Empty for models that are not personal.
        """
        self._check_fitted()
        wanted = np.asarray(items, dtype=np.int64)
        if len(wanted) and not (wanted.min() >= 0 and wanted.max() < self._n_items):
            raise IndexError(f"items must be in 0..{self._n_items - 1}")
        row = sp.csr_matrix(user_row)[:, : self._n_items].tocsr()
        row.sum_duplicates()
        if not self.is_personal or row.nnz == 0 or not len(wanted):
            return [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in wanted]
        table = np.asarray(self._contributions(row, wanted), dtype=np.float32)
        out = []
        for contrib in table.T:
            keep = np.flatnonzero(contrib > 0)
            order = keep[np.argsort(-contrib[keep], kind="stable")]
            out.append((row.indices[order].astype(np.int64), contrib[order]))
        return out

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (``.npz`` appended if missing); returns the path written."""
        self._check_fitted()
        arrays = self._get_arrays()
        if META_KEY in arrays:
            raise ValueError(f"array name {META_KEY!r} is reserved")
        meta = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "params": self._params,
            "n_users": self._n_users,
            "n_items": self._n_items,
            "created_at": self.created_at,
            "metrics": self.metrics,
            "item_feature_names": self.item_feature_names,
            "version": _package_version(),
        }
        out = _npz_path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        tmp = out.with_name(out.name + ".tmp.npz")
        # Write then rename so a reader never sees a half-written model.
        payload: dict[str, Any] = {META_KEY: blob, **arrays}
        np.savez(tmp, allow_pickle=False, **payload)
        tmp.replace(out)
        return out

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a file written by :meth:`save` (never unpickles anything).

        Raises:
            ValueError: the file is not a model file or holds another kind of model.
        """
        meta = read_metadata(path)
        if cls.kind and meta["kind"] != cls.kind:
            raise ValueError(f"{path} holds a {meta['kind']!r} model, not {cls.kind!r}")
        with np.load(_npz_path(path), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files if name != META_KEY}
        model = cls(**meta["params"])
        model._set_arrays(arrays)
        model._n_users = int(meta["n_users"])
        model._n_items = int(meta["n_items"])
        model.created_at = meta.get("created_at")
        model.metrics = dict(meta.get("metrics") or {})
        model.item_feature_names = [str(n) for n in meta.get("item_feature_names") or []]
        model.is_fitted = True
        return model

    # -- hooks ----------------------------------------------------------------------------
    @abstractmethod
    def _fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None,
        user_features: sp.csr_matrix | None,
    ) -> None:
        """Learn from canonical ``interactions`` (negatives already dropped if needed)."""

    def _partial_fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None,
        user_features: sp.csr_matrix | None,
    ) -> None:
        """Default incremental update: a full refit."""
        self._fit(interactions, item_features, user_features)

    @abstractmethod
    def _score_users(
        self,
        user_items: sp.csr_matrix,
        user_features: sp.csr_matrix | None,
        user_ids: np.ndarray | None,
    ) -> np.ndarray:
        """``(n_rows, n_items)`` scores; ``user_items`` is exactly ``n_items`` wide."""

    @abstractmethod
    def _item_similarities(self, item: int) -> np.ndarray:
        """``(n_items,)`` similarity of ``item`` to every item."""

    def _contributions(self, row: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
        """``(row.nnz, len(items))``: how much each stored entry of ``row`` (``(1,
        n_items)``, canonical) adds to each item's score. Default: the entry times the
        similarity of its item to each of ``items``."""
        sims = np.stack([np.asarray(self._item_similarities(int(i))) for i in items], axis=1)
        return row.data[:, None] * sims[row.indices]

    @abstractmethod
    def _get_arrays(self) -> dict[str, np.ndarray]:
        """Learned state as named plain arrays (numeric dtypes only)."""

    @abstractmethod
    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the state written by :meth:`_get_arrays`."""

    def _score_cold_items(
        self,
        user_items: sp.csr_matrix,
        user_features: sp.csr_matrix | None,
        user_ids: np.ndarray | None,
        item_side_features: sp.csr_matrix,
    ) -> np.ndarray | None:
        """``(n_rows, n_new)`` scores of unknown items from side features; None: cannot."""
        return None

    def _cold_item_scores(self, scores: np.ndarray, n_new: int) -> np.ndarray:
        """Scores for items appended after fit: ``(n_rows, n_new)``.

        Default: each row's lowest known score, so unknown items rank last but stay finite.
        """
        low = scores.min(axis=1, keepdims=True) if scores.shape[1] else np.zeros((len(scores), 1))
        return np.repeat(low.astype(np.float32), n_new, axis=1)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest entries per row, best first: ``(n_rows, k)``."""
    n = scores.shape[1]
    if k >= n:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    else:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)
