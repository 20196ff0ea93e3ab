"""Most-popular baseline."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cinerec.models.base import Model

__all__ = ["PopularModel"]


class PopularModel(Model):
    """Scores every item by how many users interacted positively with it (not personal).

    ``similar_items`` returns the most popular other items. ``partial_fit`` recounts (cheap).
    """

    kind = "popular"
    is_personal = False
    supports_incremental = True

    def __init__(self) -> None:
        super().__init__()
        self.popularity = np.zeros(0, dtype=np.float32)

    def _fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None,
        user_features: sp.csr_matrix | None,
    ) -> None:
        self.popularity = np.bincount(interactions.indices, minlength=interactions.shape[1]).astype(
            np.float32
        )

    def _score_users(
        self,
        user_items: sp.csr_matrix,
        user_features: sp.csr_matrix | None,
        user_ids: np.ndarray | None,
    ) -> np.ndarray:
        return np.broadcast_to(self.popularity, (user_items.shape[0], len(self.popularity))).copy()

    def _item_similarities(self, item: int) -> np.ndarray:
        return self.popularity

    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity}

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity = arrays["popularity"]

    def _cold_item_scores(self, scores: np.ndarray, n_new: int) -> np.ndarray:
        return np.zeros((scores.shape[0], n_new), dtype=np.float32)  # nobody has seen them
