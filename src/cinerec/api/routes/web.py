"""The web page (``/web``, ``docs/web.md``): server-rendered Jinja2 templates and one small
script for the buttons, every asset in the package (``cinerec/web``); no build step.

Every page goes through :class:`cinerec.service.RecService` like the API does. The page
always needs an account (``cinerec.api.websession``), whatever ``CINEREC_AUTH`` says: a
person's likes are theirs. The movie buttons are forms that work without the script; the
script sends them with ``fetch`` and swaps in the new "For you" list instead of reloading.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from cinerec.api.deps import ServiceDep, get_auth, limit_auth, limit_user_writes
from cinerec.api.schemas import MAX_ID, PathId
from cinerec.api.websession import (
    CSRF_FIELD,
    PAGE_PATH,
    CsrfChecked,
    SignInRequired,
    UserDep,
    csrf_token,
    end_session,
    finish,
    signed_in_user,
    start_session,
)
from cinerec.domain import Account, Event, EventKind
from cinerec.engine import Recommended
from cinerec.engine.explain import Reason
from cinerec.security import Authenticator
from cinerec.service import MAX_FAVORITE_GENRES, RecService, wait_logged

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
templates = Jinja2Templates(directory=WEB_DIR / "templates")

FOR_YOU = 10
ROW = 6
SIMILAR = 12
SEARCH_LIMIT = 30
MIN_PASSWORD, MAX_PASSWORD = 8, 256
#: what the page's movie buttons do, as events
ACTIONS = {
    "like": EventKind.LIKE,
    "dislike": EventKind.DISLIKE,
    "not-interested": EventKind.NOT_INTERESTED,
}
#: a glyph per common genre on the poster placeholder
GLYPHS = {
    "Action": "✸",
    "Adventure": "⚑",
    "Animation": "✎",
    "Children": "✿",
    "Comedy": "☺",
    "Crime": "⚖",
    "Documentary": "◉",
    "Drama": "◐",
    "Fantasy": "✧",
    "Film-Noir": "◼",
    "Horror": "☠",
    "Musical": "♪",
    "Mystery": "?",
    "Romance": "♥",
    "Sci-Fi": "✦",
    "Thriller": "⚡",
    "War": "✠",
    "Western": "☼",
}

router = APIRouter(prefix=PAGE_PATH, include_in_schema=False)


# -- rendering -----------------------------------------------------------------------------
def poster(title: str, genres: list[str]) -> dict[str, str]:
    """A placeholder poster drawn from the title and the genre (no image is fetched): two
    colours from a hash of the title, the genre's glyph and the title's initials."""
    digest = hashlib.sha256(title.encode()).digest()
    hue = digest[0] * 360 // 256
    words = [w for w in title.split() if w[:1].isalnum() and w.lower() not in ("the", "a")]
    initials = "".join(w[0] for w in words[:2]).upper() or "?"
    genre = genres[0] if genres else ""
    return {
        "top": f"hsl({hue}, 55%, 38%)",
        "bottom": f"hsl({(hue + 40 + digest[1] % 60) % 360}, 60%, 18%)",
        "glyph": GLYPHS.get(genre, "★"),
        "initials": initials,
        "genre": genre,
        "id": digest[:6].hex(),
    }


def card(svc: RecService, movie_id: str, reason: str | None = None) -> dict[str, Any] | None:
    """What a movie card shows; None for a movie no longer in the catalogue."""
    cat = svc.engine.catalog
    idx = cat.ids.get(movie_id)
    if idx is None or not cat.active[idx]:
        return None
    title = cat.titles[idx] or movie_id
    genres = cat.genre_names(idx)
    return {
        "id": movie_id,
        "title": title,
        "year": cat.years[idx],
        "genres": genres,
        "reason": reason,
        "poster": poster(title, genres),
        "path": f"{PAGE_PATH}/movies/{quote(movie_id, safe='')}",
    }


def cards(svc: RecService, items: list[Recommended], reasons: list[Reason]) -> list[dict[str, Any]]:
    """Cards of a recommended list, each with its reason."""
    out = (card(svc, it.movie_id, r.text) for it, r in zip(items, reasons, strict=True))
    return [c for c in out if c is not None]


def page(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    user: str | None = None,
) -> Response:
    ctx = {
        "user": user,
        "csrf_token": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "web": PAGE_PATH,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    return finish(request, response)


def redirect(request: Request, to: str) -> Response:
    return finish(request, RedirectResponse(to, status_code=303))


def _local(next_path: str | None) -> str:
    """Where to go after a form: a path of this page only (never another site)."""
    if next_path and next_path.startswith(PAGE_PATH) and not next_path.startswith("//"):
        return next_path
    return PAGE_PATH


def for_you(svc: RecService, user: str) -> list[dict[str, Any]]:
    """The user's next default list (logged and never shown again, as ``/recs``)."""
    result = svc.recommend(user, FOR_YOU)
    wait_logged(result)
    return cards(svc, result.items, svc.explain(result))


