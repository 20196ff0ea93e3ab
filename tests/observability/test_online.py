"""Online Precision@K / Recall@K from the recommendation log (docs/observability.md)."""

from __future__ import annotations

import math
import time

import pytest

from cinerec.domain import Event, EventKind, Feedback, RecLogEntry
from cinerec.observability.online import (
    ALL,
    OnlineMonitor,
    Reaction,
    aggregate,
    aggregate_slots,
    reactions_from_events,
    score_lists,
    series,
)
from cinerec.store import Store


def entry(
    sid: str, user: str, movies: list[str], ts: float, source: str = "als", sources=None
) -> RecLogEntry:
    return RecLogEntry(sid, user, movies, sources or [source] * len(movies), source, ts=ts)


def like(user: str, movie: str, ts: float, liked: bool = True) -> Reaction:
    return Reaction(user, movie, ts, liked)


def test_hits_precision_and_recall_follow_the_definitions() -> None:
    lists = [entry("s1", "u", ["a", "b", "c", "d", "e"], 100.0)]
    reacts = [like("u", "a", 110), like("u", "d", 120), like("u", "x", 130)]
    [s] = score_lists(lists, reacts, [], ks=(3, 10), attribution_s=3600)
    assert s.hits == {3: 1, 10: 2}
    assert s.n_relevant == 3  # a, d and x (liked elsewhere) are what the user wanted next
    assert s.precision(3) == pytest.approx(1 / 3)
    assert s.precision(10) == pytest.approx(2 / 5)  # a list shorter than K: divide by its length
    assert s.recall(3) == pytest.approx(1 / 3)
    assert s.recall(10) == pytest.approx(2 / 3)


def test_attribution_window_and_the_last_reaction_decide() -> None:
    lists = [entry("s1", "u", ["a", "b", "c"], 100.0)]
    reacts = [
        like("u", "a", 50),  # before the list: not caused by it
        like("u", "b", 100 + 3601),  # after the window
        like("u", "c", 150),
        like("u", "c", 160, liked=False),  # changed their mind: the last reaction wins
    ]
    [s] = score_lists(lists, reacts, [], ks=(3,), attribution_s=3600)
    assert s.hits[3] == 0 and s.n_relevant == 0 and s.recall(3) is None


def test_a_like_belongs_to_the_list_that_showed_the_movie() -> None:
    lists = [entry("s1", "u", ["a", "b", "c"], 100.0), entry("s2", "u", ["d", "e", "f"], 200.0)]
    reacts = [like("u", "a", 250), like("u", "e", 260)]
    first, second = score_lists(lists, reacts, [], ks=(3,), attribution_s=3600)
    assert (first.hits[3], first.n_relevant) == (1, 2)  # e was still to come after s1
    assert (second.hits[3], second.n_relevant) == (1, 1)  # a was shown by s1, not s2


def test_session_feedback_counts_whatever_its_time_and_users_are_apart() -> None:
    lists = [entry("s1", "u", ["a", "b", "c"], 100.0), entry("s2", "v", ["a", "b", "c"], 100.0)]
    fb = [Feedback("s1", "u", "b", True, ts=100_000.0), Feedback("s1", "u", "c", False, ts=101.0)]
    reacts = [like("u", "c", 120)]
    scores = {s.session_id: s for s in score_lists(lists, reacts, fb, ks=(3,))}
    assert scores["s1"].hits[3] == 1  # b by feedback; c withdrawn by the disliked feedback
    assert scores["s2"].hits[3] == 0  # another user's likes do not count


def test_groups_by_list_source_and_slots_by_slot_source() -> None:
    lists = [
        entry("s1", "u", ["a", "b", "c"], 100.0, "als", ["als", "als", "popular"]),
        entry("s2", "v", ["a", "b", "c"], 100.0, "lightfm"),
        entry("s3", "w", ["a", "b", "c"], 100.0, "lightfm"),
    ]
    reacts = [like("u", "c", 110), like("v", "a", 110), like("v", "b", 111)]
    scores = score_lists(lists, reacts, [], ks=(3,))
    groups = aggregate(scores, ks=(3,))
    assert groups["als"].precision[3] == pytest.approx(1 / 3)
    assert groups["lightfm"].lists == 2 and groups["lightfm"].lists_with_likes == 1
    assert groups["lightfm"].precision[3] == pytest.approx((2 / 3 + 0) / 2)
    assert groups["lightfm"].recall[3] == pytest.approx(1.0)  # over lists with a like only
    assert groups[ALL].lists == 3 and groups[ALL].precision[3] == pytest.approx(1 / 3)
    slots = aggregate_slots(scores, ks=(3,))
    assert slots["popular"].precision(3) == 1.0 and slots["als"].precision(3) == 0.0
    assert slots["lightfm"].shown[3] == 6 and slots["lightfm"].hits[3] == 2


