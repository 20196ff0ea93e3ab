"""One contract suite, run against every store backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import time

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from cinerec.domain import (
    Account,
    Event,
    EventKind,
    Experiment,
    Feedback,
    Movie,
    RecLogEntry,
    User,
    Variant,
)
from cinerec.store import Store
from cinerec.store.sql import SqlStore
from cinerec.store.tables import index_kept_on, is_search_object, metadata


def test_migrations_build_the_schema_the_code_expects(store: Store) -> None:
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        # The title search objects are dialect-specific (an FTS5 table, an expression
        # index) and not in the portable metadata; test_title_search covers them.
        dialect = conn.dialect.name
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": lambda name, *_: not is_search_object(name),
                # an index of the metadata that the migrations build on other dialects only
                "include_object": lambda _obj, name, type_, *_: type_ != "index"
                or index_kept_on(name, dialect),
            },
        )
        diff = compare_metadata(context, metadata)
        indexes = {ix["name"] for ix in inspect(conn).get_indexes("rec_log")}
    # The user index of the recommendation log is PostgreSQL's only (migration 0008).
    assert ("ix_rec_log_user" in indexes) == (dialect == "postgresql")
    # Server defaults and JSON/boolean type spellings differ by dialect; tables, columns
    # and indexes must not.
    structural = [
        d
        for d in diff
        if d[0]
        in ("add_table", "remove_table", "add_column", "remove_column", "add_index", "remove_index")
    ]
    assert structural == []


def test_migrate_is_idempotent(store: Store) -> None:
    store.migrate()
    store.migrate()
    assert store.count_movies() == 0


def test_movies_upsert_get_and_hide(store: Store) -> None:
    m = Movie("tt1", "Heat", 1995, ["Crime", "Thriller"], 4.1, 12, created_at=100.0)
    assert store.upsert_movies([m, Movie("tt2", "Up", 2009, ["Animation"])]) == 2
    got = store.get_movie("tt1")
    assert got is not None
    assert (got.title, got.year, got.genres, got.rating_avg, got.rating_count) == (
        "Heat",
        1995,
        ["Crime", "Thriller"],
        4.1,
        12,
    )
    # upsert replaces
    store.upsert_movies([Movie("tt1", "Heat (director's cut)", 1995, ["Crime"], created_at=100.0)])
    got = store.get_movie("tt1")
    assert got is not None and got.title == "Heat (director's cut)" and got.genres == ["Crime"]
    assert store.count_movies() == 2
    assert set(store.get_movies(["tt1", "tt2", "nope"])) == {"tt1", "tt2"}
    assert store.set_movie_hidden("tt2", True) is True
    assert store.set_movie_hidden("nope", True) is False
    hidden = store.get_movie("tt2")
    assert hidden is not None and hidden.hidden
    assert [m.id for m in store.iter_movies()] == ["tt1", "tt2"]
    assert store.get_movie("nope") is None


def test_duplicate_ids_in_one_batch_last_wins(store: Store) -> None:
    store.upsert_movies([Movie("a", "first"), Movie("a", "second")])
    got = store.get_movie("a")
    assert got is not None and got.title == "second"


def test_large_batches_are_chunked(store: Store) -> None:
    n = 12_345
    store.upsert_movies([Movie(f"m{i}", f"t{i}", genres=["Drama"]) for i in range(n)])
    assert store.count_movies() == n
    events = [Event(f"u{i % 100}", f"m{i}", EventKind.LIKE, ts=float(i)) for i in range(n)]
    assert all(store.add_events(events))
    assert store.count_events() == n
    ids = [i for i, _ in store.iter_events(batch_size=1000)]
    assert ids == sorted(ids) and len(ids) == n


def test_users_and_favorite_genres(store: Store) -> None:
    store.upsert_users([User("u1", ["Drama"]), User("u2")])
    store.upsert_users([User("u1", ["Comedy", "Horror"])])
    u = store.get_user("u1")
    assert u is not None and u.favorite_genres == ["Comedy", "Horror"]
    assert {u.id for u in store.iter_users()} == {"u1", "u2"}
    assert store.get_user("nobody") is None


def test_events_round_trip_and_order(store: Store) -> None:
    evs = [
        Event("u1", "m1", EventKind.RATING, 4.5, ts=10.0),
        Event("u1", "m2", EventKind.VIEW, 0.4, ts=11.0),
        Event("u2", "m1", EventKind.NOT_INTERESTED, ts=12.0),
    ]
    assert store.add_events(evs) == [True, True, True]
    got = [e for _, e in store.iter_events()]
    assert got == evs
    assert store.user_events("u1") == evs[:2]
    last = store.last_event_id()
    assert [e for _, e in store.iter_events(after_id=last)] == []
    assert store.count_events() == 3


def test_retried_event_is_stored_once(store: Store) -> None:
    e = Event("u1", "m1", EventKind.LIKE, client_event_id="c-1")
    assert store.add_events([e]) == [True]
    assert store.add_events([e, Event("u1", "m2", EventKind.LIKE, client_event_id="c-2")]) == [
        False,
        True,
    ]
    # same client id from another user is a different event
    assert store.add_events([Event("u2", "m1", EventKind.LIKE, client_event_id="c-1")]) == [True]
    # repeated inside one batch
    dup = Event("u3", "m1", EventKind.LIKE, client_event_id="x")
    assert store.add_events([dup, dup]) == [True, False]
    assert store.count_events() == 4


def test_retries_are_found_among_many_users_and_ids(store: Store) -> None:
    """A batch of thousands of (user, client id) pairs: each stored pair is a retry and
    nothing else is, even when its user and its id each occur in other stored pairs."""
    first = [
        Event(f"u{i % 50}", "m1", EventKind.LIKE, client_event_id=f"c{i}")
        for i in range(0, 3000, 2)
    ]
    assert all(store.add_events(first))
    batch = [
        Event(f"u{i % 50}", "m2", EventKind.LIKE, client_event_id=f"c{i}") for i in range(3000)
    ]
    batch += [Event("u1", "m3", EventKind.LIKE, client_event_id="c0")]  # u1 never sent c0
    assert store.add_events(batch) == [i % 2 == 1 for i in range(3000)] + [True]
    assert store.count_events() == 1500 + 1500 + 1


def test_bulk_load_keeps_the_event_semantics(store: Store) -> None:
    store.add_events([Event("u1", "m1", EventKind.LIKE, ts=1.0, client_event_id="c-1")])
    rows = [
        ("u1", "m1", "like", None, 2.0, "c-1"),  # a retry of a stored event
        ("u1", "m2", "rating", 4.5, 3.0, "c-2"),
        ("u2", "not-yet", "view", 0.5, 4.0, None),  # unknown movie: kept
        ("u1", "m2", "rating", 4.5, 3.0, "c-2"),  # repeated in this load
        ("u2", "not-yet", "view", 0.5, 4.0, None),  # no client id: never a retry
    ]
    assert store.load_events(rows) == 3
    got = [e for _, e in store.iter_events()]
    assert got == [
        Event("u1", "m1", EventKind.LIKE, None, 1.0, "c-1"),
        Event("u1", "m2", EventKind.RATING, 4.5, 3.0, "c-2"),
        Event("u2", "not-yet", EventKind.VIEW, 0.5, 4.0),
        Event("u2", "not-yet", EventKind.VIEW, 0.5, 4.0),
    ]
    assert store.load_events([]) == 0


def test_bulk_load_without_client_ids_appends_in_order(store: Store) -> None:
    rows = [(f"u{i % 7}", f"m{i}", "like", None, float(i), None) for i in range(25_000)]
    assert store.load_events(rows) == 25_000
    ids = [i for i, _ in store.iter_events()]
    assert ids == sorted(ids)
    assert [e.ts for _, e in store.iter_events()] == [float(i) for i in range(25_000)]
    # the per-event path sees what the bulk path stored
    assert store.add_events([Event("u0", "m0", EventKind.LIKE, client_event_id="z")]) == [True]
    assert store.count_events() == 25_001


def test_events_for_unknown_movies_are_kept(store: Store) -> None:
    assert store.add_events([Event("u1", "not-yet", EventKind.LIKE)]) == [True]
    assert store.count_events() == 1


def test_rec_log_and_feedback(store: Store) -> None:
    now = time.time()
    entry = RecLogEntry("s1", "u1", ["m1", "m2"], ["popular", "explore"], "popular", "v1", now)
    store.log_recommendations([entry])
    assert store.get_rec_log("s1") == entry
    assert store.get_rec_log("missing") is None
    assert list(store.iter_rec_log()) == [entry]
    fb = Feedback("s1", "u1", "m2", True, now)
    store.add_feedback(fb)
    assert store.session_feedback("s1") == [fb]
    assert list(store.iter_feedback()) == [fb]


def test_a_users_lists_in_the_order_they_were_logged(store: Store) -> None:
    # (with the user index on PostgreSQL, by a scan of the log on SQLite: migration 0008)
    first = RecLogEntry("a", "u1", ["m1"], ["popular"], "popular", ts=1.0)
    other = RecLogEntry("b", "u2", ["m2"], ["popular"], "popular", ts=2.0)
    second = RecLogEntry("c", "u1", ["m3", "m4"], ["als", "explore"], "als", ts=3.0)
    store.log_recommendations([first, other])
    store.log_recommendations([second])
    assert store.user_rec_log("u1") == [first, second]
    assert store.user_rec_log("u2") == [other] and store.user_rec_log("nobody") == []


def test_purging_the_rec_log_keeps_the_newer_lists_and_their_feedback(store: Store) -> None:
    now = time.time()
    old = RecLogEntry("old", "u1", ["m1"], ["popular"], "popular", ts=now - 100)
    new = RecLogEntry("new", "u1", ["m2"], ["popular"], "popular", ts=now)
    store.log_recommendations([old, new])
    store.add_feedback(Feedback("old", "u1", "m1", True, now - 90))
    store.add_feedback(Feedback("new", "u1", "m2", True, now))
    assert store.purge_rec_log(now - 50) == 1
    assert list(store.iter_rec_log()) == [new] and store.get_rec_log("old") is None
    assert [f.session_id for f in store.iter_feedback()] == ["new"]
    assert store.purge_rec_log(now - 50) == 0


def test_revoked_tokens_are_remembered_until_they_expire(store: Store) -> None:
    now = time.time()
    store.revoke_token("a" * 32, now + 60)
    store.revoke_token("a" * 32, now + 60)  # idempotent
    store.revoke_token("b" * 32, now - 1)
    assert store.is_token_revoked("a" * 32) and not store.is_token_revoked("c" * 32)
    assert store.revoked_token_ids(now) == {"a" * 32}  # the expired one no longer counts
    assert store.purge_revoked_tokens(now) == 1
    assert store.is_token_revoked("a" * 32) and not store.is_token_revoked("b" * 32)


def test_wipe_removes_everything(store: Store) -> None:
    store.upsert_movies([Movie("m1")])
    store.upsert_users([User("u1")])
    store.add_events([Event("u1", "m1", EventKind.LIKE)])
    store.log_recommendations([RecLogEntry("s", "u1", ["m1"], ["popular"], "popular")])
    store.add_feedback(Feedback("s", "u1", "m1", True))
    store.wipe()
    assert store.count_movies() == 0 and store.count_events() == 0
    assert store.get_user("u1") is None and store.get_rec_log("s") is None
    assert list(store.iter_feedback()) == []


def test_ping(store: Store) -> None:
    store.ping()


def test_accounts_are_created_once_and_wiped(store: Store) -> None:
    assert store.get_account("alice") is None
    assert store.add_account(Account("alice", "$argon2id$hash-1", created_at=5.0)) is True
    # A second registration of the same id changes nothing (no account takeover).
    assert store.add_account(Account("alice", "$argon2id$hash-2", "admin")) is False
    got = store.get_account("alice")
    assert got is not None
    assert (got.password_hash, got.role, got.created_at) == ("$argon2id$hash-1", "user", 5.0)
    store.wipe()
    assert store.get_account("alice") is None


def test_experiments_are_saved_replaced_listed_and_wiped(store: Store) -> None:
    variants = [Variant("ranker", 0.25), Variant("pop", 0.75, "popular", False)]
    first = Experiment("e1", "ranker vs popular", "salt-1", variants, created_at=10.0)
    second = Experiment("e2", "later", "salt-2", variants, "ndcg_at_10", created_at=20.0)
    store.save_experiment(first)
    store.save_experiment(second)
    assert store.get_experiment("e1") == first
    assert store.get_experiment("missing") is None
    assert [e.id for e in store.list_experiments()] == ["e2", "e1"]  # newest first
    promoted = Experiment(
        "e1", first.name, "salt-1", variants, "like_rate", "promoted", "pop", 10.0, 30.0
    )
    store.save_experiment(promoted)  # replaces by id
    assert store.get_experiment("e1") == promoted
    assert len(store.list_experiments()) == 2
    store.wipe()
    assert store.list_experiments() == []


def test_logged_lists_carry_their_experiment_and_variant(store: Store) -> None:
    now = time.time()
    inside = RecLogEntry(
        "s1", "u1", ["m1"], ["popular"], "popular", None, now, experiment="e1", variant="pop"
    )
    other = RecLogEntry("s2", "u2", ["m2"], ["als"], "als", None, now, "e2", "ranker")
    outside = RecLogEntry("s3", "u1", ["m3"], ["als"], "als", None, now)
    store.log_recommendations([inside, other, outside])
    assert store.get_rec_log("s1") == inside
    assert store.get_rec_log("s3") == outside and outside.experiment is None
    assert list(store.iter_experiment_log("e1")) == [inside]
    assert list(store.iter_experiment_log("none")) == []


def test_title_search(store: Store) -> None:
    store.upsert_movies(
        [
            Movie("1", "Heat (1995)", genres=["Crime"]),
            Movie("2", "The Heat (2013)", genres=["Comedy"]),
            Movie("3", "Some Like It Hot (1959)", genres=["Comedy"]),
            Movie("4", "Amélie (2001)", genres=["Romance"]),
            Movie("5", "Heathers (1989)", genres=["Comedy"]),
            Movie("6", "Alien (1979)", genres=["Sci-Fi"]),
        ]
    )
    assert {m.id for m in store.search_movies("heat")} == {"1", "2", "5"}  # prefix: Heathers
    assert [m.id for m in store.search_movies("the heat")] == ["2"]
    assert [m.title for m in store.search_movies("ALIEN")] == ["Alien (1979)"]
    assert [m.id for m in store.search_movies("amélie")] == ["4"]
    assert [m.id for m in store.search_movies("1959")] == ["3"]
    assert store.search_movies("   ") == [] and store.search_movies('"*:&|!()') == []
    assert store.search_movies("heat alien") == []
    assert len(store.search_movies("heat", limit=2)) == 2
    # The index follows renames, hiding and deletion.
    store.upsert_movies([Movie("6", "Aliens (1986)", genres=["Sci-Fi"])])
    assert [m.title for m in store.search_movies("aliens")] == ["Aliens (1986)"]
    assert store.search_movies("1979") == []
    store.set_movie_hidden("1", True)
    assert {m.id for m in store.search_movies("heat")} == {"2", "5"}
    store.wipe()
    assert store.search_movies("heat") == []
    store.upsert_movies([Movie("7", "Heat (1995)")])
    assert [m.id for m in store.search_movies("heat")] == ["7"]