def genre_rows(svc: RecService, user: str, genres: list[str], shown: set[str]) -> list[Any]:
    """A "worth watching in <genre>" row per genre: previews (not logged), leaving out what
    is on the page already."""
    rows = []
    exclude = set(shown)
    for genre in genres:
        result = svc.recommend(
            user, ROW, genres=[genre], exclude=sorted(exclude), explore=False, record=False
        )
        exclude.update(it.movie_id for it in result.items)
        rows.append({"genre": genre, "cards": cards(svc, result.items, svc.explain(result))})
    return rows


def catalogue_genres(svc: RecService) -> list[str]:
    names = svc.engine.catalog.genres.externals(range(len(svc.engine.catalog.genres)))
    return sorted(g for g in names if not g.startswith("("))  # "(no genres listed)"


def top_cards(svc: RecService, genres: list[str] | None, n: int) -> list[dict[str, Any]]:
    ids = svc.engine.genre_top(None, n, genres)
    out = (card(svc, m, f"Top rated in {genres[0]}" if genres else "Top rated") for m in ids)
    return [c for c in out if c is not None]


# -- accounts ------------------------------------------------------------------------------
def _auth_form(request: Request, name: str, error: str, user_id: str, status: int) -> Response:
    return page(request, name, {"error": error, "user_id": user_id}, status_code=status)


def _credentials(user_id: str, password: str) -> str | None:
    """What is wrong with a sign-up or sign-in form, in words; None when nothing is."""
    if not 1 <= len(user_id) <= MAX_ID:
        return f"Your user name must be 1 to {MAX_ID} characters."
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return f"Your password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters."
    return None


AuthDep = Annotated[Authenticator, Depends(get_auth)]
FormText = Annotated[str, Form(max_length=4096)]


@router.get("/signin")
def signin_form(request: Request, next: str | None = None) -> Response:
    return page(request, "signin.html", {"next": _local(next)})


@router.post("/signin", dependencies=[CsrfChecked, Depends(limit_auth)])
def signin(
    request: Request,
    svc: ServiceDep,
    auth: AuthDep,
    user_id: FormText = "",
    password: FormText = "",
    next: FormText = PAGE_PATH,
) -> Response:
    user_id = user_id.strip()
    problem = _credentials(user_id, password)
    if problem:
        return _auth_form(request, "signin.html", problem, user_id, 422)
    account = svc.store.get_account(user_id)
    if not auth.verify_password(password, account.password_hash if account else None):
        return _auth_form(request, "signin.html", "Wrong user name or password.", user_id, 401)
    assert account is not None
    response = redirect(request, _local(next))
    start_session(request, response, account.user_id, account.role)
    return response


@router.get("/signup")
def signup_form(request: Request) -> Response:
    return page(request, "signup.html")


