"""Storage: one interface (:class:`Store`), one file per backend, chosen by URL scheme."""

from __future__ import annotations

from cinerec.store.base import (
    EventRow,
    RefusedValueError,
    Store,
    StoreError,
    StoreUnavailableError,
)


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store named by ``url`` (``sqlite:///…`` or ``postgresql://…``)."""
    store: Store
    if url.startswith("sqlite"):
        from cinerec.store.sqlite import SqliteStore

        store = SqliteStore(url)
    elif url.startswith(("postgresql", "postgres://")):
        from cinerec.store.postgres import PostgresStore

        store = PostgresStore(url)
    else:
        raise StoreError(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://…")
    if migrate:
        store.migrate()
    return store


__all__ = [
    "EventRow",
    "RefusedValueError",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "open_store",
]
