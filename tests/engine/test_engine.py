"""Serving rules of the engine, without HTTP or SQL."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cinerec.domain import Event, EventKind, Movie
from cinerec.engine import Engine, UnknownSourceError
from cinerec.engine.plans import DEFAULT_SETTING
from cinerec.engine.policy import EXPLORE, RESHOW, quotas, top_n
from cinerec.engine.recommenders import Recommender
from cinerec.engine.state import Catalog, UserState

GENRES = ["Drama", "Comedy", "Horror", "Sci-Fi"]


def make_engine(n: int = 200, share: float = 0.2) -> Engine:
    eng = Engine(exploration_share=share, seed=7)
    eng.upsert_movies(
        Movie(f"m{i}", f"Movie {i}", 2000, [GENRES[i % 4]], created_at=1000.0 + i) for i in range(n)
    )
    return eng


def ids(recs: list) -> list[str]:
    return [r.movie_id for r in recs]


def test_quotas_sum_to_total_and_follow_weights() -> None:
    assert quotas([0.5, 0.3, 0.2], 8) == [4, 2, 2]
    assert sum(quotas([1, 1, 1], 10)) == 10
    assert quotas([], 5) == []
    assert quotas([1.0], 0) == [0]


def test_top_n_skips_forbidden_and_non_positive() -> None:
    scores = np.array([5.0, 4.0, 0.0, 3.0, -1.0])
    ok = np.array([False, True, True, True, True])
    assert top_n(scores, ok, 10, positive_only=True).tolist() == [1, 3]
    assert top_n(scores, ok, 2, positive_only=False).tolist() == [1, 3]


def test_exactly_k_and_never_a_repeat_until_the_catalogue_runs_out() -> None:
    eng = make_engine(n=100)
    shown: list[str] = []
    for _ in range(10):
        recs = eng.recommend("u", 10)
        assert len(recs) == 10
        shown += ids(recs)
    assert len(set(shown)) == 100  # every movie exactly once
    again = eng.recommend("u", 10)
    assert len(again) == 10 and {r.source for r in again} == {RESHOW}


def test_liked_disliked_and_excluded_movies_never_come_back() -> None:
    eng = make_engine()
    eng.apply_events(
        [
            Event("u", "m1", EventKind.LIKE),
            Event("u", "m2", EventKind.DISLIKE),
            Event("u", "m3", EventKind.NOT_INTERESTED),
            Event("u", "m4", EventKind.RATING, 4.0),
        ]
    )
    seen: set[str] = set()
    for _ in range(15):
        seen |= set(ids(eng.recommend("u", 10, exclude=["m5"])))
    assert not seen & {"m1", "m2", "m3", "m4", "m5"}


def test_exploration_share_and_labels() -> None:
    eng = make_engine(share=0.3)
    eng.apply_events([Event("other", f"m{i}", EventKind.LIKE) for i in range(0, 40, 4)])
    recs = eng.recommend("u", 10)
    assert sum(r.source == EXPLORE for r in recs) == 3
    assert all(r.source for r in recs)
    no_explore = eng.recommend("u2", 10, explore=False)
    assert not any(r.source == EXPLORE for r in no_explore)


def test_likes_steer_a_user_to_their_genre() -> None:
    eng = make_engine(share=0.0)
    # Drama movies are m0, m4, m8, ...
    eng.apply_events([Event("u", f"m{i}", EventKind.LIKE) for i in (0, 4, 8)])
    recs = eng.recommend("u", 10, source="genre_top")
    assert all(int(r.movie_id[1:]) % 4 == 0 for r in recs)


def test_favourite_genres_give_a_new_user_genre_matched_results() -> None:
    eng = make_engine(share=0.0)
    eng.set_favorite_genres("fan", ["Horror"])
    recs = eng.recommend("fan", 10)
    genre_top = [r for r in recs if r.source == "genre_top"]
    assert genre_top and all(int(r.movie_id[1:]) % 4 == 2 for r in genre_top)


def test_event_for_unknown_movie_is_ignored_until_the_movie_exists() -> None:
    eng = make_engine(n=20)
    eng.apply_events([Event(f"x{i}", "future", EventKind.LIKE) for i in range(5)])
    assert "future" not in ids(eng.recommend("u", 10, source="popular", explore=False))
    eng.upsert_movies([Movie("future", "Future", 2030, ["Drama"])])
    assert ids(eng.recommend("u2", 10, source="popular", explore=False))[0] == "future"


def test_hidden_movies_are_never_shown() -> None:
    eng = make_engine(n=30)
    eng.set_hidden("m7", True)
    seen = set()
    for _ in range(3):
        seen |= set(ids(eng.recommend("u", 10)))
    assert "m7" not in seen and len(seen) == 29 + 1 - 1  # 29 servable, then reshow


def test_cold_movie_reaches_users_through_newest_and_exploration() -> None:
    eng = make_engine(n=500)
    eng.apply_events([Event(f"o{i}", f"m{i % 50}", EventKind.LIKE) for i in range(300)])
    eng.upsert_movies([Movie("brand-new", "New", 2026, ["Drama"], created_at=10**10)])
    hits = sum("brand-new" in ids(eng.recommend(f"fresh{i}", 10)) for i in range(5))
    assert hits >= 1


def test_top_rated_uses_bayesian_average() -> None:
    eng = make_engine(n=10, share=0.0)
    # one 5-star rating must not beat fifty 4.8-average ratings (catalogue mean ~3.9)
    eng.apply_events([Event(f"w{i}", "m3", EventKind.RATING, 3.0) for i in range(50)])
    eng.apply_events([Event("a", "m1", EventKind.RATING, 5.0)])
    eng.apply_events(
        [Event(f"u{i}", "m2", EventKind.RATING, 5.0 if i % 5 else 4.0) for i in range(50)]
    )
    assert ids(eng.recommend("x", 1, source="top_rated"))[0] == "m2"


def test_popularity_decays_with_time() -> None:
    eng = make_engine(n=10, share=0.0)
    day = 86400.0
    eng.apply_events([Event(f"u{i}", "m1", EventKind.LIKE, ts=1.7e9) for i in range(3)])
    eng.apply_events([Event(f"v{i}", "m2", EventKind.LIKE, ts=1.7e9 + 120 * day) for i in range(2)])
    assert ids(eng.recommend("x", 2, source="popular"))[:1] == ["m2"]


def test_unknown_source_is_an_error() -> None:
    with pytest.raises(UnknownSourceError):
        make_engine().recommend("u", 10, source="nope")


def test_genre_top_and_similar() -> None:
    eng = make_engine(n=40)
    eng.apply_events([Event(f"u{i}", "m4", EventKind.LIKE) for i in range(5)])
    assert eng.genre_top(None, 3, ["Drama"])[0] == "m4"
    sim = eng.similar("m0", 5)
    assert sim is not None and all(int(r.movie_id[1:]) % 4 == 0 for r in sim)
    assert eng.similar("nope", 5) is None


def test_catalogue_grows_past_initial_capacity() -> None:
    eng = Engine(seed=1)
    eng.upsert_movies(Movie(f"m{i}", genres=[f"g{i % 40}"]) for i in range(3000))
    assert eng.stats()["movies"] == 3000
    assert len(eng.recommend("u", 10)) == 10


def test_new_movie_reaches_the_users_who_like_its_genre_first() -> None:
    eng = make_engine(n=400, share=0.0)
    # Horror fans (m2, m6, ... are Horror) and comedy fans (m1, m5, ...).
    for u in range(5):
        eng.apply_events([Event(f"horror{u}", f"m{2 + 4 * j}", EventKind.LIKE) for j in range(5)])
        eng.apply_events([Event(f"comedy{u}", f"m{1 + 4 * j}", EventKind.LIKE) for j in range(5)])
    eng.upsert_movies([Movie("new-horror", "Fresh Scares", 2026, ["Horror"], created_at=10**10)])
    eng.upsert_movies([Movie("new-comedy", "Fresh Laughs", 2026, ["Comedy"], created_at=10**10)])
    for u in range(5):
        horror = ids(eng.recommend(f"horror{u}", 10, source="newest"))
        comedy = ids(eng.recommend(f"comedy{u}", 10, source="newest"))
        assert horror[0] == "new-horror" and comedy[0] == "new-comedy"


def test_exploration_shrinks_to_one_slot_once_the_catalogue_has_an_audience() -> None:
    eng = make_engine(n=40, share=0.3)
    assert eng.policy.exploration_slots(eng.catalog, 10) == 3
    eng.mark_shown("a", [f"m{i}" for i in range(31)])  # 31/40 = 78 % shown
    assert eng.policy.exploration_slots(eng.catalog, 10) == 3
    eng.mark_shown("b", ["m31", "m32"])  # 33/40 = 82 %
    assert eng.policy.exploration_slots(eng.catalog, 10) == 1


def test_like_rate_prefers_liked_per_impression_over_raw_likes() -> None:
    eng = make_engine(n=20, share=0.0)
    eng.mark_shown("x", ["m1"])
    for u in range(30):  # m2: shown to 30 people, liked by 6; m1: shown to 3, liked by 3
        eng.mark_shown(f"v{u}", ["m2"])
    eng.apply_events([Event(f"v{u}", "m2", EventKind.LIKE) for u in range(6)])
    eng.mark_shown("y", ["m1"])
    eng.mark_shown("z", ["m1"])
    eng.apply_events([Event(u, "m1", EventKind.LIKE) for u in ("x", "y", "z")])
    assert ids(eng.recommend("new", 1, source="popular"))[0] == "m2"
    assert ids(eng.recommend("new2", 1, source="like_rate"))[0] == "m1"


def _like(eng: Engine, user: str, *movies: str) -> None:
    eng.apply_events([Event(user, m, EventKind.LIKE) for m in movies])


def test_item_to_item_ranks_by_co_likes_per_impression() -> None:
    eng = make_engine(n=20, share=0.0)
    # 30 people like m1. All of them were shown m3 and 6 liked it; 5 were shown m2 and 4
    # liked it. Raw co-occurrence says m3 (6 co-likes), per impression m2 (4 of 5) wins.
    for u in range(30):
        eng.mark_shown(f"v{u}", ["m1", "m3"] + (["m2"] if u < 5 else []))
        _like(eng, f"v{u}", "m1")
    for u in range(4):
        _like(eng, f"v{u}", "m2")
    for u in range(6):
        _like(eng, f"v{u + 10}", "m3")
    _like(eng, "fan", "m1")
    top = ids(eng.recommend("fan", 2, source="item_to_item"))
    assert top[0] == "m2"


def test_item_to_item_and_co_likes_abstain_for_a_user_with_no_likes() -> None:
    eng = make_engine(n=20, share=0.0)
    for u in range(10):
        eng.mark_shown(f"v{u}", ["m1", "m2", "m5"])
        _like(eng, f"v{u}", "m5" if u < 7 else "m1")
    eng.apply_events([Event("cold", "m9", EventKind.DISLIKE)])
    for user in ("new", "cold"):
        u = eng.user(user)
        for name in ("item_to_item", "co_likes"):
            assert eng.recommenders[name].scores(u, eng.catalog) is None
        assert eng.recommenders["like_rate"].scores(u, eng.catalog) is not None


def test_co_likes_is_cosine_normalised_co_occurrence() -> None:
    eng = make_engine(n=10, share=0.0)
    # m1's likers: v0..v3; three of them like m2, one likes m3 (m3 has 4 likers overall)
    for u in range(4):
        _like(eng, f"v{u}", "m1", *(["m2"] if u < 3 else ["m3"]))
    for u in range(4, 7):
        _like(eng, f"v{u}", "m3")
    _like(eng, "me", "m1")
    s = eng.recommenders["co_likes"].scores(eng.user("me"), eng.catalog)
    assert s is not None
    cat = eng.catalog
    m2, m3 = cat.ids.get("m2"), cat.ids.get("m3")
    assert s[m2] == pytest.approx(3 / np.sqrt(4 * 3))
    assert s[m3] == pytest.approx(1 / np.sqrt(4 * 4))
    # imported likes carry no impressions: per impression every co-liked movie looks alike,
    # co-occurrence still tells them apart
    i2i = eng.recommenders["item_to_item"].scores(eng.user("me"), cat)
    assert i2i is not None and s[m2] > s[m3]


def test_item_to_item_matches_its_formula_on_random_histories() -> None:
    rng = np.random.default_rng(3)
    eng = make_engine(n=30, share=0.0)
    for u in range(40):
        shown = [f"m{i}" for i in rng.choice(30, size=12, replace=False)]
        eng.mark_shown(f"v{u}", shown)
        _like(eng, f"v{u}", *[m for m in shown if rng.random() < 0.4])
    _like(eng, "me", "m1", "m2", "m3")
    me = eng.user("me")
    assert me is not None
    got = eng.recommenders["item_to_item"].scores(me, eng.catalog)
    p = eng.recommenders["like_rate"].scores(me, eng.catalog)
    assert got is not None and p is not None
    # Brute force: sum over my likes j of log((C[j,i] + a*p[i]) / (E[j,i] + a)) - log p[i].
    a, cat = 5.0, eng.catalog
    others = [eng.users[eng.user_ids.get(f"v{u}")] for u in range(40)]
    want = np.log(p)
    lift = np.zeros(cat.n)
    for m in ("m1", "m2", "m3"):
        j = cat.ids.get(m)
        for i in range(cat.n):
            likers = [v for v in others if j in v.liked]
            c = sum(1 for v in likers if i in v.liked)
            e = sum(1 for v in likers if i in v.seen)
            lift[i] += np.log((c + a * p[i]) / (e + a)) - np.log(p[i])
    np.testing.assert_allclose(np.log(got), want + lift / np.sqrt(3), rtol=1e-5)
    _like(eng, "v1", "m4", "m5")  # histories still grow after a request has read them


def test_a_dislike_takes_back_a_like_for_item_to_item() -> None:
    eng = make_engine(n=10, share=0.0)
    _like(eng, "v", "m1", "m2")
    eng.apply_events([Event("v", "m2", EventKind.DISLIKE)])
    v = eng.user("v")
    assert v is not None and list(v.liked) == [eng.catalog.ids.get("m1")]
    assert list(eng.catalog.likers[eng.catalog.ids.get("m2")]) == []


def test_item_to_item_abstains_until_someone_else_shares_a_like() -> None:
    eng = make_engine(n=40, share=0.0)
    _like(eng, "other", "m7")
    _like(eng, "alone", "m2", "m6")  # Horror, and nobody else likes either
    alone = eng.user("alone")
    assert eng.recommenders["item_to_item"].scores(alone, eng.catalog) is None
    # ... while the genre source still speaks for this user's genre.
    recs = eng.recommend("alone", 5, source="genre_top")
    assert {r.movie_id for r in recs} <= {f"m{i}" for i in range(2, 40, 4)}
    _like(eng, "other", "m2")
    assert eng.recommenders["item_to_item"].scores(alone, eng.catalog) is not None


class _Fixed(Recommender):
    """A stand-in personal model: the same ranking for everyone."""

    def __init__(self, name: str, order: np.ndarray) -> None:
        self.name = name
        self.order = order

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        s = np.zeros(catalog.n)
        s[self.order] = np.linspace(2.0, 1.0, len(self.order))
        return s


def served_engine(
    n: int, share: float, order: np.ndarray, evidence_share: float | None = None
) -> Engine:
    """An engine whose one personal model, ``served``, ranks ``order`` for everyone, and whose
    ranker serves that source's order (``evidence_share`` 0: plans ask that source only)."""
    from cinerec.engine.ranking import SegmentedRanker, SourceRanker

    eng = make_engine(n=n, share=share)
    eng.register(_Fixed("served", order))
    eng.personal_pool = ["served"]
    eng.ranker = SegmentedRanker(SourceRanker("served"), SourceRanker("served"))
    if evidence_share is not None:
        eng.evidence_share = evidence_share
    return eng