@router.post("/signup", dependencies=[CsrfChecked, Depends(limit_auth)])
def signup(
    request: Request,
    svc: ServiceDep,
    auth: AuthDep,
    user_id: FormText = "",
    password: FormText = "",
) -> Response:
    user_id = user_id.strip()
    problem = _credentials(user_id, password)
    if problem:
        return _auth_form(request, "signup.html", problem, user_id, 422)
    if not svc.store.add_account(Account(user_id, auth.hash_password(password))):
        message = f"{user_id!r} already has an account: sign in, or choose another name."
        return _auth_form(request, "signup.html", message, user_id, 409)
    response = redirect(request, f"{PAGE_PATH}/welcome")
    start_session(request, response, user_id, "user")
    return response


@router.post("/signout", dependencies=[CsrfChecked])
def signout(request: Request) -> Response:
    response = redirect(request, f"{PAGE_PATH}/signin")
    end_session(response, request)
    return response


# -- first visit and home ------------------------------------------------------------------
@router.get("/welcome")
def welcome(request: Request, user: UserDep, svc: ServiceDep) -> Response:
    return _welcome(request, user, svc)


def _welcome(
    request: Request, user: str, svc: RecService, error: str | None = None, status: int = 200
) -> Response:
    genres = catalogue_genres(svc)
    stored = svc.get_user(user)
    # Genre tops of the catalogue's biggest genres, for a newcomer to start from.
    gm = svc.engine.catalog.genre_matrix()
    sizes = gm[svc.engine.catalog.servable].sum(axis=0)
    cat_genres = svc.engine.catalog.genres
    biggest = [
        g for g in (cat_genres.external(int(i)) for i in sizes.argsort()[::-1]) if g in genres
    ]
    context = {
        "genres": genres,
        "chosen": stored.favorite_genres if stored else [],
        "max_genres": MAX_FAVORITE_GENRES,
        "top": top_cards(svc, None, ROW * 2),
        "tops": [{"genre": g, "cards": top_cards(svc, [g], ROW)} for g in biggest[:3]],
        "error": error,
    }
    return page(request, "welcome.html", context, status_code=status, user=user)


@router.post("/welcome", dependencies=[CsrfChecked])
def choose_genres(
    request: Request,
    user: UserDep,
    svc: ServiceDep,
    genres: Annotated[list[str], Form(max_length=100)] = [],  # noqa: B006 (FastAPI copies)
) -> Response:
    limit_user_writes(request, user)
    chosen = list(dict.fromkeys(g.strip() for g in genres if g.strip()))
    if len(chosen) > MAX_FAVORITE_GENRES:
        message = f"Pick at most {MAX_FAVORITE_GENRES} genres (you picked {len(chosen)})."
        return _welcome(request, user, svc, message, 422)
    unknown = sorted(set(chosen) - set(catalogue_genres(svc)))
    if unknown:
        return _welcome(request, user, svc, f"Unknown genre: {', '.join(unknown)}.", 422)
    svc.set_favorite_genres(user, chosen)
    return redirect(request, PAGE_PATH)


@router.get("")
def home(request: Request, user: UserDep, svc: ServiceDep) -> Response:
    listed = for_you(svc, user)
    stored = svc.get_user(user)
    favourites = stored.favorite_genres if stored else []
    rows = genre_rows(svc, user, favourites, {c["id"] for c in listed})
    context = {
        "for_you": listed,
        "rows": rows,
        "top": [] if favourites else top_cards(svc, None, ROW),
        "no_genres": not favourites,
    }
    return page(request, "home.html", context, user=user)


@router.get("/fragments/for-you")
def for_you_fragment(request: Request, user: UserDep, svc: ServiceDep) -> Response:
    """The next "For you" list alone, for the script to swap in after a button."""
    return page(request, "_for_you.html", {"for_you": for_you(svc, user)}, user=user)


