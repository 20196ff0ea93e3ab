"""Shared fixtures. Real servers, no mocks: PostgreSQL at ``CINEREC_TEST_POSTGRES_URL``
(default ``postgresql://postgres@127.0.0.1:5432/test``). Tests that need it skip when it is
unreachable, unless ``CINEREC_REQUIRE_SERVICES=1`` (set by ``.ci/run``), which turns a
missing server into a failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cinerec.store import Store, open_store

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

POSTGRES_URL = os.environ.get(
    "CINEREC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("CINEREC_REQUIRE_SERVICES") == "1"
DEMO_DIR = (
    Path(__file__).resolve().parent.parent / "src" / "cinerec" / "demo_data" / "ml-latest-small"
)
SHARED_DATASETS = Path(
    os.environ.get("CINEREC_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")
)


def _postgres_store() -> Store:
    try:
        store = open_store(POSTGRES_URL)
    except Exception as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL required but unreachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}")
    return store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated store on each backend."""
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'test.db'}")
    else:
        s = _postgres_store()
    s.wipe()
    yield s
    s.wipe()
    s.close()