def test_without_a_ranker_slots_move_to_the_source_whose_picks_get_liked() -> None:
    eng = make_engine(n=400, share=0.0)
    good, bad = set(range(0, 400, 2)), set(range(1, 400, 2))  # users like even movies only
    eng.register(_Fixed("good", np.array(sorted(good))))
    eng.register(_Fixed("bad", np.array(sorted(bad))))
    eng.personal, eng.personal_pool = "bad", ["bad", "good"]  # the held-out check erred
    assert eng.ranker is None
    picks = []
    for n in range(150):
        user = f"u{n}"
        eng.apply_events([Event(user, "m399", EventKind.DISLIKE)])  # warm: has interactions
        recs = eng.recommend(user, 10)
        picks.append([r.source for r in recs if r.source in ("good", "bad")])
        liked = [r.movie_id for r in recs if int(r.movie_id[1:]) in good]
        eng.apply_events([Event(user, m, EventKind.LIKE) for m in liked])
    late = [s for p in picks[-50:] for s in p]
    assert late.count("good") >= 0.8 * len(late)
    stats = eng.stats()["sources"]
    assert stats["good"]["like_rate"] == 1.0 and stats["bad"]["liked"] == 0
    assert stats["good"]["shown"] > stats["bad"]["shown"] > 0


