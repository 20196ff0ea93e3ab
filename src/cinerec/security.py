"""Accounts, tokens and limits, free of HTTP (the API's ``deps.py`` turns them into 401/403/429).

- Passwords: Argon2id through ``pwdlib``.
- Our tokens: HS256 JWTs signed with ``jwt_secret``; ``sub`` is the user id, ``role`` is
  ``user`` or ``admin``, ``typ`` is ``access`` (short-lived) or ``refresh``.
- External tokens: HS256 with the same shared secret, or RS256/ES256 with ``jwt_public_key``.
  The key is chosen by the token's ``alg`` and only that algorithm is accepted with it, so an
  HS256 token can never be checked against the public key (algorithm confusion).
- The operator's admin token is an opaque string compared in constant time.

See ``docs/security.md`` for the threat model.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from pwdlib import PasswordHash

from cinerec.config import Settings

if TYPE_CHECKING:
    from cinerec.store import Store

log = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "admin_token"
JWT_SECRET_FILE = "jwt_secret"
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
#: claims an external service may use for the user id (seed 000 puts it in ``id``)
USER_CLAIMS = ("sub", "id")
#: how long a process trusts its copy of the signed-out sessions before reading it again
REVOCATIONS_TTL_S = 5.0


def new_session_id() -> str:
    return uuid.uuid4().hex


class AuthError(Exception):
    """The caller could not be authenticated (401)."""


class ForbiddenError(Exception):
    """The caller is authenticated but may not do this (403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (acting for ``user_id`` only) or an admin (for anyone)."""

    user_id: str | None
    admin: bool = False

    def may_act_for(self, user_id: str) -> bool:
        return self.admin or self.user_id == user_id


def secret_file(data_dir: Path, name: str) -> tuple[str, Path, bool]:
    """Read ``data_dir/name``, or create it with a random token, owner-only (0600).
    Returns ``(token, path, created)``."""
    path = Path(data_dir) / name
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token, path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token, path, True


def _public_key(value: str) -> str:
    if value.lstrip().startswith("-----BEGIN"):
        return value
    return Path(value).read_text()


class Authenticator:
    """Checks bearer tokens and issues our own; one per running app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enabled = settings.auth
        data_dir = Path(settings.data_dir)
        self.admin_token: str | None = None
        self.admin_token_path: Path | None = None
        if settings.admin_token is not None:
            self.admin_token = settings.admin_token.get_secret_value()
        elif self.enabled:
            token, path, created = secret_file(data_dir, ADMIN_TOKEN_FILE)
            self.admin_token, self.admin_token_path = token, path
            log.warning(
                "no CINEREC_ADMIN_TOKEN set: %s the admin token in %s (owner-only)",
                "generated" if created else "using",
                path.resolve(),
            )
        if settings.jwt_secret is not None:
            self.jwt_secret = settings.jwt_secret.get_secret_value()
        elif self.enabled:
            self.jwt_secret, _, _ = secret_file(data_dir, JWT_SECRET_FILE)
        else:
            self.jwt_secret = secrets.token_urlsafe(32)  # tokens are not checked anyway
        self.public_key = _public_key(settings.jwt_public_key) if settings.jwt_public_key else None
        #: reads the ids signed out and not expired by a time (the app sets the store's)
        self.revocations: Callable[[float], set[str]] | None = None
        self._revoked: set[str] = set()
        self._revoked_at = -math.inf
        self._revoked_lock = threading.Lock()
        self.hasher = PasswordHash.recommended()
        # A login for an unknown user still spends one Argon2 verification (no timing oracle).
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    # -- passwords -------------------------------------------------------------------------
    def hash_password(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify_password(self, password: str, password_hash: str | None) -> bool:
        if password_hash is None:
            self.hasher.verify(password, self._dummy_hash)
            return False
        try:
            return bool(self.hasher.verify(password, password_hash))
        except Exception:  # a malformed stored hash is a failed login, not a 500
            log.exception("could not verify a stored password hash")
            return False

    # -- tokens ----------------------------------------------------------------------------
    def issue(self, user_id: str, role: str, typ: str, sid: str | None = None) -> tuple[str, int]:
        """A token of type ``typ`` (access or refresh) of the sign-in session ``sid`` (a new
        one when None): every token a sign-in and its refreshes issue carries the same
        ``sid``, so signing out ends all of them."""
        ttl = (
            self.settings.access_token_ttl_s
            if typ == "access"
            else self.settings.refresh_token_ttl_s
        )
        now = int(time.time())
        claims = {
            "sub": user_id,
            "role": role,
            "typ": typ,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "sid": sid or new_session_id(),
        }
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256"), ttl

    def issue_pair(
        self, user_id: str, role: str, sid: str | None = None
    ) -> tuple[str, int, str, int]:
        """An access and a refresh token of one sign-in session (a new one when ``sid`` is
        None: a sign-in; a refresh passes its session): the tokens and their lifetimes."""
        sid = sid or new_session_id()
        access, access_ttl = self.issue(user_id, role, "access", sid)
        refresh, refresh_ttl = self.issue(user_id, role, "refresh", sid)
        return access, access_ttl, refresh, refresh_ttl

    @staticmethod
    def session_of(claims: dict[str, Any]) -> str | None:
        """The sign-in session of our token's claims (tokens from before sessions: their
        own id)."""
        sid = claims.get("sid", claims.get("jti"))
        return sid if isinstance(sid, str) else None

    def access_claims(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token whose session was not signed out; raises
        :class:`AuthError`. Sign-outs are read from the store at most every
        ``REVOCATIONS_TTL_S`` (another process's sign-out takes that long to reach this
        one; this process's own, none)."""
        claims = self.decode(token)
        if self._revoked_now(self.session_of(claims)):
            raise AuthError("this session was signed out: log in again")
        return claims

    def _revoked_now(self, sid: str | None) -> bool:
        if self.revocations is None or sid is None:
            return False
        with self._revoked_lock:
            if time.monotonic() - self._revoked_at > REVOCATIONS_TTL_S:
                try:
                    self._revoked = self.revocations(time.time())
                    self._revoked_at = time.monotonic()
                except Exception:  # the store is down: go on with what was read last
                    log.warning("could not read the signed-out sessions", exc_info=True)
            return sid in self._revoked

    def decode(self, token: str, typ: str = "access") -> dict[str, Any]:
        """The claims of a valid token of type ``typ``; raises :class:`AuthError`."""
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise AuthError("the bearer token is not a JWT") from exc
        if alg == "HS256":
            key: str = self.jwt_secret
        elif alg in ASYMMETRIC_ALGORITHMS and self.public_key is not None:
            key = self.public_key
        else:
            raise AuthError(f"tokens signed with {alg!r} are not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[alg], options={"require": ["exp"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the token has expired: log in or refresh it") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        # Our refresh tokens are not access tokens (and vice versa); external tokens carry
        # no "typ" and are access tokens.
        if claims.get("typ", "access") != typ:
            raise AuthError(f"a {claims.get('typ')} token cannot be used here; send a {typ} token")
        return claims

    def refresh_claims(self, token: str, store: Store) -> dict[str, Any]:
        """The claims of a valid refresh token whose session was not signed out; raises
        :class:`AuthError`. (Reads the store: call it off the event loop.)"""
        claims = self.decode(token, typ="refresh")
        sid = self.session_of(claims)
        if sid is not None and store.is_token_revoked(sid):
            raise AuthError("this refresh token was signed out: log in again")
        return claims

    def sign_out(self, token: str, store: Store) -> None:
        """End the sign-in session of a valid refresh token: it, the tokens refreshed from
        it and their access tokens are refused from now on (again: no change); raises
        :class:`AuthError` for anything else. (Writes the store: call it off the event loop.)
        The session's revocation lasts as long as a refresh token issued just now would."""
        claims = self.decode(token, typ="refresh")
        sid = self.session_of(claims)
        if sid is not None:
            store.revoke_token(sid, time.time() + self.settings.refresh_token_ttl_s)
            with self._revoked_lock:
                self._revoked.add(sid)

    def principal(self, token: str) -> Principal:
        """The caller behind a bearer token (admin token or JWT); raises :class:`AuthError`."""
        if self.admin_token and hmac.compare_digest(
            token.encode("utf-8", "surrogateescape"), self.admin_token.encode()
        ):
            return Principal(None, admin=True)
        claims = self.access_claims(token)
        roles = claims.get("roles") or []
        admin = claims.get("role") == "admin" or (isinstance(roles, list) and "admin" in roles)
        user_id = next(
            (str(claims[c]) for c in USER_CLAIMS if isinstance(claims.get(c), str | int)), None
        )
        if user_id is None and not admin:
            raise AuthError("the token names no user (claim 'sub' or 'id')")
        if user_id is not None and not 1 <= len(user_id) <= 128:
            raise AuthError("the token's user id must be 1-128 characters")
        return Principal(user_id, admin=admin)


class RateLimiter:
    """Token buckets per key (a client address or a user id): ``rate`` tokens a second up to
    ``burst``. Keys idle long enough to be full again are dropped, so memory stays bounded
    by the clients active in the last ``burst / rate`` seconds."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def take(self, key: str) -> float:
        """Spend one token; returns 0 if allowed, else the seconds until one is available."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
            if len(self._buckets) > self.max_keys or now - self._last_sweep > 60:
                self._sweep(now)
        return wait

    def _sweep(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
        if len(self._buckets) > self.max_keys:  # a flood of distinct keys: forget the oldest
            keep = sorted(self._buckets.items(), key=lambda kv: kv[1][1])[-self.max_keys // 2 :]
            self._buckets = dict(keep)
        self._last_sweep = now