def test_series_buckets_by_the_time_of_the_list() -> None:
    lists = [entry("s1", "u", ["a"], 10.0), entry("s2", "v", ["a"], 70.0)]
    scores = score_lists(lists, [like("v", "a", 71)], [], ks=(3,))
    out = series(scores, 60.0, ks=(3,))
    assert [t for t, _ in out] == [0.0, 60.0]
    assert [g[ALL].precision[3] for _, g in out] == [0.0, 1.0]


def test_ratings_and_likes_become_reactions_other_kinds_do_not() -> None:
    events = [
        Event("u", "a", EventKind.LIKE, ts=1),
        Event("u", "b", EventKind.RATING, 4.0, ts=2),
        Event("u", "c", EventKind.RATING, 1.5, ts=3),
        Event("u", "d", EventKind.RATING, 3.0, ts=4),  # neutral
        Event("u", "e", EventKind.VIEW, 1.0, ts=5),
        Event("u", "f", EventKind.DISLIKE, ts=6),
    ]
    got = [(r.movie_id, r.liked) for r in reactions_from_events(events)]
    assert got == [("a", True), ("b", True), ("c", False), ("f", False)]


def test_store_windows_match_the_unfiltered_iterators(store: Store) -> None:
    store.log_recommendations(
        [entry("old", "u", ["a"], 10.0), entry("new", "u", ["b"], 1000.0, "popular")]
    )
    store.add_feedback(Feedback("old", "u", "a", True, ts=20.0))
    store.add_feedback(Feedback("new", "u", "b", False, ts=1001.0))
    store.add_events(
        [
            Event("u", "a", EventKind.LIKE, ts=15.0),
            Event("u", "b", EventKind.DISLIKE, ts=1002.0),
            Event("u", "c", EventKind.VIEW, 1.0, ts=1003.0),
        ]
    )
    assert [e.session_id for e in store.iter_rec_log_since(500.0)] == ["new"]
    assert [f.session_id for f in store.iter_feedback_since(500.0)] == ["new"]
    got = [e.movie_id for e in store.iter_events_since(500.0, (EventKind.DISLIKE,))]
    assert got == ["b"]
    assert [e.movie_id for e in store.iter_events_since(500.0)] == ["b", "c"]
    # the backend's queries agree with the interface's reference implementations
    for ts in (0.0, 500.0, 2000.0):
        assert list(store.iter_rec_log_since(ts)) == list(Store.iter_rec_log_since(store, ts))
        assert list(store.iter_feedback_since(ts)) == list(Store.iter_feedback_since(store, ts))
        assert list(store.iter_events_since(ts)) == list(Store.iter_events_since(store, ts))


def test_monitor_reads_the_window_and_refreshes_in_the_background(store: Store) -> None:
    now = time.time()
    store.log_recommendations(
        [
            entry("s-old", "u", ["x", "y", "z"], now - 10_000),  # outside the window
            entry("s1", "u", ["a", "b", "c"], now - 100, "lightfm"),
        ]
    )
    store.add_events(
        [
            Event("u", "x", EventKind.LIKE, ts=now - 9_990),
            Event("u", "b", EventKind.LIKE, ts=now - 90),
        ]
    )
    mon = OnlineMonitor(store, window_s=1000, attribution_s=600, refresh_s=3600)
    assert mon.summary is None
    mon.maybe_refresh()
    deadline = time.time() + 10
    while mon.summary is None and time.time() < deadline:
        time.sleep(0.01)
    s = mon.summary
    assert s is not None
    assert set(s.groups) == {"lightfm", ALL} and s.groups[ALL].lists == 1
    assert s.groups["lightfm"].precision[3] == pytest.approx(1 / 3)
    assert s.groups["lightfm"].recall[10] == 1.0
    mon.maybe_refresh()  # fresh: nothing recomputed
    assert mon.summary is s
    assert not math.isnan(s.seconds)
