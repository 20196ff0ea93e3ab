"""Contract A (SPEC.md): the course grader's /healthcheck, /cleanup, /add_items, /recs and the
collector's /interact, in process."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from cinerec.service import RecService

from .conftest import AddItems, genre_of

GetRecs = Callable[[str], list[str]]


def interact(c: TestClient, user: str, items: list[str], actions: list[str]) -> None:
    r = c.post("/interact", json={"user_id": user, "item_ids": items, "actions": actions})
    assert r.status_code == 200, r.text


# -- happy paths ---------------------------------------------------------------------------
def test_healthcheck_on_both_apps(client: TestClient, collector: TestClient) -> None:
    assert client.get("/healthcheck").status_code == 200
    assert collector.get("/healthcheck").status_code == 200


def test_collector_serves_only_interact_and_healthcheck(collector: TestClient) -> None:
    assert collector.get("/recs/u1").status_code == 404
    assert collector.post("/add_items", json={"item_ids": ["a"]}).status_code == 404
    assert collector.get("/cleanup").status_code == 404


def test_add_items_in_batches_then_recs_gives_ten_distinct_catalogue_ids(
    add_items: AddItems, get_recs: GetRecs
) -> None:
    catalogue = set(add_items(45, batch=10))
    ids = get_recs("u1")
    assert len(ids) == 10
    assert len(set(ids)) == 10
    assert set(ids) <= catalogue


def test_add_items_without_genres_and_upsert_does_not_duplicate(
    client: TestClient, get_recs: GetRecs
) -> None:
    for _ in range(2):  # the same batch twice: an upsert, not 24 movies
        r = client.post("/add_items", json={"item_ids": [f"x{i}" for i in range(12)]})
        assert r.status_code == 200
    assert client.get("/api/v1/health").json()["movies"] == 12
    first, second = get_recs("u1"), get_recs("u1")
    assert len(first) == 10
    # 2 unseen movies left, topped up with re-shows so the list stays 10 long
    assert len(set(first) & set(second)) == 8
    assert len(second) == 10


def test_genres_belong_to_their_items(client: TestClient) -> None:
    r = client.post(
        "/add_items", json={"item_ids": ["a", "b"], "genres": [["Horror"], ["Comedy", "Drama"]]}
    )
    assert r.status_code == 200
    assert client.get("/api/v1/movies/a").json()["genres"] == ["Horror"]
    assert client.get("/api/v1/movies/b").json()["genres"] == ["Comedy", "Drama"]


def test_recs_on_an_empty_catalogue_is_an_empty_list(client: TestClient) -> None:
    r = client.get("/recs/nobody")
    assert r.status_code == 200
    assert r.json() == {"item_ids": []}


def test_interact_is_stored_durably(
    collector: TestClient, svc: RecService, add_items: AddItems
) -> None:
    add_items(20)
    interact(collector, "u1", ["m1", "m2"], ["like", "dislike"])
    kinds = {(e.movie_id, e.kind.value) for e in svc.store.user_events("u1")}
    assert kinds == {("m1", "like"), ("m2", "dislike")}


def test_interact_accepts_a_timestamp(
    collector: TestClient, svc: RecService, add_items: AddItems
) -> None:
    add_items(5)
    r = collector.post(
        "/interact",
        json={"user_id": "u", "item_ids": ["m1"], "actions": ["like"], "timestamp": 1.7e9},
    )
    assert r.status_code == 200
    assert [e.ts for e in svc.store.user_events("u")] == [1.7e9]


def test_liked_and_shown_movies_never_come_back_until_the_catalogue_runs_out(
    client: TestClient, collector: TestClient, add_items: AddItems, get_recs: GetRecs
) -> None:
    catalogue = add_items(95, batch=40)
    shown: list[str] = []
    liked: list[str] = []
    for _ in range(9):  # 90 of 95 movies
        ids = get_recs("fan")
        assert len(ids) == 10
        assert not set(ids) & set(shown), "a movie was shown twice"
        shown += ids
        liked.append(ids[0])
        interact(collector, "fan", [ids[0], ids[1]], ["like", "dislike"])
    assert len(set(shown)) == 90
    last = get_recs("fan")
    unseen = set(catalogue) - set(shown)
    # the 5 movies never shown come first; the rest are re-shows, never a liked one
    assert unseen <= set(last)
    assert len(last) == 10
    assert len(set(last)) == 10
    assert not set(last) & set(liked)


def test_likes_steer_later_recs_to_the_liked_genre(
    collector: TestClient, add_items: AddItems, get_recs: GetRecs
) -> None:
    add_items(400)  # 50 movies of each of 8 genres
    first = get_recs("u")
    horror = [m for m in (f"m{i}" for i in range(400)) if genre_of(int(m[1:])) == "Horror"]
    likes = [m for m in horror if m not in first][:5]
    interact(collector, "u", likes, ["like"] * 5)
    after = get_recs("u")
    n_horror = sum(genre_of(int(m[1:])) == "Horror" for m in after)
    assert n_horror >= 4, after  # 1 in 8 by chance


def test_each_user_gets_an_independent_list(add_items: AddItems, get_recs: GetRecs) -> None:
    add_items(30)
    a1, b1 = get_recs("a"), get_recs("b")
    assert len(a1) == len(b1) == 10
    a2 = get_recs("a")
    assert not set(a1) & set(a2)


def test_cleanup_forgets_everything(
    client: TestClient, collector: TestClient, svc: RecService, add_items: AddItems
) -> None:
    add_items(30)
    interact(collector, "u", ["m1"], ["like"])
    before = client.get("/recs/u").json()["item_ids"]
    assert client.get("/api/recommend/v1/recommendations/genres_top").json()["movies"]

    assert client.get("/cleanup").status_code == 200

    svc.rec_log.flush()
    assert list(svc.store.iter_rec_log()) == []
    assert client.get("/recs/u").json() == {"item_ids": []}
    health = client.get("/api/v1/health").json()
    assert (health["movies"], health["events"]) == (0, 0)
    assert client.get("/api/recommend/v1/recommendations/genres_top").json() == {"movies": []}
    assert svc.store.count_movies() == 0
    assert svc.store.count_events() == 0
    # The same movies added again are new to "u": nothing shown or liked is remembered.
    again = sorted({*before, "m1"})
    assert client.post("/add_items", json={"item_ids": again}).status_code == 200
    items = client.get("/api/v1/recommendations/u", params={"k": len(again)}).json()["items"]
    assert sorted(i["movie_id"] for i in items) == again
    assert "reshow" not in {i["source"] for i in items}


# -- 4xx with messages that say what to fix ------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "hint"),
    [
        ({"item_ids": ["a", "b"], "genres": [["x"]]}, 422, "genres[i] must belong to item_ids[i]"),
        ({"item_ids": []}, 422, "item_ids"),
        ({"item_ids": [""]}, 422, "item_ids.0"),
        ({"item_ids": [str(i) for i in range(10_001)]}, 422, "at most 10000"),
        ({"genres": [["x"]]}, 422, "item_ids: Field required"),
        ({"item_ids": "a"}, 422, "item_ids"),
        (["a"], 422, "JSON object"),
        ({"item_ids": ["a"], "genres": [[f"g{i}" for i in range(21)]]}, 422, "genres.0"),
        ({"item_ids": ["a" * 129]}, 422, "item_ids.0"),
    ],
)
def test_add_items_rejects(client: TestClient, body: object, status: int, hint: str) -> None:
    r = client.post("/add_items", json=body)
    assert r.status_code == status
    assert hint in r.json()["detail"]
    assert client.get("/api/v1/health").json()["movies"] == 0  # nothing half-added


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        (
            {"user_id": "u", "item_ids": ["a", "b"], "actions": ["like"]},
            "actions[i] must belong to item_ids[i]",
        ),
        ({"user_id": "u", "item_ids": ["a"], "actions": ["love"]}, "'like' or 'dislike'"),
        ({"user_id": "u", "item_ids": [], "actions": []}, "item_ids"),
        ({"user_id": "", "item_ids": ["a"], "actions": ["like"]}, "user_id"),
        ({"item_ids": ["a"], "actions": ["like"]}, "user_id: Field required"),
        (
            {"user_id": "u", "item_ids": ["a"], "actions": ["like"], "timestamp": 1.7e12},
            "not milliseconds",
        ),
        (
            {"user_id": "u", "item_ids": ["a"] * 10_001, "actions": ["like"] * 10_001},
            "at most 10000",
        ),
        (  # a like dated 2099 would outweigh every real one in decayed popularity
            {"user_id": "u", "item_ids": ["a"], "actions": ["like"], "timestamp": 4.0e9},
            "not the future",
        ),
        (
            {"user_id": "u", "item_ids": ["a"], "actions": ["like"], "timestamp": -1.0},
            "between 1970",
        ),
    ],
)
def test_interact_rejects(collector: TestClient, svc: RecService, body: object, hint: str) -> None:
    r = collector.post("/interact", json=body)
    assert r.status_code == 422
    assert hint in r.json()["detail"]
    assert svc.store.count_events() == 0


@pytest.mark.parametrize("path", ["/add_items", "/interact"])
def test_malformed_json_is_a_400(client: TestClient, path: str) -> None:
    r = client.post(path, content=b'{"item_ids": [', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"content-type": "text/plain"}])
def test_a_body_without_json_content_type_says_so(
    client: TestClient, headers: dict[str, str]
) -> None:
    r = client.post("/add_items", content=b'{"item_ids": ["a"]}', headers=headers)
    assert r.status_code == 422
    assert "Content-Type: application/json" in r.json()["detail"]


def test_wrong_method_is_a_405(client: TestClient) -> None:
    assert client.post("/recs/u").status_code == 405
    assert client.get("/add_items").status_code == 405


def test_an_event_dated_a_little_ahead_of_the_server_clock_is_accepted(
    collector: TestClient, svc: RecService
) -> None:
    import time

    body = {"user_id": "u", "item_ids": ["a"], "actions": ["like"], "timestamp": time.time() + 3600}
    assert collector.post("/interact", json=body).status_code == 200
    assert svc.store.count_events() == 1


@pytest.mark.parametrize("path", ["/recs/{}", "/api/v1/recommendations/{}", "/api/v1/users/{}"])
def test_an_id_in_the_path_over_128_characters_is_a_422(client: TestClient, path: str) -> None:
    r = client.get(path.format("u" * 129))
    assert r.status_code == 422
    assert "at most 128 characters" in r.json()["detail"]
    assert client.get(path.format("u" * 128)).status_code in (200, 404)
    assert client.get("/api/v1/health").json()["users"] <= 1  # the long one was never created


def test_recs_answered_by_the_fast_path_keep_the_stacks_request_id_and_metrics(
    client: TestClient, svc: RecService, add_items: AddItems, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_items(40)
    answered: list[bool] = []
    try_recommend = svc.try_recommend

    def spy(*args: object, **kwargs: object) -> object:
        result = try_recommend(*args, **kwargs)  # type: ignore[arg-type]
        answered.append(result is not None)
        return result

    monkeypatch.setattr(svc, "try_recommend", spy)
    client.get("/recs/u1")  # the first list makes what the fast path serves from
    r = client.get("/recs/u1", headers={"X-Request-Id": "req-7"})
    assert answered[-1], "the fast path did not answer"
    assert r.status_code == 200 and len(r.json()["item_ids"]) == 10
    assert r.headers["x-request-id"] == "req-7"
    r = client.get("/recs/u1")
    assert answered[-1] and len(r.headers["x-request-id"]) == 32  # one is made
    metrics = client.get("/metrics").text
    line = 'http_requests_total{method="GET",route="/recs/{user_id}",status="200"} 3.0'
    assert line in metrics
