"""Model-specific checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cinerec.models import ALSModel, EASEModel, EASEPlusModel, LightFMModel
from cinerec.models.ease import ease_weights, gram_matrix
from cinerec.models.features import cold_item_features, item_features, user_genre_features


def _random(n_users: int = 50, n_items: int = 30, seed: int = 0) -> sp.csr_matrix:
    x = sp.random(n_users, n_items, density=0.2, random_state=seed, format="csr", dtype=np.float32)
    x.data = np.ceil(x.data * 5)
    return x


def test_als_fold_in_matches_implicit_recalculate_user() -> None:
    x = _random()
    model = ALSModel(factors=6, alpha=2.0, iterations=5).fit(x)
    from implicit.cpu.als import AlternatingLeastSquares

    ref = AlternatingLeastSquares(factors=6, regularization=0.1, alpha=2.0)
    ref.item_factors = model.item_factors.copy()
    ref.user_factors = model.user_factors.copy()
    row = x[3].copy()
    row.data[0] = -row.data[0]  # include a dislike: same confidence convention as implicit
    ours = model.fold_in(row)[0]
    theirs = ref.recalculate_user(0, row)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


def test_ease_weights_zero_diagonal_and_closed_form() -> None:
    x = _random()
    x.data[:] = 1
    g = gram_matrix(x)
    b = ease_weights(g, 10.0)
    assert np.allclose(np.diag(b), 0)
    # Brute force: each column solves a ridge regression of item j on the other items.
    j = 4
    others = [i for i in range(g.shape[0]) if i != j]
    a = g[np.ix_(others, others)] + 10.0 * np.eye(len(others))
    np.testing.assert_allclose(b[others, j], np.linalg.solve(a, g[others, j]), rtol=1e-6, atol=1e-9)


def test_ease_plus_reduces_to_ease() -> None:
    x = _random()
    plain = EASEModel(lambda_=20.0).fit(x)
    plus = EASEPlusModel(
        lambda_=20.0, dropout=0.0, strength_exponent=0.0, popularity_exponent=0.0
    ).fit(x)
    np.testing.assert_allclose(plus.score_user(x[2]), plain.score_user(x[2]), rtol=1e-5)


def test_ease_plus_stronger_rating_pulls_harder() -> None:
    x = _random()
    model = EASEPlusModel(lambda_=20.0).fit(x)
    low = sp.csr_matrix(([1.0], ([0], [3])), shape=(1, 30), dtype=np.float32)
    high = sp.csr_matrix(([5.0], ([0], [3])), shape=(1, 30), dtype=np.float32)
    assert np.abs(model.score_user(high)).sum() > np.abs(model.score_user(low)).sum()


def test_lightfm_uses_features_and_user_side_features() -> None:
    x = _random()
    genres = [["Drama"] if i % 2 else ["Comedy"] for i in range(30)]
    items, names = item_features(genres, [1990 + i for i in range(30)])
    assert items.shape == (30, 30 + len(names))
    users = user_genre_features(x, genres, ["Comedy", "Drama"], top_n=1)
    model = LightFMModel(no_components=4, epochs=3).fit(x, item_features=items, user_features=users)
    warm = model.score_user(x[0], users[0], user_id=0)
    cold = model.score_user(x[0], users[0])
    assert warm.shape == cold.shape == (30,)
    assert not np.allclose(warm, cold)
    # Same shape again: partial_fit continues training without a refit.
    model.partial_fit(x)
    assert model.n_items == 30


def _genre_clusters() -> tuple[sp.csr_matrix, list[list[str]], list[int]]:
    """Users 0-19 like Horror movies (even ids), users 20-39 Comedy movies (odd ids)."""
    rng = np.random.default_rng(0)
    rows, cols = [], []
    for u in range(40):
        for i in rng.choice(np.arange(u >= 20, 30, 2), size=10, replace=False):
            rows.append(u)
            cols.append(int(i))
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(40, 30))
    return x, [["Comedy"] if i % 2 else ["Horror"] for i in range(30)], [1985] * 30


def test_lightfm_scores_cold_items_from_their_features(tmp_path: Path) -> None:
    x, genres, years = _genre_clusters()
    items, names = item_features(genres, years)
    model = LightFMModel(no_components=16, epochs=20).fit(
        x, item_features=items, item_feature_names=names
    )
    assert model.item_feature_names == names
    cold = cold_item_features([["Horror"], ["Comedy"]], [1985, 1985], names)
    warm = model.score_cold_items(x[:20], cold, user_ids=np.arange(20))
    fold_in = model.score_cold_items(x[:20], cold)  # unknown users: fold-in vectors
    for s in (warm, fold_in):
        assert s is not None and s.shape == (20, 2) and s.dtype == np.float32
        assert (s[:, 0] > s[:, 1]).mean() >= 0.9  # horror fans: the horror movie first
    comedy = model.score_cold_items(x[20:], cold, user_ids=np.arange(20, 40))
    assert comedy is not None and (comedy[:, 1] > comedy[:, 0]).mean() >= 0.9
    # The representation is that of a fitted item minus its identity embedding.
    lfm = model._lfm
    d = items[0].toarray().ravel()
    expected = model.score_user(x[0], user_id=0)[0] - (
        model.user_repr[0] @ (d[0] * lfm.item_embeddings[0]) + d[0] * lfm.item_biases[0]
    )
    got = model.score_cold_items(
        x[0], cold_item_features([genres[0]], [1985], names), None, np.array([0])
    )
    assert got is not None
    np.testing.assert_allclose(got[0, 0], expected, rtol=1e-4, atol=1e-5)
    # The vocabulary travels with the saved model.
    again = LightFMModel.load(model.save(tmp_path / "lfm.npz"))
    assert again.item_feature_names == names
    np.testing.assert_allclose(
        again.score_cold_items(x[:20], cold, user_ids=np.arange(20)), warm, rtol=1e-6
    )


def test_models_without_feature_embeddings_cannot_score_cold_items() -> None:
    x, genres, years = _genre_clusters()
    items, names = item_features(genres, years)
    cold = cold_item_features([["Horror"]], [1985], names)
    no_names = LightFMModel(no_components=4, epochs=1).fit(x, item_features=items)
    assert no_names.score_cold_items(x[:2], cold) is None
    ease = EASEModel(lambda_=10.0).fit(x, item_features=items, item_feature_names=names)
    assert ease.item_feature_names == [] and ease.score_cold_items(x[:2], cold) is None
