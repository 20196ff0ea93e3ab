"""One contract, every model (like implicit's tests/recommender_base_test.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from cinerec.models import MODEL_CLASSES, Model, load_model, make_model, read_metadata

SMALL_PARAMS: dict[str, dict[str, Any]] = {
    "popular": {},
    "item_knn": {"neighbours": 20},
    "als": {"factors": 4, "iterations": 15, "alpha": 5.0, "binary": True},
    "ease": {"lambda_": 5.0},
    "ease_plus": {"lambda_": 5.0},
    "lightfm": {"no_components": 8, "epochs": 10},
}
KINDS = sorted(MODEL_CLASSES)


def test_every_model_has_small_params() -> None:
    assert set(SMALL_PARAMS) == set(MODEL_CLASSES)


@pytest.fixture(scope="module")
def interactions() -> sp.csr_matrix:
    """Two taste clusters: users 0-19 like items 0-9, users 20-39 like items 10-19; items
    20-24 are liked by a few users of both (noise)."""
    rng = np.random.default_rng(0)
    rows, cols, vals = [], [], []
    for u in range(40):
        block = range(0, 10) if u < 20 else range(10, 20)
        for i in block:
            if rng.random() < 0.6:
                rows.append(u)
                cols.append(i)
                vals.append(float(rng.integers(1, 6)))
        for i in range(20, 25):
            if rng.random() < 0.15:
                rows.append(u)
                cols.append(i)
                vals.append(3.0)
    return sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(40, 25))


def fitted(kind: str, x: sp.csr_matrix) -> Model:
    return make_model(kind, **SMALL_PARAMS[kind]).fit(x)


@pytest.fixture(scope="module")
def models(interactions: sp.csr_matrix) -> dict[str, Model]:
    return {kind: fitted(kind, interactions) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_score_user_shape_and_dtype(
    kind: str, models: dict[str, Model], interactions: sp.csr_matrix
) -> None:
    scores = models[kind].score_user(interactions[0])
    assert scores.shape == (25,)
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("kind", KINDS)
def test_recommend_filters_seen_and_is_sorted(
    kind: str, models: dict[str, Model], interactions: sp.csr_matrix
) -> None:
    ids, scores = models[kind].recommend(interactions, k=5)
    assert ids.shape == scores.shape == (40, 5)
    for u in range(40):
        assert not set(ids[u]) & set(interactions[u].indices)
        assert np.all(np.diff(scores[u]) <= 1e-6)
    ids_all, _ = models[kind].recommend(interactions[:3], k=5, filter_seen=False)
    assert ids_all.shape == (3, 5)


@pytest.mark.parametrize("kind", KINDS)
def test_recommend_k_larger_than_unseen(kind: str, models: dict[str, Model]) -> None:
    row = sp.csr_matrix(np.ones((1, 25), dtype=np.float32))
    row[0, 3] = 0
    row.eliminate_zeros()
    ids, scores = models[kind].recommend(row, k=30)
    assert ids.shape == (1, 25)
    assert ids[0, 0] == 3
    assert (ids[0, 1:] == -1).all() and np.isneginf(scores[0, 1:]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_similar_items(kind: str, models: dict[str, Model]) -> None:
    ids, scores = models[kind].similar_items(2, k=4)
    assert ids.shape == scores.shape == (4,)
    assert 2 not in ids
    assert np.all(np.diff(scores) <= 1e-6)
    if models[kind].is_personal:
        assert (ids < 10).sum() >= 3, "neighbours of item 2 should come from its cluster"
    with pytest.raises(IndexError):
        models[kind].similar_items(99)


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(
    kind: str, models: dict[str, Model], interactions: sp.csr_matrix, tmp_path: Path
) -> None:
    model = models[kind]
    model.metrics = {"ndcg@10": 0.5}
    path = model.save(tmp_path / "model")
    assert path.suffix == ".npz"
    meta = read_metadata(path)
    assert meta["kind"] == kind and meta["n_items"] == 25 and meta["n_users"] == 40
    assert meta["params"] == model.params and meta["metrics"] == {"ndcg@10": 0.5}
    assert isinstance(meta["created_at"], float) and meta["version"]
    loaded = load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(
        loaded.score_user(interactions[5]), model.score_user(interactions[5]), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(loaded.similar_items(1, 3)[0], model.similar_items(1, 3)[0])
    assert type(model).load(path).n_items == 25


@pytest.mark.parametrize("kind", KINDS)
def test_new_items_after_fit_are_padded(
    kind: str, models: dict[str, Model], interactions: sp.csr_matrix
) -> None:
    wide = sp.hstack([interactions[:2], sp.csr_matrix(np.ones((2, 3), np.float32))]).tocsr()
    scores = models[kind].score_user(wide[0])
    assert scores.shape == (28,) and np.isfinite(scores).all()
    ids, _ = models[kind].recommend(wide, k=28, filter_seen=False)
    assert ids.shape == (2, 28)


@pytest.mark.parametrize("kind", KINDS)
def test_partial_fit_grows(kind: str, interactions: sp.csr_matrix) -> None:
    model = fitted(kind, interactions)
    extra_user = sp.csr_matrix(([5.0, 5.0], ([0, 0], [1, 25])), shape=(1, 26), dtype=np.float32)
    grown = sp.vstack([sp.hstack([interactions, sp.csr_matrix((40, 1))]), extra_user]).tocsr()
    item_features = None
    if model.uses_item_features:
        item_features = sp.identity(26, dtype=np.float32, format="csr")
    model.partial_fit(grown, item_features=item_features)
    assert (model.n_users, model.n_items) == (41, 26)
    assert model.score_user(grown[40]).shape == (26,)
    with pytest.raises(ValueError):
        model.partial_fit(interactions[:10])


@pytest.mark.parametrize("kind", [k for k in KINDS if MODEL_CLASSES[k].is_personal])
def test_brand_new_user_with_one_like_gets_personal_scores(
    kind: str, models: dict[str, Model]
) -> None:
    model = models[kind]
    likes_a = sp.csr_matrix(([5.0], ([0], [1])), shape=(1, 25), dtype=np.float32)
    likes_b = sp.csr_matrix(([5.0], ([0], [12])), shape=(1, 25), dtype=np.float32)
    ids_a, _ = model.recommend(likes_a, k=3)
    ids_b, _ = model.recommend(likes_b, k=3)
    assert (ids_a[0] < 10).sum() >= 2, ids_a
    assert ((ids_b[0] >= 10) & (ids_b[0] < 20)).sum() >= 2, ids_b


@pytest.mark.parametrize("kind", [k for k in KINDS if MODEL_CLASSES[k].supports_negatives])
def test_dislike_pushes_item_down(kind: str, models: dict[str, Model]) -> None:
    model = models[kind]
    like = sp.csr_matrix(([5.0, 5.0], ([0, 0], [1, 2])), shape=(1, 25), dtype=np.float32)
    with_dislike = like.copy().tolil()
    with_dislike[0, 3] = -5.0  # item 3 is in the liked cluster: its neighbours should drop
    base = model.score_user(like)
    after = model.score_user(with_dislike.tocsr())
    cluster = [i for i in range(10) if i not in (1, 2, 3)]
    assert after[cluster].mean() < base[cluster].mean()


@pytest.mark.parametrize("kind", [k for k in KINDS if not MODEL_CLASSES[k].supports_negatives])
def test_models_without_negatives_ignore_them(kind: str, models: dict[str, Model]) -> None:
    like = sp.csr_matrix(([5.0], ([0], [1])), shape=(1, 25), dtype=np.float32)
    with_dislike = sp.csr_matrix(([5.0, -5.0], ([0, 0], [1, 3])), shape=(1, 25), dtype=np.float32)
    np.testing.assert_allclose(
        models[kind].score_user(like), models[kind].score_user(with_dislike), rtol=1e-6
    )


def test_load_refuses_pickled_arrays(tmp_path: Path, models: dict[str, Model]) -> None:
    path = models["ease"].save(tmp_path / "ok")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["weights"] = np.array([{"evil": "payload"}], dtype=object)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)  # object array -> stored with pickle
    with pytest.raises(ValueError, match="allow_pickle"):
        load_model(bad)


def test_load_rejects_foreign_files(tmp_path: Path, models: dict[str, Model]) -> None:
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a cinerec model"):
        load_model(plain)
    path = models["als"].save(tmp_path / "als")
    with pytest.raises(ValueError, match="holds a 'als' model"):
        MODEL_CLASSES["ease"].load(path)


def test_unfitted_model_raises(interactions: sp.csr_matrix) -> None:
    from cinerec.models import NotFittedError

    with pytest.raises(NotFittedError):
        make_model("ease").score_user(interactions[0])
    with pytest.raises(ValueError, match="unknown model"):
        make_model("nope")


@pytest.mark.parametrize("kind", KINDS)
def test_explain_names_the_users_own_items(
    kind: str, models: dict[str, Model], interactions: sp.csr_matrix
) -> None:
    """'Because you liked …': what explains a recommendation is among the user's items, and
    for a personal model an item of the user's own taste cluster explains its top pick."""
    model = models[kind]
    row = interactions[0]
    top = int(model.recommend(row, k=1)[0][0, 0])
    [(items, contrib)] = model.explain(row, [top])
    assert set(items.tolist()) <= set(row.indices.tolist())
    assert np.all(contrib > 0) and np.all(np.diff(contrib) <= 1e-6)
    if model.is_personal:
        assert len(items) and int(items[0]) < 10  # user 0 likes items 0-9
    else:
        assert len(items) == 0


@pytest.mark.parametrize("kind", ["ease", "ease_plus", "item_knn", "als"])
def test_contributions_add_up_to_the_score(
    kind: str, models: dict[str, Model], interactions: sp.csr_matrix
) -> None:
    """For models whose score is a sum over the user's items the explanation is exact."""
    model = models[kind]
    row = interactions[3]
    scores = model.score_user(row)
    items = np.array([0, 12, 22])
    totals = model._contributions(sp.csr_matrix(row), items).sum(axis=0)
    assert totals == pytest.approx(scores[items].astype(np.float64), rel=1e-3, abs=1e-4)
    # One call for a whole list gives what one call per movie gives.
    together = model.explain(row, items.tolist())
    for item, (ids, contrib) in zip(items, together, strict=True):
        [(alone_ids, alone)] = model.explain(row, [int(item)])
        assert ids.tolist() == alone_ids.tolist() and np.allclose(contrib, alone)
