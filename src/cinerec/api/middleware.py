"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs ~1 ms a request)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cinerec.observability.metrics import UNMATCHED, HttpMetrics
from cinerec.service import RecService, UnavailableError, logged, new_id

#: a str as a JSON string literal, ASCII-only (what ``json.dumps`` writes by default)
_json_string = json.encoder.encode_basestring_ascii

REQUEST_ID = b"x-request-id"

log = logging.getLogger(__name__)


def request_id(scope: Scope) -> bytes:
    """The request's ``X-Request-Id`` (at most 128 bytes), or a new one."""
    for k, v in scope["headers"]:
        if k == REQUEST_ID:
            if v:
                return bytes(v[:128])
            break
    return new_id().encode()


class RequestIdMiddleware:
    """Accepts ``X-Request-Id`` (echoed back) or makes one up (:func:`cinerec.service.new_id`:
    a uuid4 per request reads the OS's randomness, which costs more than a cached answer)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid.decode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                headers.append((REQUEST_ID, rid))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit. An ``HTTPException`` so that
    FastAPI's body reading re-raises it as is (any other error there becomes a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"the request body is larger than {limit} bytes: send smaller batches",
        )


class BodyLimitMiddleware:
    """413 for a request body over ``max_bytes``: at once from ``Content-Length``, and while
    a chunked body streams in (counted), so that no oversized body is ever held whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        exc = BodyTooLarge(self.max_bytes)
        body = json.dumps({"detail": exc.detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
            elif k == b"transfer-encoding":
                chunked = True
        if not chunked:  # no body, or one the server frames to its declared length
            await self.app(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._reject(send)


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


class RecsFastPath:
    """``GET /recs/{user_id}`` (contract A's hot route) answered straight from the user's
    plan, in front of the whole middleware stack, FastAPI's routing and dependency
    resolution, which together cost more than the list itself. It answers only a list the
    plan serves at once; anything else (an id the route would refuse, a plan that must be
    made first) goes on through the stack to the FastAPI route, which serves the same list
    the slower way, so both give the same answers. What the stack's layers would add to
    its answers it does itself: the request id (as :class:`RequestIdMiddleware`) and the
    request's metrics under the route's template (as :class:`MetricsMiddleware`)."""

    PREFIX = "/recs/"

    def __init__(
        self,
        app: ASGIApp,
        service: RecService,
        route: BaseRoute,
        max_id: int,
        metrics: HttpMetrics | None = None,
    ) -> None:
        self.app = app
        self.service = service
        #: the route template the metrics label its lists with
        self.path: str = getattr(route, "path", "/recs/{user_id}")
        self.max_id = max_id
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        user_id = path[len(self.PREFIX) :]
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not path.startswith(self.PREFIX)
            or not 0 < len(user_id) <= self.max_id
            or "/" in user_id
        ):
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        try:
            result = self.service.try_recommend(user_id, loop=asyncio.get_running_loop())
        except Exception:  # a bug: the stack's route serves the list (and counts its error)
            log.exception("the fast path failed on %s", path)
            result = None
        if result is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json"), (REQUEST_ID, request_id(scope))]
        try:
            await logged(result)
        except UnavailableError as exc:  # as the route's error handler answers
            status = 503
            raw = json.dumps({"detail": str(exc)}, separators=(",", ":")).encode()
            headers.append((b"retry-after", b"1"))
        else:
            # ``json.dumps`` of the same body, without building an encoder per answer
            status = 200
            ids = ",".join(map(_json_string, [i.movie_id for i in result.items]))
            raw = b'{"item_ids":[' + ids.encode() + b"]}"
        headers.append((b"content-length", str(len(raw)).encode()))
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": raw})
        finally:
            if self.metrics is not None:
                self.metrics.observe("GET", self.path, status, time.perf_counter() - t0)
