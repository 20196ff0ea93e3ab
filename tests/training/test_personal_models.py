"""Training-data time decay, compacted item columns and LightFM's cold-movie scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cinerec.config import load_settings
from cinerec.domain import Event, EventKind, Movie
from cinerec.engine import Engine
from cinerec.service import RecService
from cinerec.training import TrainingData, build_training_data, ids_path, load_ids

DAY = 86400.0
T0 = 1_000_000_000.0


def value(data: TrainingData, user: str, movie: str) -> float:
    return float(data.interactions[data.user_ids.index(user), data.item_ids.index(movie)])


def decay_engine() -> Engine:
    eng = Engine()
    eng.upsert_movies(Movie(m, genres=["Drama"]) for m in ("a", "b", "c", "d"))
    eng.apply_events(
        [
            Event("u1", "a", EventKind.LIKE, ts=T0),
            Event("u1", "b", EventKind.LIKE, ts=T0 + 60 * DAY),
            Event("u2", "a", EventKind.LIKE, ts=T0 + 90 * DAY),  # the newest event: t_ref
            Event("u2", "c", EventKind.DISLIKE, ts=T0),
            Event("u2", "d", EventKind.LIKE, ts=T0),
            Event("u2", "d", EventKind.LIKE, ts=T0 + 60 * DAY),  # latest event wins, time too
        ]
    )
    return eng


def test_time_decay_weighs_older_signals_less() -> None:
    eng = decay_engine()
    on = build_training_data(eng, half_life_days=30.0)
    assert on.t_ref == T0 + 90 * DAY
    old, newer, newest = value(on, "u1", "a"), value(on, "u1", "b"), value(on, "u2", "a")
    assert old < newer < newest
    assert old == pytest.approx(0.125) and newer == pytest.approx(0.5) and newest == 1.0
    assert value(on, "u2", "c") == pytest.approx(-0.125)  # dislikes fade the same way
    assert value(on, "u2", "d") == pytest.approx(0.5)


def test_time_decay_off_leaves_weights_unchanged() -> None:
    eng = decay_engine()
    off = build_training_data(eng)
    assert off.t_ref is None
    assert sorted(off.interactions.data.tolist()) == [-1.0, 1.0, 1.0, 1.0, 1.0]


def test_training_half_life_setting_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().training_half_life_days == 0.0
    monkeypatch.setenv("CINEREC_TRAINING_HALF_LIFE_DAYS", "180")
    assert load_settings().training_half_life_days == 180.0


def service(tmp_path: Path, models: list[str], **settings: object) -> RecService:
    return RecService(
        load_settings(
            database_url=f"sqlite:///{tmp_path / 'cinerec.db'}",
            data_dir=tmp_path,
            models=models,
            min_events_to_train=10,
            scheduler=False,
            **settings,
        )
    )


def test_ease_trains_on_a_catalogue_larger_than_the_dense_limit(tmp_path: Path) -> None:
    svc = service(tmp_path, ["ease"], training_half_life_days=30.0)
    limit = svc.settings.dense_model_max_items
    svc.add_movies([Movie(f"m{i}", genres=["Drama"]) for i in range(limit + 500)])
    rng = np.random.default_rng(0)
    events = [
        Event(f"u{u}", f"m{i}", EventKind.LIKE, ts=T0 + j * DAY)
        for u in range(60)
        for j, i in enumerate(rng.choice(150, size=8, replace=False))
    ]
    svc.record_events(events)
    report = svc.trainer.train("full")
    [record] = report.trained
    assert record.kind == "ease" and record.status == "serving"
    assert record.n_items <= 150 < limit < svc.engine.catalog.n
    recs = svc.engine.recommend("u1", 10, source="ease", explore=False, mark_shown=False)
    assert len(recs) == 10 and all(int(r.movie_id[1:]) < 150 for r in recs)
    svc.close()


def test_incremental_run_keeps_the_models_columns(tmp_path: Path) -> None:
    """A movie whose first event comes after training is appended, whatever its catalogue id,
    so the incrementally updated model's column j still means the same movie."""
    svc = service(tmp_path, ["als"])
    svc.add_movies([Movie(f"m{i}", genres=["Drama"]) for i in range(60)])
    rng = np.random.default_rng(1)
    svc.record_events(
        [
            Event(f"u{u}", f"m{i}", EventKind.LIKE)
            for u in range(40)
            for i in rng.choice(np.arange(20, 60), size=6, replace=False)
        ]
    )
    full = svc.trainer.train("full").trained[0]
    old_items, _ = load_ids(ids_path(full.path))
    assert "m0" not in old_items
    svc.record_events([Event(f"u{u}", "m0", EventKind.LIKE) for u in range(15)])
    incremental = svc.trainer.train("incremental").trained[0]
    assert incremental.mode == "incremental"
    new_items, _ = load_ids(ids_path(incremental.path))
    assert new_items[: len(old_items)] == old_items and new_items[len(old_items) :] == ["m0"]
    svc.close()


