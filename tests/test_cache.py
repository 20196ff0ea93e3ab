"""The cache contract on both backends: in-process and the real Redis server."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from cinerec.cache import Cache, MemoryCache, open_cache

REDIS_URL = os.environ.get("CINEREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> Iterator[Cache]:
    if request.param == "memory":
        c: Cache = MemoryCache()
    else:
        c = open_cache(REDIS_URL)
        try:
            c.ping()
        except Exception as exc:
            if os.environ.get("CINEREC_REQUIRE_SERVICES") == "1":
                pytest.fail(f"Redis required but unreachable at {REDIS_URL}: {exc}")
            pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    c.clear()
    yield c
    c.clear()


def test_set_get_clear(cache: Cache) -> None:
    assert cache.get("k") is None
    cache.set("k", ["a", "b"], ttl=60)
    assert cache.get("k") == ["a", "b"]
    cache.clear()
    assert cache.get("k") is None


def test_entries_expire(cache: Cache) -> None:
    cache.set("short", {"x": 1}, ttl=0.05)
    time.sleep(0.15)
    assert cache.get("short") is None


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="memory:// or redis://"):
        open_cache("memcached://x")
