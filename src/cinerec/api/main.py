"""Application assembly: the main app (port 5001) and the event collector (port 5000)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cinerec import __version__
from cinerec.api import errors
from cinerec.api.middleware import MetricsMiddleware, RequestIdMiddleware
from cinerec.api.routes import admin, catalog, cinema, events, grader, metrics
from cinerec.config import Settings
from cinerec.observability.metrics import RoleMetrics, api_metrics, collector_metrics
from cinerec.service import RecService

log = logging.getLogger(__name__)


def build_service(settings: Settings) -> RecService:
    svc = RecService(settings)
    if settings.demo_data and svc.load_demo_if_empty():
        log.info("loaded the MovieLens latest-small demo catalogue")
    svc.load(progress=False)
    return svc


def _app(title: str, svc: RecService, owns_service: bool, role: RoleMetrics) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_service:
            svc.close()

    app = FastAPI(title=title, version=__version__, lifespan=lifespan)
    app.state.service = svc
    app.state.metrics = role
    app.add_middleware(RequestIdMiddleware)
    if role.http is not None:  # outermost: times everything, errors included
        app.add_middleware(MetricsMiddleware, metrics=role.http)
    errors.install(app)
    app.add_api_route("/metrics", metrics.metrics, methods=["GET"], include_in_schema=False)
    return app


def create_app(service: RecService, *, owns_service: bool = False) -> FastAPI:
    """The whole service: contract A, contract B and ``/api/v1``."""
    app = _app("cinerec", service, owns_service, api_metrics(service))
    app.include_router(grader.router)
    app.include_router(grader.collector)
    app.include_router(cinema.router)
    app.include_router(catalog.router)
    app.include_router(events.router)
    app.include_router(admin.router)
    return app


def create_collector_app(service: RecService) -> FastAPI:
    """The event collector alone (contract A's port 5000): ``/interact`` + ``/healthcheck``."""
    app = _app("cinerec collector", service, False, collector_metrics())
    app.include_router(grader.collector)
    app.add_api_route("/healthcheck", grader.healthcheck, methods=["GET"])
    return app