def test_tallies_survive_a_replay_of_events_then_rec_log() -> None:
    eng = make_engine(n=20, share=0.0)
    _like(eng, "u", "m1")  # at start-up events come back first ...
    eng.mark_shown("u", ["m1", "m2"], ["item_to_item", "explore"])  # ... then the rec log
    assert eng.stats()["sources"] == {
        "explore": {"shown": 1, "liked": 0, "like_rate": 0.0},
        "item_to_item": {"shown": 1, "liked": 1, "like_rate": 1.0},
    }


def test_similar_movies_come_from_co_likes_where_there_are_any() -> None:
    eng = make_engine(n=40, share=0.0)
    # m0 (Action) is liked with m3 (Comedy) by many; m4 shares m0's genre but nobody's likes
    for u in range(6):
        _like(eng, f"u{u}", "m0", "m3")
    _like(eng, "x", "m5")
    sim = eng.similar("m0", 5)
    assert sim is not None
    assert (sim[0].movie_id, sim[0].source) == ("m3", "co_likes")
    assert {r.source for r in sim[1:]} == {"similar_genres"}  # the rest from genres
    assert len(sim) == 5 and "m0" not in {r.movie_id for r in sim}


class _Counting(_Fixed):
    """A stand-in source that counts how often it is asked."""

    def __init__(self, name: str, order: np.ndarray) -> None:
        super().__init__(name, order)
        self.calls = 0

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        self.calls += 1
        return super().scores(user, catalog)


