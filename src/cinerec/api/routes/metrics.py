"""``GET /metrics``: this role's Prometheus registry in the text exposition format."""

from __future__ import annotations

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def metrics(request: Request) -> Response:
    """Every series of the app's role (``docs/observability.md``)."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
