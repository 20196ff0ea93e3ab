"""Dependency aliases shared by the routers (after the FastAPI template's ``api/deps.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cinerec.service import RecService


def get_service(request: Request) -> RecService:
    return request.app.state.service


def current_user_id(request: Request) -> str | None:
    """Authentication seam: returns the caller's user id once bearer tokens are checked
    (a later issue). Today every caller is anonymous and may act for any user."""
    return None


ServiceDep = Annotated[RecService, Depends(get_service)]
CallerDep = Annotated[str | None, Depends(current_user_id)]
