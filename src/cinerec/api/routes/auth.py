"""Accounts and tokens: register, log in, refresh (``docs/security.md``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StringConstraints

from cinerec.api import errors
from cinerec.api.deps import AuthLimit, ServiceDep, get_auth
from cinerec.api.schemas import Id
from cinerec.domain import Account
from cinerec.security import Authenticator, AuthError
from cinerec.service import InvalidInputError

router = APIRouter(
    prefix="/api/v1/auth",
    tags=["accounts"],
    dependencies=[AuthLimit],
    responses={**errors.COMMON, 401: errors.AUTH[401], **errors.RATE_LIMITED},
)

AuthDep = Annotated[Authenticator, Depends(get_auth)]
#: long enough for a passphrase, short enough that hashing it costs nothing unusual
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]


class Credentials(BaseModel):
    user_id: Id = Field(description="your user id everywhere else in the API")
    password: Password


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class AccountOut(BaseModel):
    user_id: str
    role: str


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds the access token is valid")


def _tokens(auth: Authenticator, user_id: str, role: str, sid: str | None = None) -> TokenOut:
    access, ttl, refresh, _ = auth.issue_pair(user_id, role, sid)
    return TokenOut(access_token=access, refresh_token=refresh, expires_in=ttl)


@router.post(
    "/register",
    response_model=AccountOut,
    status_code=201,
    responses={409: errors._doc("the user id already has an account")},
)
async def register(body: Credentials, svc: ServiceDep, auth: AuthDep) -> AccountOut:
    """Create an account for a user id (role ``user``). Then log in for tokens."""
    password_hash = await run_in_threadpool(auth.hash_password, body.password)
    created = await run_in_threadpool(svc.store.add_account, Account(body.user_id, password_hash))
    if not created:
        raise HTTPException(409, f"user {body.user_id!r} already has an account: log in")
    return AccountOut(user_id=body.user_id, role="user")


@router.post("/login", response_model=TokenOut)
async def login(body: Credentials, svc: ServiceDep, auth: AuthDep) -> TokenOut:
    """An access token (``Authorization: Bearer …``, short-lived) and a refresh token."""
    account = await run_in_threadpool(svc.store.get_account, body.user_id)
    ok = await run_in_threadpool(
        auth.verify_password, body.password, account.password_hash if account else None
    )
    if not ok or account is None:
        raise AuthError("wrong user id or password")
    return _tokens(auth, account.user_id, account.role)


@router.post("/refresh", response_model=TokenOut)
async def refresh(body: RefreshRequest, svc: ServiceDep, auth: AuthDep) -> TokenOut:
    """A new access token (and refresh token) for a valid refresh token."""
    claims = await run_in_threadpool(auth.refresh_claims, body.refresh_token, svc.store)
    user_id = claims.get("sub")
    if not isinstance(user_id, str):
        raise InvalidInputError("the refresh token names no user")
    account = await run_in_threadpool(svc.store.get_account, user_id)
    if account is None:  # deleted (or wiped) since the token was issued
        raise AuthError("the account of this refresh token no longer exists")
    return _tokens(auth, account.user_id, account.role, auth.session_of(claims))


@router.post("/logout", status_code=204, response_class=Response)
async def logout(body: RefreshRequest, svc: ServiceDep, auth: AuthDep) -> Response:
    """Sign out the session of a refresh token: it, the tokens refreshed from it and their
    access tokens are refused from now on (on other API processes within 5 s); the other
    devices' sessions go on. Signing out twice is fine."""
    await run_in_threadpool(auth.sign_out, body.refresh_token, svc.store)
    return Response(status_code=204)
