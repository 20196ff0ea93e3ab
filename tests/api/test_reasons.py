"""Every recommended movie carries a reason a person can read, built from the evidence that
put it there (issue #13): an item-to-item or model pick names movies the user really liked."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from tests.api.conftest import AddItems
from tests.training.test_training import ADMIN, make_service

from cinerec.api.main import create_app
from cinerec.domain import Event, EventKind
from cinerec.service import RecService
from cinerec.store import Store

V1 = "/api/v1"


def like(client: TestClient, user: str, movies: list[str]) -> None:
    r = client.post(
        "/interact", json={"user_id": user, "item_ids": movies, "actions": ["like"] * len(movies)}
    )
    assert r.status_code == 200, r.text


def test_an_item_to_item_reason_names_a_movie_the_user_liked(
    client: TestClient, add_items: AddItems
) -> None:
    movies = add_items(40)
    # Two tastes: the fans of m0 also like m1-m5; others like m20-m25.
    for n in range(12):
        like(client, f"fan{n}", [movies[0], *movies[1:6]])
        like(client, f"other{n}", movies[20:26])
    like(client, "me", [movies[0], movies[20]])
    body = client.get(f"{V1}/recommendations/me?source=item_to_item&k=5&explore=false").json()
    items = body["items"]
    assert len(items) == 5
    named = [i for i in items if i["because"]]
    assert named, items
    for item in named:
        assert set(item["because"]) <= {movies[0], movies[20]}
        assert item["reason"].startswith("Because you liked ")
        for liked in item["because"]:
            assert liked in item["reason"]  # the title (here the id doubles as title)
    # A fan's movie is explained by the fan's movie, not by the other taste.
    fans = [i for i in named if i["movie_id"] in movies[1:6]]
    assert fans and all(i["because"][0] == movies[0] for i in fans)


def test_every_movie_of_every_list_has_a_reason(client: TestClient, add_items: AddItems) -> None:
    movies = add_items(40)
    for n in range(5):
        like(client, f"u{n}", movies[n : n + 4])
    explored = []
    for user in ("u0", "newcomer"):
        body = client.get(f"{V1}/recommendations/{user}?k=10").json()
        assert all(isinstance(i["reason"], str) and i["reason"] for i in body["items"])
        explored += [i["reason"] for i in body["items"] if i["source"] == "explore"]
        cinema = client.get(f"/api/recommend/v1/recommendations/{user}").json()
        assert len(cinema["reasons"]) == len(cinema["recommendations"]) == 10
        assert all(cinema["reasons"])
    assert explored and set(explored) == {"Something different"}


def test_a_genre_pick_names_the_favourite_genre(client: TestClient, add_items: AddItems) -> None:
    add_items(40)
    assert (
        client.put(f"{V1}/users/g/favorite-genres", json={"genres": ["Western"]}).status_code == 200
    )
    items = client.get(f"{V1}/recommendations/g?source=genre_top&k=3&explore=false").json()["items"]
    assert {i["reason"] for i in items} == {"Top rated in Western, a genre you like"}


def test_a_model_reason_names_the_users_liked_movies(store: Store, tmp_path: Path) -> None:
    svc: RecService = make_service(store, tmp_path, ["ease"])
    svc.trainer.train("full")
    assert "ease" in svc.engine.personal_pool
    liked = [m.id for m in store.iter_movies()][:3]
    svc.record_events([Event("reader", m, EventKind.LIKE) for m in liked])
    client = TestClient(create_app(svc), headers=ADMIN)
    items = client.get(f"{V1}/recommendations/reader?source=ease&k=10&explore=false").json()[
        "items"
    ]
    assert len(items) == 10
    cat = svc.engine.catalog
    titles = {m: cat.titles[cat.index(m)] for m in liked}
    named = [i for i in items if i["because"]]
    assert len(named) >= 5, items
    for item in named:
        assert set(item["because"]) <= set(liked)
        assert all(titles[m] in item["reason"] for m in item["because"])
    svc.close()


def test_item_to_item_reasons_match_the_co_likes_counted_by_hand(
    client: TestClient, svc: RecService, add_items: AddItems
) -> None:
    """explain_many (one table for the whole list) ranks the user's likes as plain set
    intersections of likers would."""
    movies = add_items(30)
    for n in range(20):
        like(client, f"x{n}", [movies[(n * k) % 30] for k in (1, 2, 3, 5)])
    like(client, "me", movies[:6])
    eng = svc.engine
    cat, me = eng.catalog, eng.user("me", create=False)
    assert me is not None
    rec = eng.recommenders["item_to_item"]
    targets = [cat.index(m) for m in movies[6:30]]
    for i, got in zip(targets, rec.explain_many(me, cat, targets), strict=True):
        theirs = set(cat.likers.get(i) or ())
        expected = []
        for j in me.recent_likes:
            mine = set(cat.likers[j]) - {me.idx}
            co = len(theirs & mine)
            if co:
                expected.append((-co / (len(theirs) * len(mine)) ** 0.5, j))
        assert got == [j for _, j in sorted(expected)]
