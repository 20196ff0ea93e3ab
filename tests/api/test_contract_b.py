"""Contract B (SPEC.md): the cinema API under /api/recommend/v1, in process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from cinerec.api.main import create_app
from cinerec.domain import Movie, RecLogEntry
from cinerec.service import RecService
from cinerec.store.sqlite import SqliteStore

from .conftest import ADMIN, JWT_SECRET, AddItems, api_settings, genre_of

B = "/api/recommend/v1"


def cinema_recs(client: TestClient, user: str, **params: object) -> dict:
    r = client.get(f"{B}/recommendations/{user}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def rated(client: TestClient) -> None:
    """Six movies with catalogue ratings: Drama d1 > d2 > d3, Comedy c1 > c2, Horror h1."""
    movies = [
        ("d1", "Drama", 4.8),
        ("d2", "Drama", 4.0),
        ("d3", "Drama", 2.0),
        ("c1", "Comedy", 4.9),
        ("c2", "Comedy", 3.0),
        ("h1", "Horror", 4.5),
    ]
    body = {
        "movies": [
            {"id": i, "title": i, "genres": [g], "rating_avg": a, "rating_count": 500}
            for i, g, a in movies
        ]
    }
    assert client.post("/api/v1/movies/batch", json=body).status_code == 200


# -- recommendations and the recommendation log --------------------------------------------
def test_recommendations_are_logged_with_their_session(
    client: TestClient, svc: RecService, add_items: AddItems
) -> None:
    catalogue = set(add_items(40))
    body = cinema_recs(client, "u1")
    # SPEC's three fields, and (issue #13, additive) a reason per movie in the same order
    assert set(body) == {"source", "recommendations", "session_id", "reasons"}
    assert len(body["recommendations"]) == len(body["reasons"]) == 10
    assert set(body["recommendations"]) <= catalogue
    assert body["source"] in {
        "item_to_item",
        "like_rate",
        "popular",
        "top_rated",
        "newest",
        "genre_top",
        "explore",
    }
    svc.rec_log.flush()
    entry = svc.store.get_rec_log(body["session_id"])
    assert entry is not None
    assert entry.user_id == "u1"
    assert entry.movie_ids == body["recommendations"]
    assert entry.source == body["source"]


def test_every_answer_has_a_new_session_and_no_repeats(
    client: TestClient, add_items: AddItems
) -> None:
    add_items(40)
    first, second = cinema_recs(client, "u1"), cinema_recs(client, "u1")
    assert first["session_id"] != second["session_id"]
    assert not set(first["recommendations"]) & set(second["recommendations"])


def test_unavailable_model_falls_back_and_available_one_is_used(
    client: TestClient, rated: None
) -> None:
    fallback = cinema_recs(client, "u1", model="als")
    assert fallback["source"] != "als"
    assert len(fallback["recommendations"]) == 6
    forced = cinema_recs(client, "u2", model="top_rated", k=5)
    assert forced["source"] == "top_rated"
    # best rated first; the last slot is exploration
    assert forced["recommendations"][:4] == ["c1", "d1", "h1", "d2"]


def test_k_bounds(client: TestClient, add_items: AddItems) -> None:
    add_items(30)
    assert len(cinema_recs(client, "u", k=3)["recommendations"]) == 3
    for bad in (0, 101, "x"):
        r = client.get(f"{B}/recommendations/u", params={"k": bad})
        assert r.status_code == 422
        assert r.json()["detail"].startswith("query.k:")


def test_favourite_genres_give_a_new_user_genre_matched_recommendations(
    client: TestClient, add_items: AddItems
) -> None:
    add_items(160)  # 20 movies in each of 8 genres
    r = client.post(f"{B}/favorites/genres/newbie", json=["Western"])
    assert r.json() == {"status": "success"}
    recs = cinema_recs(client, "newbie")["recommendations"]
    westerns = [m for m in recs if genre_of(int(m[1:])) == "Western"]
    assert len(westerns) >= 5, recs  # 1 in 8 by chance


# -- feedback ------------------------------------------------------------------------------
def test_feedback_as_json_body_is_stored_against_the_session(
    client: TestClient, svc: RecService, add_items: AddItems
) -> None:
    add_items(20)
    rec = cinema_recs(client, "u1")
    movie = rec["recommendations"][2]
    r = client.post(f"{B}/feedback/{rec['session_id']}", json={"movie_id": movie, "liked": True})
    assert r.status_code == 200
    assert r.json() == {"status": "success"}
    [fb] = svc.store.session_feedback(rec["session_id"])
    assert (fb.user_id, fb.movie_id, fb.liked) == ("u1", movie, True)
    # also a like of the session's user, which the engine has taken in
    assert [(e.movie_id, e.kind.value) for e in svc.store.user_events("u1")] == [(movie, "like")]


def test_feedback_as_query_parameters_is_stored(
    client: TestClient, svc: RecService, add_items: AddItems
) -> None:
    add_items(20)
    rec = cinema_recs(client, "u1")
    movie = rec["recommendations"][0]
    r = client.post(
        f"{B}/feedback/{rec['session_id']}", params={"movie_id": movie, "liked": "false"}
    )
    assert r.json() == {"status": "success"}
    [fb] = svc.store.session_feedback(rec["session_id"])
    assert (fb.movie_id, fb.liked) == (movie, False)
    assert [e.kind.value for e in svc.store.user_events("u1")] == ["dislike"]


def test_repeated_feedback_is_one_event(
    client: TestClient, svc: RecService, add_items: AddItems
) -> None:
    add_items(20)
    rec = cinema_recs(client, "u1")
    for _ in range(3):
        body = {"movie_id": rec["recommendations"][0], "liked": True}
        assert client.post(f"{B}/feedback/{rec['session_id']}", json=body).status_code == 200
    assert len(svc.store.user_events("u1")) == 1


def test_feedback_on_an_unknown_session_is_a_404(client: TestClient) -> None:
    r = client.post(f"{B}/feedback/no-such-session", json={"movie_id": "m1", "liked": True})
    assert r.status_code == 404
    assert "no-such-session" in r.json()["detail"]


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({}, "as query parameters"),
        ({"params": {"movie_id": "m1"}}, "as query parameters"),
        ({"json": {"movie_id": "m1"}}, "liked: Field required"),
        ({"json": {"movie_id": "m1", "liked": "maybe"}}, "liked"),
        ({"json": {"movie_id": "", "liked": True}}, "movie_id"),
    ],
)
def test_feedback_rejects(
    client: TestClient, svc: RecService, add_items: AddItems, kwargs: dict, hint: str
) -> None:
    add_items(12)
    session = cinema_recs(client, "u1")["session_id"]
    r = client.post(f"{B}/feedback/{session}", **kwargs)
    assert r.status_code == 422
    assert hint in r.json()["detail"]
    assert svc.store.session_feedback(session) == []


class PickyStore(SqliteStore):
    """Refuses the log entries of user "refused" (as PostgreSQL refuses a user id longer than
    its column) and holds every write until ``gate`` opens, so answers queue up in one batch."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.migrate()
        self.gate = threading.Event()

    def log_recommendations(self, entries: Iterable[RecLogEntry]) -> None:
        entries = list(entries)
        self.gate.wait(timeout=10)
        if any(e.user_id == "refused" for e in entries):
            raise ValueError("value too long for type character varying(128)")
        super().log_recommendations(entries)


