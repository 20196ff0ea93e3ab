"""Every expected failure becomes a 4xx whose message says what to fix."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from cinerec.engine import UnknownSourceError
from cinerec.service import InvalidInputError, NotFoundError, UnavailableError


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return JSONResponse(
                status_code=400,
                content={
                    "detail": "the request body is not valid JSON: "
                    f"{err.get('ctx', {}).get('error', 'parse error')}"
                },
            )
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "model_attributes_type" and tuple(err.get("loc", ())) == ("body",):
            msg = "the body must be a JSON object (send Content-Type: application/json)"
        errors.append({"field": _where(tuple(err.get("loc", ()))), "message": msg})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return JSONResponse(status_code=422, content={"detail": summary, "errors": errors})


async def not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": str(exc)})


async def invalid_input(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": str(exc)})


async def unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": "1"})


async def unknown_source(request: Request, exc: Exception) -> JSONResponse:
    svc = request.app.state.service
    known = ", ".join(sorted(svc.engine.recommenders))
    return JSONResponse(
        status_code=422, content={"detail": f"unknown source {exc}; available: {known}"}
    )


async def unstorable(request: Request, exc: Exception) -> JSONResponse:
    """Input the database refuses (PostgreSQL: NUL characters, an id longer than its column,
    a number out of range) is the client's mistake, not a server error."""
    assert isinstance(exc, DataError)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "invalid value"
    return JSONResponse(status_code=422, content={"detail": f"a value cannot be stored: {reason}"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(InvalidInputError, invalid_input)
    app.add_exception_handler(UnknownSourceError, unknown_source)
    app.add_exception_handler(DataError, unstorable)
    app.add_exception_handler(UnavailableError, unavailable)
