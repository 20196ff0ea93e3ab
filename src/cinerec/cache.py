"""Cache interface: in-process by default (``memory://``), Redis when ``redis://…`` is given.

Values are JSON-serialisable. Used for answers that are costly to build and shared across
users (genre tops); ``clear()`` is part of ``/cleanup``.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from typing import Any


class Cache(ABC):
    url: str

    @abstractmethod
    def get(self, key: str) -> Any | None: ...

    @abstractmethod
    def set(self, key: str, value: Any, ttl: float) -> None: ...

    @abstractmethod
    def clear(self) -> None: ...

    @abstractmethod
    def ping(self) -> None: ...


class MemoryCache(Cache):
    def __init__(self, max_items: int = 10_000) -> None:
        self.url = "memory://"
        self.max_items = max_items
        self._data: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            expires, value = hit
            if expires < time.monotonic():
                del self._data[key]
                return None
            return value

    def set(self, key: str, value: Any, ttl: float) -> None:
        with self._lock:
            if len(self._data) >= self.max_items:
                self._data.clear()  # crude but bounded; entries are cheap to rebuild
            self._data[key] = (time.monotonic() + ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def ping(self) -> None:
        return None


class RedisCache(Cache):
    prefix = "cinerec:"

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def get(self, key: str) -> Any | None:
        raw = self.client.get(self.prefix + key)
        return json.loads(raw) if raw is not None else None  # type: ignore[arg-type]

    def set(self, key: str, value: Any, ttl: float) -> None:
        self.client.set(self.prefix + key, json.dumps(value), px=int(ttl * 1000))

    def clear(self) -> None:
        keys = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            self.client.delete(*keys)

    def ping(self) -> None:
        self.client.ping()


def open_cache(url: str) -> Cache:
    if url.startswith("memory"):
        return MemoryCache()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(url)
    raise ValueError(f"unsupported cache URL {url!r}: use memory:// or redis://host:port/db")