# -- movies --------------------------------------------------------------------------------
def _movie_or_404(svc: RecService, movie_id: str) -> dict[str, Any]:
    found = card(svc, movie_id)
    if found is None:
        raise HTTPException(404, f"movie {movie_id!r} is not in the catalogue")
    return found


def similar_cards(svc: RecService, user: str, movie: dict[str, Any]) -> list[dict[str, Any]]:
    """Movies like this one, less what the user turned down; each says why."""
    gone = svc.dismissed(user)
    out = []
    for r in svc.similar(movie["id"], SIMILAR + len(gone)):
        if r.movie_id in gone:
            continue
        reason = (
            f"Liked by people who liked {movie['title']}"
            if r.source == "co_likes"
            else f"Shares genres with {movie['title']}"
        )
        c = card(svc, r.movie_id, reason)
        if c is not None:
            out.append(c)
    return out[:SIMILAR]


@router.get("/movies/{movie_id}")
def movie(
    request: Request,
    user: UserDep,
    svc: ServiceDep,
    movie_id: PathId,
    fragment: Annotated[bool, Query(description="the similar movies alone")] = False,
) -> Response:
    found = _movie_or_404(svc, movie_id)
    similar = similar_cards(svc, user, found)
    if fragment:
        return page(request, "_similar.html", {"movie": found, "similar": similar}, user=user)
    return page(request, "movie.html", {"movie": found, "similar": similar}, user=user)


@router.post("/movies/{movie_id}/{action}", dependencies=[CsrfChecked])
def act(
    request: Request,
    user: UserDep,
    svc: ServiceDep,
    movie_id: PathId,
    action: Annotated[str, PathParam(max_length=32)],
    next: FormText = PAGE_PATH,
) -> Response:
    """Like, dislike or "not interested": stored (durable) before the answer, and the
    user's next list is made from it. The script gets JSON; a plain form, a redirect."""
    kind = ACTIONS.get(action)
    if kind is None:
        raise HTTPException(404, f"no action {action!r}: use one of {', '.join(ACTIONS)}")
    _movie_or_404(svc, movie_id)
    limit_user_writes(request, user)
    svc.record_events([Event(user, movie_id, kind)])
    if request.headers.get("x-requested-with") == "fetch":
        return finish(request, JSONResponse({"status": "ok", "action": action}))
    return redirect(request, _local(next))


# -- search and history --------------------------------------------------------------------
@router.get("/search")
def search(
    request: Request,
    user: UserDep,
    svc: ServiceDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    gone = svc.dismissed(user)
    found = [
        c
        for c in (card(svc, m.id) for m in svc.search_movies(q, SEARCH_LIMIT) if m.id not in gone)
        if c is not None
    ]
    return page(request, "search.html", {"q": q, "results": found}, user=user)


@router.get("/likes")
def likes(request: Request, user: UserDep, svc: ServiceDep) -> Response:
    """The movies the user likes now, newest first (their stored history)."""
    events, _ = svc.history(user, limit=1000)
    latest: dict[str, EventKind] = {}
    for e in events:
        latest.setdefault(e.movie_id, e.kind)
    liked = [m for m, kind in latest.items() if kind is EventKind.LIKE]
    listed = [c for c in (card(svc, m) for m in liked) if c is not None]
    return page(request, "likes.html", {"likes": listed}, user=user)


# -- assembly ------------------------------------------------------------------------------
async def _sign_in_first(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    to = f"{PAGE_PATH}/signin?next={quote(exc.next_path, safe='/')}"
    return RedirectResponse(to, status_code=303)


def install(app: FastAPI) -> None:
    """Mount the page at ``/web`` (``/`` leads there) with its static files."""
    app.include_router(router)
    app.mount(f"{PAGE_PATH}/static", StaticFiles(directory=WEB_DIR / "static"), name="web")
    app.add_exception_handler(SignInRequired, _sign_in_first)

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> Response:
        user = signed_in_user(request)
        return RedirectResponse(PAGE_PATH if user else f"{PAGE_PATH}/signin", status_code=303)
