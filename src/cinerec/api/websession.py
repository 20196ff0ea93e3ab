"""The web page's session and CSRF protection (``docs/web.md``), free of page logic.

- **Session**: the JWTs that ``/api/v1/auth/login`` would give, kept in cookies the page's
  script cannot read (``HttpOnly``) and the browser sends only to requests started from this
  site (``SameSite=Strict``): the access token on every path, the refresh token only to the
  page (``/web``). An expired access token is renewed from the refresh token on the next
  page request, so a session lasts ``refresh_token_ttl_s``.
- **CSRF**: double-submit token *and* ``SameSite=Strict``. A random token lives in a third
  ``HttpOnly`` cookie and is written into every form the server renders (and into a
  ``<meta>`` tag the script sends back as ``X-CSRF-Token``); a POST whose form field or
  header does not equal the cookie is refused with 403 before anything else is read. A
  forged cross-site form can neither read the token nor, in a browser that honours
  SameSite, send the cookies.

The signing key is the :class:`cinerec.security.Authenticator`'s: with auth on, the session's
token is also a valid bearer token of the API; with auth off (``make run``) the key is made
at start-up, so a restart signs everyone out.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response

from cinerec.security import Authenticator, AuthError

SESSION_COOKIE = "cinerec_session"
REFRESH_COOKIE = "cinerec_refresh"
CSRF_COOKIE = "cinerec_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PAGE_PATH = "/web"


class SignInRequired(Exception):
    """The page needs a signed-in visitor: the handler redirects to the sign-in form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _auth(request: Request) -> Authenticator:
    return request.app.state.auth


def _cookie(response: Response, request: Request, name: str, value: str, **kw: object) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        **kw,  # type: ignore[arg-type]
    )


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (made on its first page; the page sets the cookie)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token:
        token = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return token


#: every page answer: only this site's own files (no inline script), no framing, forms
#: post here only
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def finish(request: Request, response: Response) -> Response:
    """Set the cookies a request decided on (a new CSRF token, renewed session tokens) and
    the page's security headers."""
    response.headers.update(SECURITY_HEADERS)
    new_csrf = getattr(request.state, "new_csrf", None)
    if new_csrf:
        _cookie(response, request, CSRF_COOKIE, new_csrf, path="/")
    renewed = getattr(request.state, "renewed", None)
    if renewed:
        start_session(request, response, *renewed)
    return response


async def check_csrf(request: Request) -> None:
    """403 unless the POST carries this browser's CSRF token (form field or header)."""
    expected = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(
            403,
            "missing or wrong CSRF token: reload the page and send the form again "
            f"(form field {CSRF_FIELD!r} or header 'X-CSRF-Token' equal to the "
            f"{CSRF_COOKIE!r} cookie)",
        )


CsrfChecked = Depends(check_csrf)


def start_session(
    request: Request, response: Response, user_id: str, role: str, sid: str | None = None
) -> None:
    """Sign a user in (or renew the session ``sid``): fresh access and refresh tokens of one
    session in their cookies."""
    access, _, refresh, refresh_ttl = _auth(request).issue_pair(user_id, role, sid)
    _cookie(response, request, SESSION_COOKIE, access, path="/")
    _cookie(response, request, REFRESH_COOKIE, refresh, path=PAGE_PATH, max_age=refresh_ttl)


def end_session(response: Response, request: Request | None = None) -> None:
    """Clear the session's cookies; with the ``request``, also sign its refresh token out,
    so a copy of the cookie cannot renew the session."""
    if request is not None and (refresh := request.cookies.get(REFRESH_COOKIE)):
        with contextlib.suppress(AuthError):  # an invalid or expired one renews nothing
            _auth(request).sign_out(refresh, request.app.state.service.store)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path=PAGE_PATH)


def signed_in_user(request: Request) -> str | None:
    """The signed-in user id, or None. An expired (or missing) access token with a valid
    refresh token renews both (:func:`finish` sets them on the answer)."""
    auth = _auth(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            claims = auth.access_claims(token)
            sub = claims.get("sub")
            if isinstance(sub, str):
                return sub
        except AuthError:
            pass
    refresh = request.cookies.get(REFRESH_COOKIE)
    if not refresh:
        return None
    store = request.app.state.service.store
    try:
        claims = auth.refresh_claims(refresh, store)
    except AuthError:
        return None
    sub, role = claims.get("sub"), claims.get("role", "user")
    if not isinstance(sub, str):
        return None
    account = store.get_account(sub)
    if account is None:  # deleted or wiped since
        return None
    request.state.renewed = (sub, str(role), auth.session_of(claims))
    return sub


def current_user(request: Request) -> str:
    """The signed-in user id; else the page sends the visitor to the sign-in form."""
    user = signed_in_user(request)
    if user is None:
        next_path = request.url.path if request.method == "GET" else PAGE_PATH
        raise SignInRequired(next_path)
    return user


UserDep = Annotated[str, Depends(current_user)]
