from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cinerec.models.features import cold_item_features, item_features, user_genre_features


def test_item_features_rows_normalised_and_named() -> None:
    m, names = item_features([["Drama", "War"], []], [1999, None])
    assert names == ["Drama", "War", "decade:1990", "decade:unknown"]
    np.testing.assert_allclose(np.asarray(m.sum(axis=1)).ravel(), [1.0, 1.0])
    assert m[0, 0] > 0 and m[1, 1] > 0  # identity block first


def test_item_features_fixed_vocabulary_keeps_columns() -> None:
    m, names = item_features(
        [["Horror"]], [2001], identity=False, vocabulary=["Drama", "decade:2000"]
    )
    assert names == ["Drama", "decade:2000"]
    assert m.toarray().tolist() == [[0.0, 1.0]]


def test_user_genre_features_ignores_dislikes() -> None:
    x = sp.csr_matrix(np.array([[1.0, -1.0]], dtype=np.float32))
    f = user_genre_features(x, [["Drama"], ["Comedy"]], ["Comedy", "Drama"], top_n=2)
    assert f.toarray().tolist() == [[0.0, 1.0]]


def test_cold_item_features_match_the_fitted_rows_without_identity() -> None:
    genres, years = [["Drama", "War"], ["Comedy"]], [1999, 1985]
    full, names = item_features(genres, years)
    cold = cold_item_features(genres, years, names)
    assert cold.shape == (2, len(names))
    np.testing.assert_allclose(cold.toarray(), full[:, 2:].toarray())
    # Horror and decade:unknown are not in the model's vocabulary: only Drama (and the
    # absent identity) count.
    unknown = cold_item_features([["Horror", "Drama"]], [None], names)
    assert unknown.toarray().tolist() == [[0.0, 0.5, 0.0, 0.0, 0.0]]
