"""Our own API under /api/v1 (movies, users, events, recommendations, health) and the
X-Request-Id middleware, in process."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from cinerec.api.main import create_app
from cinerec.service import RecService
from cinerec.store import Store

from .conftest import ADMIN, AddItems, api_settings, genre_of

V1 = "/api/v1"


def recommend(client: TestClient, user: str, **params: object) -> list[dict]:
    r = client.get(f"{V1}/recommendations/{user}", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def ids(items: list[dict]) -> list[str]:
    return [i["movie_id"] for i in items]


def event(user: str, movie: str, kind: str = "like", **extra: object) -> dict:
    return {"user_id": user, "movie_id": movie, "kind": kind, **extra}


def post_event(client: TestClient, body: dict) -> dict:
    r = client.post(f"{V1}/events", json=body)
    assert r.status_code == 200, r.text
    return r.json()


# -- movies --------------------------------------------------------------------------------
def test_movie_round_trip(client: TestClient) -> None:
    movie = {
        "id": "tt1",
        "title": "Heat",
        "year": 1995,
        "genres": ["Action", "Crime"],
        "rating_avg": 4.1,
        "rating_count": 10,
    }
    assert client.post(f"{V1}/movies", json=movie).json() == {"status": "ok"}
    got = client.get(f"{V1}/movies/tt1").json()
    assert {k: got[k] for k in movie} == movie
    assert got["hidden"] is False
    assert got["created_at"] > 0


def test_movie_batch_and_health_counts(client: TestClient) -> None:
    body = {"movies": [{"id": f"b{i}", "genres": ["Drama"]} for i in range(25)]}
    assert client.post(f"{V1}/movies/batch", json=body).status_code == 200
    health = client.get(f"{V1}/health").json()
    assert health["status"] == "ok"
    assert health["checks"]["database"]["status"] == "ok"
    assert (health["movies"], health["events"]) == (25, 0)


def test_unknown_movie_is_a_404(client: TestClient) -> None:
    for method, path in (
        ("GET", "/movies/nope"),
        ("GET", "/movies/nope/similar"),
        ("PUT", "/movies/nope/hidden?hidden=true"),
    ):
        r = client.request(method, V1 + path)
        assert r.status_code == 404, path
        assert r.json() == {"detail": "movie 'nope' does not exist"}


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        ({"id": "x", "year": 1066}, "year"),
        ({"id": "x", "rating_avg": 11}, "rating_avg"),
        ({"id": "x", "rating_count": -1}, "rating_count"),
        ({"id": "x", "rating_count": 2**63}, "rating_count"),  # was a 500 (integer overflow)
        ({"id": "  "}, "id"),
        ({"title": "no id"}, "id: Field required"),
        ({"id": "x", "genres": "Drama"}, "genres"),
    ],
)
def test_movie_rejects(client: TestClient, body: dict, hint: str) -> None:
    r = client.post(f"{V1}/movies", json=body)
    assert r.status_code == 422
    assert hint in r.json()["detail"]


def test_values_the_database_refuses_are_a_422_not_a_500(store: Store) -> None:
    """PostgreSQL refuses NUL characters in text (SQLite stores them): a client error."""
    svc = RecService(api_settings(database_url=store.url), store=store)
    with TestClient(create_app(svc), headers=ADMIN) as client:
        title = client.post(f"{V1}/movies", json={"id": "x", "title": "a\x00b"})
        user = client.get(f"{V1}/users/a%00b")
        like = client.post(f"{V1}/events", json=event("u\x00", "x"))
    svc.rec_log.close()
    if store.url.startswith("sqlite"):
        assert (title.status_code, user.status_code, like.status_code) == (200, 404, 200)
        return
    for r in (title, user, like):
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith("a value cannot be stored: ")
        assert "NUL" in r.json()["detail"]


def test_movie_batch_size_is_bounded(client: TestClient) -> None:
    r = client.post(f"{V1}/movies/batch", json={"movies": []})
    assert r.status_code == 422
    r = client.post(f"{V1}/movies/batch", json={"movies": [{"id": str(i)} for i in range(10_001)]})
    assert r.status_code == 422
    assert "at most 10000" in r.json()["detail"]
    assert client.get(f"{V1}/health").json()["movies"] == 0


def test_hidden_movie_is_never_shown(client: TestClient, add_items: AddItems) -> None:
    add_items(40)
    assert client.put(f"{V1}/movies/m7/hidden", params={"hidden": True}).status_code == 200
    assert client.get(f"{V1}/movies/m7").json()["hidden"] is True
    shown: list[str] = []
    for _ in range(6):  # past the end of the catalogue, into re-shows
        shown += ids(recommend(client, "u"))
    assert len(set(shown)) == 39
    assert "m7" not in shown
    assert "m7" not in client.get("/api/recommend/v1/recommendations/genres_top?limit=100").text
    assert "m7" not in ids(client.get(f"{V1}/movies/m0/similar?k=100").json())

    client.put(f"{V1}/movies/m7/hidden", params={"hidden": False})
    assert "m7" in ids(recommend(client, "fresh", k=40))


def test_similar_movies_share_genres(client: TestClient, add_items: AddItems) -> None:
    add_items(40)
    r = client.get(f"{V1}/movies/m3/similar", params={"k": 4})
    assert r.status_code == 200
    similar = r.json()
    assert len(similar) == 4
    assert "m3" not in ids(similar)
    assert all(s["genres"] == [genre_of(3)] for s in similar)
    assert client.get(f"{V1}/movies/m3/similar", params={"k": 0}).status_code == 422


# -- users ---------------------------------------------------------------------------------
def test_user_round_trip_and_favourite_genres(client: TestClient) -> None:
    assert client.post(f"{V1}/users", json={"id": "u1", "favorite_genres": ["Drama"]}).is_success
    assert client.get(f"{V1}/users/u1").json()["favorite_genres"] == ["Drama"]
    r = client.put(f"{V1}/users/u1/favorite-genres", json={"genres": ["Comedy", "Comedy"]})
    assert r.json() == {"genres": ["Comedy"]}
    assert client.get(f"{V1}/users/u1").json()["favorite_genres"] == ["Comedy"]
    body = {"users": [{"id": "a"}, {"id": "b", "favorite_genres": ["Horror"]}]}
    assert client.post(f"{V1}/users/batch", json=body).is_success
    assert client.get(f"{V1}/users/b").json()["favorite_genres"] == ["Horror"]


def test_unknown_user_is_a_404(client: TestClient) -> None:
    r = client.get(f"{V1}/users/ghost")
    assert r.status_code == 404
    assert r.json() == {"detail": "user 'ghost' does not exist"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/users", {"id": "u1", "favorite_genres": ["a", "b", "c", "d"]}),
        ("PUT", "/users/u1/favorite-genres", {"genres": ["a", "b", "c", "d"]}),
        ("POST", "/users/batch", {"users": [{"id": "u1", "favorite_genres": list("abcd")}]}),
    ],
)
def test_more_than_three_favourite_genres_is_a_422(
    client: TestClient, method: str, path: str, body: dict
) -> None:
    r = client.request(method, V1 + path, json=body)
    assert r.status_code == 422
    assert "at most 3" in r.json()["detail"]
    assert client.get(f"{V1}/users/u1").status_code == 404


def test_favourite_genres_give_a_new_user_genre_matched_recommendations(
    client: TestClient, add_items: AddItems
) -> None:
    add_items(160)
    client.put(f"{V1}/users/new/favorite-genres", json={"genres": ["Horror", "Western"]})
    items = recommend(client, "new", explore=False)
    matched = [i for i in items if set(i["genres"]) & {"Horror", "Western"}]
    assert len(matched) >= 6, items  # 1 in 4 by chance
    assert all(i in matched for i in items if i["source"] == "genre_top")


# -- events --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "hint"),
    [
        (event("u", "m1", "rating"), "a rating event needs a value between 0.0 and 5.0"),
        (event("u", "m1", "rating", value=5.5), "rating value must be between 0.0 and 5.0"),
        (event("u", "m1", "rating", value=-1), "rating value must be between 0.0 and 5.0"),
        (event("u", "m1", "view", value=2), "view value must be between 0.0 and 1.0"),
        (event("u", "m1", "like", value=1), "a like event takes no value"),
        (event("u", "m1", "watch"), "kind: Input should be 'like', 'dislike'"),
        (event("u", "m1", timestamp=1.7e12), "not milliseconds"),
        (event("u", ""), "movie_id"),
        ({"user_id": "u", "kind": "like"}, "movie_id: Field required"),
    ],
)
def test_event_rejects(client: TestClient, svc: RecService, body: dict, hint: str) -> None:
    r = client.post(f"{V1}/events", json=body)
    assert r.status_code == 422
    assert hint in r.json()["detail"]
    assert svc.store.count_events() == 0


def test_events_of_every_kind_are_stored(
    client: TestClient, svc: RecService, add_items: AddItems
) -> None:
    add_items(10)
    batch = [
        event("u", "m1", "like"),
        event("u", "m2", "dislike"),
        event("u", "m3", "rating", value=4.5),
        event("u", "m4", "view", value=0.3),
        event("u", "m5", "bookmark", timestamp=1.7e9),
    ]
    r = client.post(f"{V1}/events/batch", json={"events": batch})
    assert r.json() == {"accepted": 5, "duplicates": 0, "unknown_movies": []}
    stored = svc.store.user_events("u")
    assert [(e.movie_id, e.kind.value, e.value) for e in stored] == [
        ("m1", "like", None),
        ("m2", "dislike", None),
        ("m3", "rating", 4.5),
        ("m4", "view", 0.3),
        ("m5", "bookmark", None),
    ]
    assert stored[-1].ts == 1.7e9
    # none of them is recommended back to the user
    assert not {"m1", "m2", "m3", "m4", "m5"} & set(ids(recommend(client, "u", k=10)))


def test_a_retried_event_is_stored_once(client: TestClient, svc: RecService) -> None:
    body = event("u", "m1", client_event_id="c-1")
    assert post_event(client, body) == {"accepted": 1, "duplicates": 0, "unknown_movies": ["m1"]}
    assert post_event(client, body) == {"accepted": 0, "duplicates": 1, "unknown_movies": []}
    twice = {"events": [event("u", "m2", client_event_id="c-2")] * 2 + [body]}
    r = client.post(f"{V1}/events/batch", json=twice)
    assert (r.json()["accepted"], r.json()["duplicates"]) == (1, 2)
    assert sorted(e.client_event_id or "" for e in svc.store.user_events("u")) == ["c-1", "c-2"]
    # the same client id of another user is another event
    assert post_event(client, event("v", "m1", client_event_id="c-1"))["accepted"] == 1


def test_event_batch_is_bounded_and_all_or_nothing(client: TestClient, svc: RecService) -> None:
    r = client.post(f"{V1}/events/batch", json={"events": [event("u", "m")] * 10_001})
    assert r.status_code == 422
    assert "at most 10000" in r.json()["detail"]
    r = client.post(
        f"{V1}/events/batch", json={"events": [event("u", "m1"), event("u", "m2", "rating")]}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "events.1"
    assert svc.store.count_events() == 0


def test_event_for_an_unknown_movie_is_kept_and_ignored_until_the_movie_is_added(
    client: TestClient, svc: RecService, add_items: AddItems
) -> None:
    add_items(30)
    for user in ("a", "b", "c"):  # a very popular movie the catalogue does not have yet
        r = post_event(client, event(user, "future"))
        assert r["unknown_movies"] == ["future"]
    assert len(svc.store.user_events("a")) == 1
    seen: list[str] = []
    for _ in range(4):
        seen += ids(recommend(client, "watcher"))
    assert "future" not in seen
    assert client.get(f"{V1}/health").json()["movies"] == 30

    assert client.post(f"{V1}/movies", json={"id": "future", "genres": ["Drama"]}).is_success
    first = recommend(client, "newcomer")
    assert first[0]["movie_id"] == "future"
    assert first[0]["source"] in {"item_to_item", "popular", "like_rate", "newest"}


def test_not_interested_is_never_recommended(client: TestClient, add_items: AddItems) -> None:
    add_items(25)
    r = client.post(f"{V1}/users/u/not-interested", json={"movie_id": "m4"})
    assert r.json()["accepted"] == 1
    shown: list[str] = []
    for _ in range(4):  # through the whole catalogue and into re-shows
        shown += ids(recommend(client, "u"))
    assert "m4" not in shown
    assert len(set(shown)) == 24


# -- recommendations -----------------------------------------------------------------------
def test_recommendations_carry_titles_genres_and_sources(
    client: TestClient, add_items: AddItems
) -> None:
    add_items(30)
    r = client.get(f"{V1}/recommendations/u")
    body = r.json()
    assert (body["user_id"], len(body["items"])) == ("u", 10)
    assert re.fullmatch(r"[0-9a-f]{32}", body["session_id"])
    for item in body["items"]:
        assert item["title"] == item["movie_id"]
        assert item["genres"] == [genre_of(int(item["movie_id"][1:]))]
        assert item["source"] in {
            "item_to_item",
            "like_rate",
            "popular",
            "top_rated",
            "newest",
            "genre_top",
            "explore",
        }


def test_exactly_ten_while_ten_are_unseen(client: TestClient, add_items: AddItems) -> None:
    add_items(57)
    shown: list[str] = []
    for _ in range(5):
        got = ids(recommend(client, "u"))
        assert len(got) == 10
        shown += got
    assert len(set(shown)) == 50
    assert len(ids(recommend(client, "u"))) == 10  # 7 unseen + 3 re-shows


def test_genre_filter_and_exclude(client: TestClient, add_items: AddItems) -> None:
    add_items(80)
    comedies = [f"m{i}" for i in range(80) if genre_of(i) == "Comedy"]
    items = recommend(client, "u", genre=["Comedy"], exclude=comedies[:4], k=6)
    assert len(items) == 6
    assert all(i["genres"] == ["Comedy"] for i in items)
    assert not set(ids(items)) & set(comedies[:4])
    two = recommend(client, "v", genre=["Comedy", "Horror"], k=20)
    assert {g for i in two for g in i["genres"]} == {"Comedy", "Horror"}
    assert recommend(client, "w", genre=["No such genre"]) == []


def test_forced_source_and_exploration_switch(client: TestClient, add_items: AddItems) -> None:
    add_items(30)
    newest = recommend(client, "u", source="newest", explore=False, k=5)
    assert ids(newest) == ["m29", "m28", "m27", "m26", "m25"]
    assert {i["source"] for i in newest} == {"newest"}
    assert ids(recommend(client, "v", model="newest", explore=False, k=2)) == ["m29", "m28"]


def test_unknown_source_is_a_422_that_lists_the_sources(client: TestClient) -> None:
    r = client.get(f"{V1}/recommendations/u", params={"source": "magic"})
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "unknown source magic; available: co_likes, genre_popular, genre_top, item_to_item,"
        " like_rate, newest, popular, top_rated"
    )


def test_a_new_movie_without_events_gets_shown(client: TestClient, add_items: AddItems) -> None:
    add_items(200)
    body = {"events": [event(f"fan{j}", f"m{i}") for j in range(3) for i in range(20)]}
    assert client.post(f"{V1}/events/batch", json=body).is_success
    client.post(f"{V1}/movies", json={"id": "brand-new", "genres": ["Documentary"]})
    first = recommend(client, "someone")
    assert "brand-new" in ids(first)
    [item] = [i for i in first if i["movie_id"] == "brand-new"]
    assert item["source"] in {"newest", "explore"}


# -- X-Request-Id --------------------------------------------------------------------------
def test_request_id_is_echoed(client: TestClient) -> None:
    r = client.get(f"{V1}/health", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = client.get(f"{V1}/users/ghost", headers={"X-Request-Id": "on-errors-too"})
    assert (r.status_code, r.headers["x-request-id"]) == (404, "on-errors-too")


def test_request_id_is_generated_when_absent(client: TestClient) -> None:
    first = client.get("/healthcheck").headers["x-request-id"]
    second = client.get("/healthcheck").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_request_id_is_capped(client: TestClient) -> None:
    r = client.get("/healthcheck", headers={"X-Request-Id": "x" * 500})
    assert r.headers["x-request-id"] == "x" * 128


def test_a_users_history_is_newest_first_and_paged(client: TestClient, add_items: AddItems) -> None:
    add_items(10)
    for i in range(5):
        post_event(client, event("h", f"m{i}", timestamp=1_700_000_000 + i))
    post_event(client, event("h", "m7", "rating", value=4.5, timestamp=1_700_000_100))
    post_event(client, event("other", "m9"))
    r = client.get(f"{V1}/users/h/events", params={"limit": 4})
    assert r.status_code == 200
    page = r.json()
    assert [(e["movie_id"], e["kind"]) for e in page["events"]] == [
        ("m7", "rating"),
        ("m4", "like"),
        ("m3", "like"),
        ("m2", "like"),
    ]
    assert page["events"][0]["value"] == 4.5 and page["events"][1]["ts"] == 1_700_000_004
    rest = client.get(
        f"{V1}/users/h/events", params={"limit": 4, "offset": page["next_offset"]}
    ).json()
    assert [e["movie_id"] for e in rest["events"]] == ["m1", "m0"]
    assert rest["next_offset"] is None
    assert client.get(f"{V1}/users/nobody/events").json() == {"events": [], "next_offset": None}
    assert client.get(f"{V1}/users/h/events", params={"limit": 0}).status_code == 422