def test_a_plan_asks_only_the_rankers_sources_and_serves_several_lists() -> None:
    from cinerec.engine.ranking import SegmentedRanker, SourceRanker

    eng = make_engine(n=200, share=0.0)
    served, other = _Counting("served", np.arange(100)), _Counting("other", np.arange(100, 200))
    eng.register(served)
    eng.register(other)
    eng.personal_pool = ["served", "other"]
    eng.ranker = SegmentedRanker(SourceRanker("served"), SourceRanker("served"))
    eng.draw_source = lambda names: "served"  # type: ignore[method-assign]
    eng.evidence_share = 0.0
    eng.apply_events([Event("u", "m199", EventKind.LIKE)])
    recs = eng.recommend("u", 10, explore=False)
    assert [r.movie_id for r in recs] == [f"m{i}" for i in range(10)]
    assert (served.calls, other.calls) == (1, 0)
    assert not eng.impressions.groups  # nothing logged: these rows lack the other sources
    # The same plan serves the next lists: no source is asked again until the user acts.
    recs = eng.recommend("u", 10, explore=False)
    assert [r.movie_id for r in recs] == [f"m{i}" for i in range(10, 20)]
    assert (served.calls, other.calls) == (1, 0)
    # An evidence plan asks every source and logs the rows of its first list only.
    eng.evidence_share = 1.0
    eng.apply_events([Event("u", "m198", EventKind.LIKE)])
    recs = eng.recommend("u", 10, explore=False)
    assert (served.calls, other.calls) == (2, 1)
    ((_, group, movies),) = eng.impressions.groups
    assert movies == list(range(20, 30))
    assert "other:rank" in group.names and "newest:rank" in group.names
    eng.recommend("u", 10, explore=False)
    assert len(eng.impressions.groups) == 1


