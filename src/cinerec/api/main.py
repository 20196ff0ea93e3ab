"""Application assembly: the main app (port 5001) and the event collector (port 5000).

What is mounted depends on two settings (``docs/security.md``): ``contract_a`` mounts the
course grader's open endpoints; ``auth`` makes every user-scoped endpoint check a bearer
token and every admin endpoint an admin token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from cinerec import __version__
from cinerec.api import errors
from cinerec.api.middleware import (
    BodyLimitMiddleware,
    MetricsMiddleware,
    RecsFastPath,
    RequestIdMiddleware,
)
from cinerec.api.routes import (
    admin,
    auth,
    catalog,
    cinema,
    events,
    experiments,
    grader,
    metrics,
    web,
)
from cinerec.api.schemas import MAX_ID, StatusResponse
from cinerec.config import Settings
from cinerec.observability.metrics import RoleMetrics, api_metrics, collector_metrics
from cinerec.security import Authenticator, RateLimiter
from cinerec.service import RecService
from cinerec.training.jobs import TrainingJobs

log = logging.getLogger(__name__)


class App(FastAPI):
    """FastAPI with an optional layer in front of everything it does per request
    (``front``, given the rest of the app): the hot route's fast path (:class:`RecsFastPath`)
    answers there, before FastAPI's per-request telemetry check (OpenTelemetry provider
    look-ups), the error layers and the middleware that every other request passes. Its
    answers are therefore not traced when OpenTelemetry is configured; its metrics and
    request ids it makes itself."""

    front: Callable[[ASGIApp], ASGIApp] | None = None
    _entry: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self._entry
        if entry is None:
            entry = self._entry = (
                self._everything if self.front is None else self.front(self._everything)
            )
        await entry(scope, receive, send)

    async def _everything(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def build_service(settings: Settings) -> RecService:
    svc = RecService(settings)
    if settings.demo_data and svc.load_demo_if_empty():
        log.info("loaded the MovieLens latest-small demo catalogue")
    svc.load(progress=False)
    return svc


def _rate_limiters(settings: Settings) -> dict[str, RateLimiter] | None:
    if not settings.rate_limit:
        return None
    return {
        "write": RateLimiter(settings.rate_limit_writes_per_s, settings.rate_limit_writes_burst),
        "auth": RateLimiter(settings.rate_limit_auth_per_min / 60, settings.rate_limit_auth_burst),
    }


def _app(
    title: str, svc: RecService, owns_service: bool, role: RoleMetrics, fast_recs: bool = False
) -> FastAPI:
    jobs = TrainingJobs(svc.trainer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.stop()
        if owns_service:
            svc.close()

    settings = svc.settings
    app = App(title=title, version=__version__, lifespan=lifespan)
    app.state.service = svc
    app.state.auth = Authenticator(settings)
    app.state.auth.revocations = svc.store.revoked_token_ids
    app.state.rate_limiters = _rate_limiters(settings)
    app.state.jobs = jobs
    app.state.metrics = role
    if fast_recs:
        app.front = lambda stack: RecsFastPath(
            stack, service=svc, route=grader.recs_route(), max_id=MAX_ID, metrics=role.http
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    # The client behind a trusted reverse proxy (X-Forwarded-For), for per-address limits.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    if role.http is not None:  # outermost: times everything, errors included
        app.add_middleware(MetricsMiddleware, metrics=role.http)
    errors.install(app)
    app.add_api_route("/metrics", metrics.metrics, methods=["GET"], include_in_schema=False)

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=StatusResponse,
        responses={503: errors._doc("not ready: a dependency is down or state is loading")},
    )
    def readyz() -> JSONResponse:
        """Readiness for a load balancer: 200 once the state is loaded and the database and
        cache answer; 503 otherwise (the details go to the log, not into the answer)."""
        problems = svc.readiness()
        if problems:
            return JSONResponse(
                status_code=503, content={"detail": f"not ready: {', '.join(problems)}"}
            )
        return JSONResponse(status_code=200, content={"status": "ok"})

    return app


def create_app(service: RecService, *, owns_service: bool = False) -> FastAPI:
    """The whole service: contract A (when ``contract_a``), contract B, ``/api/v1`` and the
    web page (``/web``, with its own sign-in whatever ``auth`` says)."""
    contract_a = service.settings.contract_a
    app = _app("cinerec", service, owns_service, api_metrics(service), fast_recs=contract_a)
    if contract_a:
        app.include_router(grader.router)
        app.include_router(grader.collector)
    app.include_router(auth.router)
    app.include_router(cinema.router)
    app.include_router(catalog.router)
    app.include_router(events.writes)
    app.include_router(events.router)
    app.include_router(admin.router)
    app.include_router(experiments.router)
    web.install(app)
    return app


def create_collector_app(service: RecService, *, owns_service: bool = False) -> FastAPI:
    """The event collector alone (contract A's port 5000): ``/interact`` + ``/healthcheck``
    (when ``contract_a``) and ``/api/v1/events[/batch]``."""
    app = _app("cinerec collector", service, owns_service, collector_metrics())
    if service.settings.contract_a:
        app.include_router(grader.collector)
        app.add_api_route("/healthcheck", grader.healthcheck, methods=["GET"])
    app.include_router(events.writes)
    return app
