"""The web page's routes in process (issue #13): sessions, CSRF, the 4xx of bad forms, and
that what a visitor says changes what they see. tests/e2e/test_web_browser.py walks the
same page in a real browser."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import api_settings

from cinerec.api.main import create_app
from cinerec.domain import Event, EventKind, Movie
from cinerec.service import RecService

GENRES = ["Comedy", "Drama", "Action"]
PASSWORD = "correct horse battery"


def movies() -> list[Movie]:
    return [
        Movie(
            f"m{i}",
            f"Film {i} {['Heat', 'Alien', 'Up'][i % 3]} ({1990 + i})",
            1990 + i,
            [GENRES[i % 3]],
        )
        for i in range(60)
    ]


def seeded(svc: RecService) -> RecService:
    svc.add_movies(movies())
    # Three tastes, so that a like has neighbours to name.
    svc.record_events(
        [Event(f"u{j}", f"m{(j % 3) + 3 * k}", EventKind.LIKE) for j in range(30) for k in range(6)]
    )
    return svc


@pytest.fixture
def web(svc: RecService) -> Iterator[TestClient]:
    """A browser without a session: no bearer token, redirects not followed."""
    with TestClient(create_app(seeded(svc)), follow_redirects=False) as c:
        yield c


def csrf(client: TestClient, path: str = "/web/signin") -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match, "every form carries the CSRF token"
    return match.group(1)


def sign_up(client: TestClient, user: str = "alice") -> str:
    token = csrf(client)
    r = client.post(
        "/web/signup", data={"user_id": user, "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 303 and r.headers["location"] == "/web/welcome", r.text
    return token


def reasons(html: str) -> list[str]:
    return re.findall(r'class="reason">([^<]*)<', html)


def listed(html: str) -> list[str]:
    return re.findall(r'data-movie-id="([^"]+)"', html)


# -- not signed in -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/web", "/web/welcome", "/web/likes", "/web/search?q=heat", "/web/movies/m1"]
)
def test_pages_send_a_visitor_without_a_session_to_sign_in(web: TestClient, path: str) -> None:
    r = web.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/web/signin?next=/web")


def test_a_button_without_a_session_leads_to_sign_in_and_stores_nothing(
    web: TestClient, svc: RecService
) -> None:
    token = csrf(web)
    r = web.post("/web/movies/m1/like", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"].startswith("/web/signin")
    assert svc.store.count_events() == 180


def test_the_root_leads_to_the_page(web: TestClient) -> None:
    assert web.get("/").headers["location"] == "/web/signin"
    sign_up(web)
    assert web.get("/").headers["location"] == "/web"


# -- CSRF ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, data",
    [
        ("/web/signup", {"user_id": "mallory", "password": PASSWORD}),
        ("/web/signin", {"user_id": "alice", "password": PASSWORD}),
        ("/web/welcome", {"genres": "Comedy"}),
        ("/web/movies/m1/like", {}),
        ("/web/movies/m1/not-interested", {}),
        ("/web/signout", {}),
    ],
)
def test_a_post_without_the_csrf_token_is_a_403(
    web: TestClient, svc: RecService, path: str, data: dict[str, str]
) -> None:
    sign_up(web)
    before = svc.store.count_events()
    r = web.post(path, data=data)
    assert r.status_code == 403 and "CSRF token" in r.json()["detail"]
    r = web.post(path, data={**data, "csrf_token": "forged"})
    assert r.status_code == 403
    assert svc.store.count_events() == before
    assert svc.store.get_account("mallory") is None


def test_a_post_from_another_browser_fails_the_csrf_check(web: TestClient) -> None:
    """The token of one browser is no good with another's cookie."""
    token = sign_up(web)
    web.cookies.set("cinerec_csrf", "another-browsers-token", path="/")
    assert web.post("/web/movies/m1/like", data={"csrf_token": token}).status_code == 403


# -- bad form input ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "user, password, status, says",
    [
        ("bob", "short", 422, "8 to 256 characters"),
        ("   ", PASSWORD, 422, "1 to 128 characters"),
        ("b" * 129, PASSWORD, 422, "1 to 128 characters"),
        ("alice", PASSWORD, 409, "already has an account"),
    ],
)
def test_bad_sign_up_forms_say_what_to_fix(
    web: TestClient, user: str, password: str, status: int, says: str
) -> None:
    sign_up(web, "alice")
    token = csrf(web, "/web/signup")
    r = web.post("/web/signup", data={"user_id": user, "password": password, "csrf_token": token})
    assert r.status_code == status
    assert says in r.text and 'role="alert"' in r.text
    assert "cinerec_session" not in r.headers.get("set-cookie", "")


def test_a_wrong_password_is_a_401_page(web: TestClient) -> None:
    sign_up(web)
    token = csrf(web)
    data = {"user_id": "alice", "password": "not the password", "csrf_token": token}
    r = web.post("/web/signin", data=data)
    assert r.status_code == 401 and "Wrong user name or password" in r.text
    r = web.post("/web/signin", data={**data, "user_id": "nobody"})
    assert r.status_code == 401


def test_sign_in_goes_back_to_the_page_asked_for_and_never_off_site(web: TestClient) -> None:
    sign_up(web)
    token = csrf(web)
    data = {"user_id": "alice", "password": PASSWORD, "csrf_token": token}
    r = web.post("/web/signin", data={**data, "next": "/web/likes"})
    assert r.headers["location"] == "/web/likes"
    for elsewhere in ("https://evil.example/web", "//evil.example/web", "/api/v1/health"):
        r = web.post("/web/signin", data={**data, "next": elsewhere})
        assert r.headers["location"] == "/web"


