"""Every expected failure becomes a 4xx whose message says what to fix."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cinerec.engine import UnknownSourceError
from cinerec.security import AuthError, ForbiddenError
from cinerec.service import ConflictError, InvalidInputError, NotFoundError, UnavailableError
from cinerec.service import ForbiddenError as SessionForbiddenError
from cinerec.store import RefusedValueError, StoreUnavailableError


class FieldError(BaseModel):
    field: str = Field(description="where, e.g. item_ids.3 or query.k")
    message: str


class ErrorOut(BaseModel):
    """Every error answer: ``detail`` says what went wrong and what to fix."""

    detail: str
    errors: list[FieldError] | None = Field(
        None, description="one entry per invalid field (422 validation errors)"
    )


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


#: error answers every route may give (merged into each router's OpenAPI ``responses``)
COMMON: dict[int | str, dict[str, Any]] = {
    400: _doc("the body is not valid JSON"),
    413: _doc("the request body is larger than CINEREC_MAX_BODY_BYTES"),
    422: _doc("invalid input; detail and errors say what to fix"),
}
AUTH: dict[int | str, dict[str, Any]] = {
    401: _doc("no bearer token, or an invalid or expired one"),
    403: _doc("the token may not do this (another user's data, or not an admin)"),
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: _doc(
        "a dependency (database, event broker, Redis) is down: nothing was stored; retry "
        "after Retry-After seconds"
    )
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _doc("the named thing does not exist")}
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: _doc("too many requests from this client: wait Retry-After seconds")
}


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


async def conflict(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=409, content={"detail": str(exc)})


async def unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A dependency is down (database, broker, Redis): nothing was done; retry later."""
    detail = str(exc)
    if isinstance(exc, StoreUnavailableError):
        detail = "the database does not answer: nothing was changed; retry shortly"
    return JSONResponse(status_code=503, content={"detail": detail}, headers={"Retry-After": "1"})


async def unknown_source(request: Request, exc: Exception) -> JSONResponse:
    svc = request.app.state.service
    known = ", ".join(sorted(svc.engine.recommenders))
    return JSONResponse(
        status_code=422, content={"detail": f"unknown source {exc}; available: {known}"}
    )


async def unstorable(request: Request, exc: Exception) -> JSONResponse:
    """Input the database refuses (PostgreSQL: NUL characters, an id longer than its column,
    a number out of range) is the client's mistake, not a server error."""
    return JSONResponse(status_code=422, content={"detail": f"a value cannot be stored: {exc}"})


async def unauthenticated(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        status_code=401, content={"detail": str(exc)}, headers={"WWW-Authenticate": "Bearer"}
    )


async def forbidden(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=403, content={"detail": str(exc)})


def install(app: FastAPI) -> None:
    app.add_exception_handler(AuthError, unauthenticated)
    app.add_exception_handler(ForbiddenError, forbidden)
    app.add_exception_handler(SessionForbiddenError, forbidden)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(InvalidInputError, invalid_input)
    app.add_exception_handler(ConflictError, conflict)
    app.add_exception_handler(UnknownSourceError, unknown_source)
    app.add_exception_handler(RefusedValueError, unstorable)
    app.add_exception_handler(UnavailableError, unavailable)
    app.add_exception_handler(StoreUnavailableError, unavailable)