def test_a_like_makes_the_plan_again_and_a_model_swap_only_marks_it_stale() -> None:
    from cinerec.engine.ranking import SegmentedRanker, SourceRanker

    eng = make_engine(n=200, share=0.0)
    served = _Counting("served", np.arange(100))
    eng.register(served)
    eng.personal_pool = ["served"]
    eng.ranker = SegmentedRanker(SourceRanker("served"), SourceRanker("served"))
    eng.apply_events([Event("u", "m199", EventKind.LIKE)])
    eng.recommend("u", 10, explore=False)
    assert served.calls == 1
    eng.apply_events([Event("u", "m198", EventKind.LIKE)])
    eng.recommend("u", 10, explore=False)
    assert served.calls == 2  # the user acted: the list must reflect it
    stale: list[str | None] = []
    eng.on_stale = stale.append
    eng.register(_Fixed("unused", np.arange(5)))  # the serving version moves on
    recs = eng.recommend("u", 10, explore=False)
    assert served.calls == 2 and stale == ["u"] and len(recs) == 10
    eng.recommend("u", 10, explore=False)
    assert stale == ["u"]  # asked once
    assert eng.refresh(["u"]) == 1 and served.calls == 3
    assert eng.refresh(["u"]) == 0


def _newcomers_on_popular(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Engine, list[float], list[str | None]]:
    """An engine whose newcomers' plan is ordered by popularity (one like of m3 so far) and
    has served a first list; its clock (``plans.time.monotonic``) and the plans it asked to
    have made in the background."""
    from cinerec.engine import plans
    from cinerec.engine.ranking import SegmentedRanker, SourceRanker

    clock = [1000.0]
    monkeypatch.setattr(plans.time, "monotonic", lambda: clock[0])
    eng = make_engine(n=50, share=0.0)
    eng.ranker = SegmentedRanker(SourceRanker("popular"), SourceRanker("popular"))
    eng.apply_events([Event("fan", "m3", EventKind.LIKE)])
    stale: list[str | None] = []
    eng.on_stale = stale.append
    assert ids(eng.recommend("new1", 10, explore=False))[0] == "m3"
    return eng, clock, stale


def test_the_newcomers_plan_follows_popularity_within_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cinerec.engine import plans

    eng, clock, stale = _newcomers_on_popular(monkeypatch)
    eng.apply_events([Event(f"v{u}", "m7", EventKind.LIKE) for u in range(5)])
    clock[0] += plans.SHARED_PLAN_TTL_S + 1  # a user's plan would still be fresh
    eng.recommend("new2", 10, explore=False)
    assert stale == [None]  # asked for in the background
    eng.refresh([None])
    assert ids(eng.recommend("new3", 10, explore=False))[0] == "m7"


def test_the_newcomers_plan_follows_the_first_likes_before_its_seconds_are_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cinerec.engine import plans

    eng, clock, stale = _newcomers_on_popular(monkeypatch)
    clock[0] += plans.SHARED_PLAN_MIN_AGE_S + 0.1  # well within SHARED_PLAN_TTL_S
    # a few more likes than the plan was made with: not yet worth a remake
    eng.apply_events([Event(f"v{u}", "m7", EventKind.LIKE) for u in range(plans.SHARED_PLAN_NEW)])
    eng.recommend("new2", 10, explore=False)
    assert stale == []
    # the catalogue's likes outgrew the plan's: it is made again in the background
    eng.apply_events([Event(f"w{u}", "m7", EventKind.LIKE) for u in range(3)])
    eng.recommend("new3", 10, explore=False)
    assert stale == [None]
    eng.refresh([None])
    assert ids(eng.recommend("new4", 10, explore=False))[0] == "m7"
    # and not again before SHARED_PLAN_MIN_AGE_S, however many likes arrive
    stale.clear()
    eng.apply_events([Event(f"x{u}", "m9", EventKind.LIKE) for u in range(100)])
    eng.recommend("new5", 10, explore=False)
    assert stale == []


class _Flat(Recommender):
    """A source that scores every movie alike."""

    name = "flat"

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        return np.ones(catalog.n)


def test_a_source_that_scores_every_allowed_movie_alike_proposes_nothing() -> None:
    eng = make_engine(n=60, share=0.0)
    eng.register(_Flat())
    eng.personal_pool = ["flat"]
    _like(eng, "fan", "m3")
    for _ in range(5):  # every slot is drawn by the bandit (no ranker): never the flat source
        assert "flat" not in {r.source for r in eng.recommend("u", 10)}


def test_the_same_like_repeated_counts_once() -> None:
    eng = make_engine(n=40, share=0.0)
    eng.apply_events([Event("spammer", "m5", EventKind.LIKE)] * 5000)
    for fan in ("a", "b", "c"):
        _like(eng, fan, "m7")
    cat = eng.catalog
    i5, i7 = cat.ids.get("m5"), cat.ids.get("m7")
    assert cat.positive_cnt[i5] == 1 and cat.rating_cnt[i5] == 1
    assert cat.popularity()[i7] > cat.popularity()[i5]
    assert ids(eng.recommend("newcomer", 1, source="popular", explore=False)) == ["m7"]
    # a dislike after the likes still turns the state over, and repeating it changes nothing
    eng.apply_events([Event("spammer", "m5", EventKind.DISLIKE)] * 3)
    assert cat.rating_cnt[i5] == 2 and eng.user("spammer").likes(i5) is False