def test_genre_choice_is_checked(web: TestClient, svc: RecService) -> None:
    token = sign_up(web)
    r = web.post("/web/welcome", data={"genres": [*GENRES, "Western"], "csrf_token": token})
    assert r.status_code == 422 and "at most 3 genres" in r.text
    r = web.post("/web/welcome", data={"genres": ["Comedy", "Musicals"], "csrf_token": token})
    assert r.status_code == 422 and "Unknown genre: Musicals" in r.text
    user = svc.get_user("alice")
    assert user is None or user.favorite_genres == []
    # Duplicates count once.
    data = {"genres": ["Comedy", "Drama", " Comedy", "Drama"], "csrf_token": token}
    assert web.post("/web/welcome", data=data).status_code == 303
    stored = svc.get_user("alice")
    assert stored is not None and stored.favorite_genres == ["Comedy", "Drama"]


def test_unknown_movies_and_actions_are_404s(web: TestClient) -> None:
    token = sign_up(web)
    assert web.get("/web/movies/nope").status_code == 404
    r = web.post("/web/movies/nope/like", data={"csrf_token": token})
    assert r.status_code == 404 and "not in the catalogue" in r.json()["detail"]
    r = web.post("/web/movies/m1/love", data={"csrf_token": token})
    assert r.status_code == 404 and "not-interested" in r.json()["detail"]


# -- sessions ----------------------------------------------------------------------------------
def test_session_cookies_are_httponly_and_samesite_strict(web: TestClient) -> None:
    token = csrf(web)
    r = web.post(
        "/web/signup", data={"user_id": "carol", "password": PASSWORD, "csrf_token": token}
    )
    cookies = r.headers.get_list("set-cookie")
    assert {c.split("=")[0] for c in cookies} == {"cinerec_session", "cinerec_refresh"}
    for c in cookies:
        assert "HttpOnly" in c and "SameSite=strict" in c
    assert "Path=/web" in next(c for c in cookies if c.startswith("cinerec_refresh"))
    page = web.get("/web")
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_refresh_token_renews_the_session_and_sign_out_ends_it(web: TestClient) -> None:
    token = sign_up(web)
    web.cookies.delete("cinerec_session", path="/")  # as when the access token expires
    r = web.get("/web")
    assert r.status_code == 200
    assert any(c.startswith("cinerec_session=") for c in r.headers.get_list("set-cookie"))
    stolen = web.cookies.get("cinerec_refresh")  # a copy of the cookie, kept elsewhere
    r = web.post("/web/signout", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/web/signin"
    assert web.get("/web").status_code == 303
    # Signing out signed that refresh token out: its copy renews nothing.
    assert stolen
    web.cookies.set("cinerec_refresh", stolen, path="/web")
    assert web.get("/web").status_code == 303


def test_the_page_needs_an_account_even_with_auth_off() -> None:
    svc = RecService(api_settings(auth=False))
    try:
        with TestClient(create_app(seeded(svc)), follow_redirects=False) as web:
            assert web.get("/web").status_code == 303
            sign_up(web, "dave")
            assert web.get("/web").status_code == 200
    finally:
        svc.close()


# -- what the visitor says changes what they see -----------------------------------------------
def test_every_listed_movie_has_a_reason_and_genre_rows_follow_the_favourites(
    web: TestClient,
) -> None:
    token = sign_up(web)
    web.post("/web/welcome", data={"genres": ["Comedy", "Action"], "csrf_token": token})
    html = web.get("/web").text
    assert "Worth watching in Comedy" in html and "Worth watching in Action" in html
    assert len(reasons(html)) == len(listed(html)) >= 10
    assert all(reasons(html))


def test_a_like_shows_in_the_next_list_and_in_my_likes(web: TestClient) -> None:
    token = sign_up(web)
    first = listed(web.get("/web/fragments/for-you").text)
    r = web.post(
        "/web/movies/m0/like", data={"csrf_token": token}, headers={"X-Requested-With": "fetch"}
    )
    assert r.status_code == 200 and r.json() == {"status": "ok", "action": "like"}
    after = web.get("/web/fragments/for-you").text
    assert not set(first) & set(listed(after))  # a list is never shown twice
    assert "Because you liked Film 0 Heat (1990)" in reasons(after)
    assert listed(web.get("/web/likes").text) == ["m0"]
    # Without the script the same form answers with a redirect back.
    r = web.post("/web/movies/m3/like", data={"csrf_token": token, "next": "/web/likes"})
    assert r.status_code == 303 and r.headers["location"] == "/web/likes"


def test_not_interested_is_never_shown_again(web: TestClient) -> None:
    token = sign_up(web)
    web.post("/web/welcome", data={"genres": ["Comedy"], "csrf_token": token})
    home = web.get("/web").text
    gone = listed(home)[-1]  # a movie of the Comedy row (a preview, not yet shown)
    r = web.post(f"/web/movies/{gone}/not-interested", data={"csrf_token": token})
    assert r.status_code == 303
    seen = []
    for _ in range(4):
        seen += listed(web.get("/web").text)
    seen += listed(web.get("/web/search?q=film").text)
    seen += listed(web.get("/web/movies/m1").text)
    assert gone not in seen


def test_search_finds_titles_by_word_and_prefix(web: TestClient) -> None:
    sign_up(web)
    found = listed(web.get("/web/search?q=alie").text)
    assert found and all(int(m[1:]) % 3 == 1 for m in found)
    assert listed(web.get("/web/search?q=alien 1991").text) == ["m1"]
    r = web.get("/web/search?q=" + "x" * 201)
    assert r.status_code == 422
    assert "No title matches" in web.get("/web/search?q=zzz").text
