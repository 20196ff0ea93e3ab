"""Dependency aliases shared by the routers (after the FastAPI template's ``api/deps.py``).

Auth is a dependency, not a decorator: a route that acts for a user names ``OwnUserId`` (the
path's ``user_id``, checked against the token) or ``PrincipalDep`` in its signature; admin
routes carry ``AdminDep``. With ``CINEREC_AUTH=off`` every caller is an anonymous admin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from cinerec.api.schemas import PathId
from cinerec.security import Authenticator, AuthError, ForbiddenError, Principal, RateLimiter
from cinerec.service import RecService

#: what every caller is when auth is off
ANONYMOUS_ADMIN = Principal(None, admin=True)


def get_service(request: Request) -> RecService:
    return request.app.state.service


def get_auth(request: Request) -> Authenticator:
    return request.app.state.auth


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("send the token as 'Authorization: Bearer <token>'")
    return token.strip()


def get_principal(request: Request) -> Principal:
    """The authenticated caller; 401 when auth is on and the token is missing or invalid."""
    auth: Authenticator = request.app.state.auth
    if not auth.enabled:
        return ANONYMOUS_ADMIN
    token = _bearer(request)
    if token is None:
        raise AuthError("authentication required: send 'Authorization: Bearer <token>'")
    principal = auth.principal(token)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.admin:
        raise ForbiddenError("this endpoint needs an admin token")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


def authorize(principal: Principal, user_id: str) -> None:
    """403 unless the caller may act for ``user_id`` (it is theirs, or they are an admin)."""
    if not principal.may_act_for(user_id):
        raise ForbiddenError(f"this token may not act for user {user_id!r}")


def own_user_id(user_id: PathId, principal: PrincipalDep) -> str:
    """The path's ``user_id``, once the caller is known to be that user (or an admin)."""
    authorize(principal, user_id)
    return user_id


OwnUserId = Annotated[str, Depends(own_user_id)]


def current_user_id(principal: PrincipalDep) -> str | None:
    """The caller's user id for checks inside the service (None: an admin, acts for anyone)."""
    return None if principal.admin else principal.user_id


def _client_key(request: Request, principal: Principal | None) -> str:
    if principal is not None and principal.user_id is not None:
        return f"user:{principal.user_id}"
    return f"ip:{request.client.host if request.client else 'unknown'}"


def _limit(request: Request, kind: str, principal: Principal | None) -> None:
    limiters: dict[str, RateLimiter] | None = request.app.state.rate_limiters
    if limiters is None:
        return
    wait = limiters[kind].take(_client_key(request, principal))
    if wait > 0:
        retry = max(1, int(wait + 0.999))
        raise HTTPException(
            status_code=429,
            detail=f"too many requests: retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )


def limit_writes(request: Request, principal: PrincipalDep) -> None:
    """429 with ``Retry-After`` once a client (its user id; its address with auth off)
    exceeds the write rate (``CINEREC_RATE_LIMIT_WRITES_PER_S``). An admin token (the
    operator's imports and back-office tools) is not throttled."""
    if principal.admin and principal is not ANONYMOUS_ADMIN:
        return
    _limit(request, "write", principal)


def limit_user_writes(request: Request, user_id: str) -> None:
    """The write limit for a signed-in user of the web page (no bearer token there)."""
    _limit(request, "write", Principal(user_id))


def limit_auth(request: Request) -> None:
    """429 with ``Retry-After`` once an address exceeds the login/register/refresh rate."""
    _limit(request, "auth", None)


ServiceDep = Annotated[RecService, Depends(get_service)]
CallerDep = Annotated[str | None, Depends(current_user_id)]
WriteLimit = Depends(limit_writes)
AuthLimit = Depends(limit_auth)
