"""In-process API fixtures: a fresh service on an in-memory SQLite store per test, the main
app and the collector app driven by FastAPI's TestClient, and small catalogue builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from cinerec.api.main import create_app, create_collector_app
from cinerec.config import Settings, load_settings
from cinerec.service import RecService

#: the operator's token in these tests (CINEREC_ADMIN_TOKEN)
ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: the HS256 key shared with an "external auth service" (CINEREC_JWT_SECRET)
JWT_SECRET = "test-jwt-secret-of-32-bytes-or-more!"

GENRES = ["Drama", "Comedy", "Action", "Horror", "Romance", "Sci-Fi", "Western", "Animation"]

AddItems = Callable[..., list[str]]


def genre_of(i: int) -> str:
    """The one genre of the i-th movie made by :func:`add_items` (round robin)."""
    return GENRES[i % len(GENRES)]


def api_settings(**overrides: object) -> Settings:
    """Production defaults (auth on, contract A on) with a known admin token; rate limits
    off unless a test turns them on (these tests send hundreds of writes a second)."""
    return load_settings(
        **{
            "database_url": "sqlite:///:memory:",
            "admin_token": ADMIN_TOKEN,
            "jwt_secret": JWT_SECRET,
            "rate_limit": False,
            **overrides,
        }
    )


@pytest.fixture
def svc() -> Iterator[RecService]:
    service = RecService(api_settings())
    yield service
    service.close()


@pytest.fixture
def client(svc: RecService) -> Iterator[TestClient]:
    """The main app (contract A, contract B, /api/v1) with the admin token on every request
    (an admin may act for any user; tests/api/test_security.py covers everyone else);
    raises server errors as exceptions."""
    with TestClient(create_app(svc), headers=ADMIN) as c:
        yield c


@pytest.fixture
def collector(svc: RecService) -> Iterator[TestClient]:
    """The event collector app (contract A's port 5000) on the same service."""
    with TestClient(create_collector_app(svc)) as c:
        yield c


@pytest.fixture
def add_items(client: TestClient) -> AddItems:
    """``add_items(n, prefix="m", batch=None)``: add ``n`` movies ``{prefix}{i}`` with the
    genre :func:`genre_of(i) <genre_of>` through ``/add_items``, in batches; returns the ids."""

    def add(n: int, prefix: str = "m", batch: int | None = None) -> list[str]:
        ids = [f"{prefix}{i}" for i in range(n)]
        step = batch or n
        for lo in range(0, n, step):
            chunk = range(lo, min(n, lo + step))
            r = client.post(
                "/add_items",
                json={
                    "item_ids": [ids[i] for i in chunk],
                    "genres": [[genre_of(i)] for i in chunk],
                },
            )
            assert r.status_code == 200, r.text
        return ids

    return add


def recs(client: TestClient, user_id: str) -> list[str]:
    r = client.get(f"/recs/{user_id}")
    assert r.status_code == 200, r.text
    ids = r.json()["item_ids"]
    assert all(isinstance(i, str) for i in ids)
    return ids


@pytest.fixture
def get_recs(client: TestClient) -> Callable[[str], list[str]]:
    """``get_recs(user_id)``: the ``item_ids`` of ``GET /recs/{user_id}`` (asserts 200)."""
    return lambda user_id: recs(client, user_id)