def test_the_fast_path_serves_while_the_lock_is_held_and_never_overlaps_the_locked_path() -> None:
    import threading

    eng = served_engine(300, 0.2, np.arange(300))
    eng.apply_events([Event("u", "m299", EventKind.LIKE)])
    assert eng.try_serve("u", 10) is None  # no plan yet: the locked path makes it
    shown = ids(eng.recommend("u", 10))
    assert eng.try_serve("stranger", 10) is None
    assert eng.refresh([None]) == 1  # the shared plan of users with no history
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with eng.lock:
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        for _ in range(3):  # served without the lock (a training run or a wipe holds it)
            recs = eng.try_serve("u", 10)
            assert recs is not None and len(recs) == 10
            assert not set(ids(recs)) & set(shown)
            shown += ids(recs)
        new = eng.try_serve("stranger", 10)  # unknown users too: the shared plan
        assert new is not None and len(new) == 10
    finally:
        release.set()
        t.join()
    assert "stranger" not in eng.user_ids  # nothing is created without the lock...
    for _ in range(3):  # ...and the locked path skips what the fast path served
        recs = ids(eng.recommend("u", 10))
        assert not set(recs) & set(shown)
        shown += recs
    assert len(eng.users[eng.user_ids.get("u")].shown) == len(shown) == 70
    # folded in by then, as a compact viewer (no event yet: no full state)
    assert eng.user("stranger", create=False) is None
    assert len(eng.viewers[eng.user_ids.get("stranger")]) == 10
    assert eng.fold_served() is False  # nothing left to fold


def test_a_list_the_fast_path_serves_while_its_earlier_list_is_folded_in_reshows_nothing() -> None:
    """The background fold takes a user's served lists out of ``_pending`` and into their
    shown set; a fast-path walk of the same user in between (the event loop runs whenever
    the folding thread lets go of the GIL) must see them in one or the other."""
    import threading

    eng = served_engine(300, 0.2, np.arange(300))
    eng.recommend("someone", 10)  # the locked path counts what the fast path reads
    assert eng.refresh([None]) == 1  # the newcomers' plan: every walk starts at its top
    first = eng.try_serve("stranger", 10)
    assert first is not None
    second: list = []
    fold = eng._fold

    def fold_with_a_request_in_between(user_id: str, lists: list) -> None:
        t = threading.Thread(target=lambda: second.append(eng.try_serve("stranger", 10)))
        t.start()
        t.join(0.3)  # it runs now, or waits for this fold: either way it must not re-show
        fold(user_id, lists)
        eng._fold = fold  # type: ignore[method-assign]

    eng._fold = fold_with_a_request_in_between  # type: ignore[method-assign]
    assert eng.fold_served() is True
    for _ in range(100):
        if second:
            break
        time.sleep(0.01)
    assert second and second[0] is not None and len(second[0]) == 10
    assert not set(ids(first)) & set(ids(second[0]))


def test_a_plan_that_runs_dry_is_topped_up_from_the_newcomers_plan_not_the_slow_path() -> None:
    # a plan of 35 candidates (3 lists and a half) that asks the ranker's source only
    eng = served_engine(300, 0.0, np.arange(35), evidence_share=0.0)
    eng.apply_events([Event("u", "m299", EventKind.LIKE)])
    shown = ids(eng.recommend("u", 10, explore=False))  # the locked path makes the plan
    assert eng.refresh([None]) == 1  # the newcomers' plan
    asked: list[str | None] = []
    eng.on_stale = asked.append  # remakes go to the background
    for _ in range(5):
        recs = eng.try_serve("u", 10, explore=False)
        assert recs is not None and len(recs) == 10  # never the slow path
        assert not set(ids(recs)) & set(shown)
        shown += ids(recs)
    assert set(shown[:35]) == {f"m{i}" for i in range(35)}  # the plan's own first
    assert not set(shown[35:]) & {f"m{i}" for i in range(35)}  # then the newcomers' list
    assert asked == ["u"]  # and its remake asked for once


def test_a_user_who_has_seen_the_newcomers_plan_too_gets_its_exploration_picks() -> None:
    """A user who asks faster than plans are remade (a benchmark's hammering, a stuck
    refresher) outruns the newcomers' ranked list as well: the rest comes from that plan's
    exploration picks, still without the slow path and without a re-show."""
    eng = served_engine(300, 0.0, np.arange(35), evidence_share=0.0)
    eng.apply_events([Event("u", "m299", EventKind.LIKE)])
    shown = ids(eng.recommend("u", 10, explore=False))
    assert eng.refresh([None]) == 1
    newcomers = eng._shared_plans[DEFAULT_SETTING]
    # Enough lists to walk past the user's plan and the newcomers' ranked list.
    lists = (35 + len(newcomers.ranked)) // 10 + 3
    assert 10 * (lists + 1) <= 300 - 1
    asked: list[str | None] = []
    eng.on_stale = asked.append
    sources: list[str] = []
    for _ in range(lists):
        recs = eng.try_serve("u", 10, explore=False)
        assert recs is not None and len(recs) == 10  # never the slow path
        assert not set(ids(recs)) & set(shown)
        shown += ids(recs)
        sources += [r.source for r in recs]
    assert sources[-10:] == ["explore"] * 10
    explore = {eng.catalog.ids.external(int(i)) for i in newcomers.explore}
    assert set(shown[-10:]) <= explore  # the newcomers' exploration picks
    assert asked == ["u"]


