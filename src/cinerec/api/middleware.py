"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs ~1 ms a request)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cinerec.observability.metrics import UNMATCHED, HttpMetrics

REQUEST_ID = b"x-request-id"


class RequestIdMiddleware:
    """Accepts ``X-Request-Id`` (echoed back) or makes one up."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid: bytes | None = None
        for k, v in scope["headers"]:
            if k == REQUEST_ID:
                rid = v[:128]
                break
        if not rid:
            rid = uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = rid.decode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                headers.append((REQUEST_ID, rid))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class MetricsMiddleware:
    """Times every HTTP request into :class:`~cinerec.observability.metrics.HttpMetrics`,
    labelled by the route template the router matched (``/recs/{user_id}``), never the raw
    path, so that the number of series stays bounded."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # an exception before the response starts is answered with a 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            self.metrics.observe(
                scope["method"],
                getattr(route, "path", None) or UNMATCHED,
                status,
                time.perf_counter() - t0,
            )