def test_an_unloggable_answer_does_not_lose_the_others_logs(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = PickyStore(f"sqlite:///{tmp_path / 'picky.db'}")
    svc = RecService(api_settings(database_url=store.url), store=store)
    svc.add_movies([Movie(f"m{i}") for i in range(30)])
    with TestClient(create_app(svc), headers=ADMIN) as client, ThreadPoolExecutor(3) as pool:
        users = ("a", "refused", "b")
        answers = [pool.submit(client.get, f"{B}/recommendations/{u}") for u in users]
        while svc.rec_log.q.unfinished_tasks < 3:  # every answer waits for its log entry
            time.sleep(0.01)
        store.gate.set()
        got = dict(zip(users, (a.result() for a in answers), strict=True))
        # The list that could not be stored is not given out: 503, retry later.
        assert got["refused"].status_code == 503
        assert got["refused"].headers["Retry-After"]
        for user in ("a", "b"):
            got_list = got[user].json()
            r = client.post(
                f"{B}/feedback/{got_list['session_id']}",
                json={"movie_id": got_list["recommendations"][0], "liked": True},
            )
            assert r.status_code == 200, r.text
    svc.close()


# -- genres_top and favourite genres -------------------------------------------------------
def test_genres_top_overall_is_ordered_by_rating(client: TestClient, rated: None) -> None:
    r = client.get(f"{B}/recommendations/genres_top", params={"limit": 4})
    assert r.json() == {"movies": ["c1", "d1", "h1", "d2"]}


def test_genres_top_of_a_user_keeps_to_the_favourite_genres(
    client: TestClient, rated: None
) -> None:
    assert client.post(f"{B}/favorites/genres/u1", json=["Drama", "Horror"]).status_code == 200
    r = client.get(f"{B}/recommendations/genres_top/u1", params={"limit": 3})
    assert r.json() == {"movies": ["d1", "h1", "d2"]}
    # favourites can change; the cached answer must not outlive them
    client.post(f"{B}/favorites/genres/u1", json=["Comedy"])
    r = client.get(f"{B}/recommendations/genres_top/u1", params={"limit": 3})
    assert r.json() == {"movies": ["c1", "c2"]}


def test_genres_top_of_a_user_without_favourites_is_the_overall_top(
    client: TestClient, rated: None
) -> None:
    overall = client.get(f"{B}/recommendations/genres_top").json()
    assert len(overall["movies"]) == 6
    assert client.get(f"{B}/recommendations/genres_top/stranger").json() == overall


def test_genres_top_does_not_consume_recommendations(client: TestClient, rated: None) -> None:
    first = client.get(f"{B}/recommendations/genres_top/u1").json()
    assert client.get(f"{B}/recommendations/genres_top/u1").json() == first


@pytest.mark.parametrize("limit", [0, 1001, "ten"])
def test_genres_top_limit_is_checked(client: TestClient, limit: object) -> None:
    for path in ("genres_top", "genres_top/u1"):
        r = client.get(f"{B}/recommendations/{path}", params={"limit": limit})
        assert r.status_code == 422
        assert r.json()["detail"].startswith("query.limit:")


def test_favourite_genres_are_stored(client: TestClient, svc: RecService) -> None:
    r = client.post(f"{B}/favorites/genres/u1", json=["Drama", " Comedy ", "Drama"])
    assert r.json() == {"status": "success"}
    user = svc.store.get_user("u1")
    assert user is not None
    assert user.favorite_genres == ["Drama", "Comedy"]


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        (["a", "b", "c", "d"], "at most 3"),
        ({"genres": ["a"]}, "list"),
        ([""], "at least 1 character"),
        ("Drama", "list"),
    ],
)
def test_favourite_genres_reject(
    client: TestClient, svc: RecService, body: object, hint: str
) -> None:
    r = client.post(f"{B}/favorites/genres/u1", json=body)
    assert r.status_code == 422
    assert hint in r.json()["detail"]
    assert svc.store.get_user("u1") is None


# -- headers -------------------------------------------------------------------------------
def test_seed_000_bearer_token_and_request_id_are_accepted(
    client: TestClient, add_items: AddItems
) -> None:
    """Seed 000's tokens: HS256 with the shared secret, the user id in the ``id`` claim."""
    add_items(12)
    token = jwt.encode({"id": "u1", "exp": time.time() + 60}, JWT_SECRET, algorithm="HS256")
    r = client.get(
        f"{B}/recommendations/u1",
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": "req-123"},
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "req-123"
    # the same token on another user's list, and a token that is not one
    assert (
        client.get(
            f"{B}/recommendations/u2", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 403
    )
    assert (
        client.get(f"{B}/recommendations/u1", headers={"Authorization": "Bearer a.b.c"}).status_code
        == 401
    )