def test_a_user_who_has_seen_all_of_the_newcomers_plan_gets_the_rest_of_the_catalogue() -> None:
    """Past the newcomers' ranked list and exploration picks, the fill walks the rest of the
    catalogue, most popular first, still on the fast path and resuming where the user's last
    fill ended (not from the top, past everything the user saw)."""
    eng = served_engine(2000, 0.0, np.arange(35), evidence_share=0.0)
    eng.apply_events([Event("u", "m1999", EventKind.LIKE)])
    shown = ids(eng.recommend("u", 10, explore=False))
    assert eng.refresh([None]) == 1
    newcomers = eng._shared_plans[DEFAULT_SETTING]
    assert len(newcomers.tail) > 0
    eng.on_stale = lambda _: None  # the remake never comes
    into_tail = []
    while len(into_tail) < 5:
        recs = eng.try_serve("u", 10, explore=False)
        assert recs is not None and len(recs) == 10  # never the slow path
        assert not set(ids(recs)) & set(shown)
        shown += ids(recs)
        walk = newcomers.walks.get("u")
        if walk is not None and walk.tail > 0:
            into_tail.append((walk.tail, ids(recs)))
    tail = [eng.catalog.ids.external(int(i)) for i in newcomers.tail]
    # each fill resumed where the last one ended, in the tail's order (most popular first)
    assert [at for at, _ in into_tail] == sorted({at for at, _ in into_tail})
    assert into_tail[-1][1] == tail[into_tail[-2][0] : into_tail[-1][0]]


def test_the_shared_plan_remembers_a_bounded_number_of_walks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cinerec.engine import plans

    monkeypatch.setattr(plans, "SHARED_WALKS_MAX", 3)
    eng = make_engine(n=300, share=0.2)
    eng.recommend("someone", 10)
    assert eng.refresh([None]) == 1
    newcomers = eng._shared_plans[DEFAULT_SETTING]
    for n in range(6):
        assert eng.try_serve(f"new{n}", 10) is not None
    assert list(newcomers.walks) == ["new0", "new1", "new2"]
    first = newcomers.walks["new0"]
    assert eng.try_serve("new0", 10) is not None  # a remembered walk still moves on
    assert newcomers.walks["new0"] != first and len(newcomers.walks) == 3


def test_a_user_past_their_own_exploration_picks_walks_the_shared_ones_on_from_one_place() -> None:
    """Once a plan's own exploration picks are used up, its exploration slots draw from the
    newcomers' plan's: from a random place for the user's first such list, then on from
    where the last one stopped (not from a new random place past what the user saw)."""
    eng = served_engine(3000, 0.2, np.arange(3000), evidence_share=0.0)
    eng.apply_events([Event("u", "m2999", EventKind.LIKE)])
    eng.recommend("u", 10)
    assert eng.refresh([None]) == 1
    newcomers = eng._shared_plans[DEFAULT_SETTING]
    pool = [eng.catalog.ids.external(int(i)) for i in newcomers.explore]
    eng.on_stale = lambda _: None
    u = eng.user("u")
    walks, picked = [], []
    while len(walks) < 4:
        recs = eng.try_serve("u", 10)
        assert recs is not None
        w = u.plan.cursor.shared_explore
        if w is not None:
            walks.append(w)
            picked += [r.movie_id for r in recs if r.source == "explore"]
    assert {w[:2] for w in walks} == {walks[0][:2]}  # one plan, one starting place
    assert [w[2] for w in walks] == sorted({w[2] for w in walks})  # on from the last
    key, first, at = walks[-1]
    assert key == newcomers.made_at
    walked = [pool[(first + j) % len(pool)] for j in range(at)]
    assert picked[-2:] == [m for m in walked if m in picked[-2:]]