def test_lightfm_scores_a_new_movie_from_its_genres(tmp_path: Path) -> None:
    svc = service(tmp_path, ["lightfm"])
    svc.add_movies(
        [Movie(f"h{i}", f"Horror {i}", 1985, ["Horror"]) for i in range(20)]
        + [Movie(f"c{i}", f"Comedy {i}", 1985, ["Comedy"]) for i in range(20)]
    )
    rng = np.random.default_rng(2)
    events = []
    for u in range(40):
        genre = "h" if u < 20 else "c"
        for i in rng.choice(20, size=15, replace=False):
            events.append(Event(f"u{u}", f"{genre}{i}", EventKind.LIKE))
    svc.record_events(events)
    [record] = svc.trainer.train("full").trained
    assert record.status == "serving"
    # Two movies arrive after training, nobody has touched them.
    svc.add_movies(
        [
            Movie("new_horror", "New horror", 1985, ["Horror"]),
            Movie("new_comedy", "New comedy", 1985, ["Comedy"]),
        ]
    )
    eng = svc.engine
    source = eng.recommenders["lightfm"]
    cat = eng.catalog
    h, c = cat.ids.get("new_horror"), cat.ids.get("new_comedy")
    for fan in ("u0", "u1", "u2"):  # horror fans, known to the model
        user = eng.user(fan, create=False)
        scores = source.scores(user, cat)
        assert scores is not None and np.isfinite(scores[[h, c]]).all()
        assert scores[h] > scores[c]
        recs = eng.recommend(fan, 10, source="lightfm", explore=False, mark_shown=False)
        assert "new_horror" in [r.movie_id for r in recs]
    # A brand-new user with two horror likes (fold-in) gets the same ordering.
    svc.record_events([Event("newbie", m, EventKind.LIKE) for m in ("h0", "h1")])
    scores = source.scores(eng.user("newbie", create=False), cat)
    assert scores is not None and scores[h] > scores[c]
    svc.close()


def test_dense_models_keep_the_most_liked_movies() -> None:
    from cinerec.training import Holdout, keep_top_items

    eng = Engine()
    eng.upsert_movies(Movie(f"m{i}", genres=["Drama"]) for i in range(6))
    # m0 liked by 4 users, m1 by 3, m2 by 2, m3 by 1; m4 only disliked
    eng.apply_events(
        [Event(f"u{u}", f"m{i}", EventKind.LIKE) for i in range(4) for u in range(4 - i)]
        + [Event("u0", "m4", EventKind.DISLIKE), Event("u1", "m4", EventKind.DISLIKE)]
    )
    data = build_training_data(eng)
    hold = Holdout(
        data.interactions,
        np.array([0, 1]),
        np.array([data.item_ids.index("m0"), data.item_ids.index("m3")]),
    )
    cut, cut_hold = keep_top_items(data, hold, 2)
    assert cut.item_ids == ["m0", "m1"] and cut.shape == (data.shape[0], 2)
    assert cut.interactions.sum() == 7
    # a held-out movie outside the head stays a miss (-1), one inside is re-indexed
    assert cut_hold.items.tolist() == [0, -1]
    assert keep_top_items(data, hold, 10)[0] is data


def test_ease_serves_a_catalogue_larger_than_its_item_limit(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        data_dir=tmp_path,
        models=["ease"],
        dense_model_max_items=50,
    )
    svc = RecService(settings)
    svc.load()
    svc.add_movies([Movie(f"m{i}", genres=["Drama"]) for i in range(200)])
    rng = np.random.default_rng(0)
    svc.record_events(
        [
            Event(f"u{u}", f"m{int(m)}", EventKind.LIKE)
            for u in range(60)
            for m in rng.choice(120, 8, replace=False)
        ]
    )
    report = svc.trainer.train("full")
    [record] = report.trained
    assert record.kind == "ease" and record.n_items == 50 and record.status == "serving"
    picks = svc.engine.recommend("u0", 5, source="ease", explore=False)
    assert len(picks) == 5
    svc.close()