@pytest.mark.parametrize("ranked", [None, "popular", "co_likes"])
def test_the_list_after_a_like_answers_it(ranked: str | None) -> None:
    """Whatever orders the list (the bandit before a ranker is trained, a ranker that reads
    popularity only, or one whose first picks answer the like themselves), the list after a
    like given in reply to lists holds a movie that the like explains; the ranker's first
    picks stay. An imported like (no list shown before) is left to the ranker."""
    from cinerec.engine.ranking import SegmentedRanker, SourceRanker

    eng = make_engine(n=120, share=0.0)
    # Two tastes: likers of even movies and likers of odd ones among m20..m35; many more
    # like m0..m19, so that popularity points elsewhere than the like's neighbours.
    eng.apply_events(
        [Event(f"p{j}", f"m{i}", EventKind.LIKE) for j in range(40) for i in range(20)]
        + [
            Event(f"t{j}", f"m{2 * k + j % 2 + 20}", EventKind.LIKE)
            for j in range(20)
            for k in range(8)
        ]
    )
    if ranked:
        eng.ranker = SegmentedRanker(SourceRanker(ranked), SourceRanker(ranked))

    def answering(user: str, recs: list) -> list[int]:
        return [n for n, r in enumerate(eng.explain(user, recs)) if "m21" in r.because]

    eng.apply_events([Event("imported", "m21", EventKind.LIKE)])
    imported = eng.recommend("imported", 10, explore=False)
    if ranked == "popular":
        assert ids(imported)[0] == "m19" and not answering("imported", imported)
    eng.recommend("u", 10, explore=False)  # a newcomer's list (m10..m19 when popular ranks)
    eng.apply_events([Event("u", "m21", EventKind.LIKE)])  # an odd-taste movie
    first = eng.recommend("u", 10, explore=False)
    assert len(set(ids(first))) == 10  # the follow-up is not listed twice
    answers = answering("u", first)
    assert answers, [(r.movie_id, r.source) for r in first]
    plan = eng.user("u", create=False).plan
    if ranked == "popular":  # the ranker's picks but its last: the follow-up took that one
        assert answers == [9] and first[9].source in ("item_to_item", "co_likes")
        assert all(int(m[1:]) < 20 for m in ids(first[:9]))
    if ranked == "co_likes":  # the ranker's own picks answer it: nothing is replaced
        assert plan.follow is None and answers[0] == 0
    # Answered once: the plan's next list (no new act) goes on in the plan's own order,
    # from the ranker's pick the follow-up took the place of.
    assert plan.cursor.followed
    if ranked:
        ext = eng.catalog.ids.external
        first_unshown = next(m for m in map(ext, plan.ranked.tolist()) if m not in ids(first))
        assert ids(eng.recommend("u", 10, explore=False))[0] == first_unshown


def test_exploration_stops_once_every_movie_has_been_shown_and_reopens_for_a_new_one() -> None:
    eng = make_engine(n=40, share=0.3)
    eng.mark_shown("a", [f"m{i}" for i in range(39)])
    assert eng.policy.exploration_slots(eng.catalog, 10) == 1
    # the last movie nobody has seen is explored, however small its share of the catalogue
    plan = eng.make_plan(None)
    assert eng.catalog.ids.get("m39") in plan.explore[:10].tolist()
    shown = [m for u in range(20) for m in ids(eng.recommend(f"b{u}", 10))]
    assert "m39" in shown
    assert eng.policy.exploration_slots(eng.catalog, 10) == 0
    eng.upsert_movies([Movie("new", genres=("Drama",))])
    assert eng.policy.exploration_slots(eng.catalog, 10) == 1


def test_a_user_who_reads_plans_down_gets_deeper_ones_until_they_act() -> None:
    from cinerec.engine.plans import PLAN_DEPTH, PLAN_DEPTH_MAX

    eng = served_engine(6000, 0.0, np.arange(5000), evidence_share=0.0)
    eng.apply_events([Event("u", "m5999", EventKind.LIKE)])
    shown = ids(eng.recommend("u", 10, explore=False))
    assert eng.refresh([None]) == 1  # the newcomers' plan (the fast path's last resort)
    asked: list[str | None] = []
    eng.on_stale = asked.append
    depths = []
    for _ in range(5):
        u = eng.user("u", create=False)
        assert u is not None and u.plan is not None
        depths.append(u.plan.depth)
        while not asked:  # read lists until the plan runs low and asks for a remake
            recs = eng.try_serve("u", 10, explore=False)
            assert recs is not None
            shown += ids(recs)
        assert eng.refresh(asked) == 1
        asked.clear()
    assert depths == [PLAN_DEPTH, 2 * PLAN_DEPTH, 4 * PLAN_DEPTH, PLAN_DEPTH_MAX, PLAN_DEPTH_MAX]
    assert len(shown) == len(set(shown))
    # Read in the source's order, however deep the plan (depth does not reorder).
    assert shown[: len(shown) // 2] == [f"m{i}" for i in range(len(shown) // 2)]
    # A like: the next plan is made for it, at the usual depth.
    eng.apply_events([Event("u", shown[-1], EventKind.LIKE)])
    eng.recommend("u", 10, explore=False)
    u = eng.user("u", create=False)
    assert u is not None and u.plan is not None and u.plan.depth == PLAN_DEPTH


def test_a_list_replayed_after_the_users_events_counts_their_likes_for_its_source() -> None:
    """At start-up the events are replayed before the rec log: a movie shown and then
    liked (or disliked) is already acted on when its list is replayed, and the source that
    showed it gets the credit (or the blame) then; a movie shown for the first time gets
    neither."""
    eng = make_engine(n=20, share=0.0)
    eng.apply_events([Event("u", "m1", EventKind.LIKE), Event("u", "m2", EventKind.DISLIKE)])
    eng.mark_shown("u", ["m1", "m2", "m3"], ["popular", "popular", "popular"])
    tally = eng.tallies["popular"]
    assert (tally.shown, tally.liked, tally.disliked) == (3, 1, 1)
    eng.mark_shown("u", ["m4"], ["popular"])
    assert (tally.shown, tally.liked, tally.disliked) == (4, 1, 1)
