"""The store interface. Every backend (``sqlite.py``, ``postgres.py``) implements it and the
contract suite ``tests/store/test_contract.py`` runs against each one.

Ids are strings here; the store never sees the engine's dense integers.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence

from cinerec.domain import (
    Account,
    Event,
    EventKind,
    Experiment,
    Feedback,
    ModelRecord,
    Movie,
    RecLogEntry,
    User,
)

#: One event as the bulk path takes it, in column order:
#: ``(user_id, movie_id, kind, value, ts, client_event_id)``.
EventRow = tuple[str, str, str, float | None, float, str | None]

#: words of a title search that count (more say nothing a title would match)
MAX_SEARCH_TERMS = 8


def search_terms(query: str) -> list[str]:
    """The words of a title search, lower-cased: letters, digits and underscores only, so
    that nothing a user types is read as full-text query syntax."""
    return re.findall(r"\w+", query.lower())[:MAX_SEARCH_TERMS]


class StoreError(Exception):
    """Base class for store failures the caller can act on."""


class RefusedValueError(StoreError, ValueError):
    """The database refuses a value (PostgreSQL: a NUL character, an id longer than its
    column, a number out of range): the caller's input, not a server fault."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached now (down, a broken connection, SQLite locked too
    long): nothing was written; the caller answers "retry later", not a server fault."""


class Store(ABC):
    """Durable state: catalogue, users, events, recommendation log, feedback.

    Every write method returns only after the data is committed: a caller may then tell its
    client that the write is durable.
    """

    url: str

    # -- lifecycle -----------------------------------------------------------------------
    @abstractmethod
    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic ``upgrade head``)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""

    @abstractmethod
    def wipe(self) -> None:
        """Delete every row of every table (the schema stays)."""

    @abstractmethod
    def close(self) -> None: ...

    # -- catalogue -----------------------------------------------------------------------
    @abstractmethod
    def upsert_movies(self, movies: Sequence[Movie]) -> int:
        """Insert or replace movies by id; returns how many were written."""

    @abstractmethod
    def get_movie(self, movie_id: str) -> Movie | None: ...

    @abstractmethod
    def get_movies(self, movie_ids: Sequence[str]) -> dict[str, Movie]: ...

    @abstractmethod
    def iter_movies(self) -> Iterator[Movie]:
        """Every movie, hidden ones included, in insertion order."""

    @abstractmethod
    def count_movies(self) -> int: ...

    @abstractmethod
    def set_movie_hidden(self, movie_id: str, hidden: bool) -> bool:
        """Returns False when the movie does not exist."""

    @abstractmethod
    def search_movies(self, query: str, limit: int = 20) -> list[Movie]:
        """Visible movies whose title has every word of ``query`` (the last one as a
        prefix, so a title is found while it is typed), best match first, with the
        database's own full-text index (SQLite FTS5, PostgreSQL ``tsvector``). Empty for a
        query with no words."""

    # -- users ---------------------------------------------------------------------------
    @abstractmethod
    def upsert_users(self, users: Sequence[User]) -> int: ...

    @abstractmethod
    def get_user(self, user_id: str) -> User | None: ...

    @abstractmethod
    def iter_users(self) -> Iterator[User]: ...

    # -- events --------------------------------------------------------------------------
    @abstractmethod
    def add_events(self, events: Sequence[Event]) -> list[bool]:
        """Store events durably. Returns, per event, True if it was new and False if an event
        with the same ``(user_id, client_event_id)`` was already stored (a retry)."""

    @abstractmethod
    def load_events(self, rows: Sequence[EventRow]) -> int:
        """Bulk load (imports, the generator): store ``rows`` in one transaction by the
        backend's fastest path (SQLite: one prepared statement over all rows; PostgreSQL:
        ``COPY``) and return how many were new. The semantics of :meth:`add_events` hold: a
        row whose ``(user_id, client_event_id)`` is already stored, or earlier in ``rows``, is
        skipped; ids grow in row order. What it saves is the per-event answer and building
        an :class:`Event` per row, which cost more than the database at import sizes."""

    @abstractmethod
    def iter_events(
        self, after_id: int = 0, batch_size: int = 50_000
    ) -> Iterator[tuple[int, Event]]:
        """Events with id > ``after_id`` in id order (ids grow with arrival)."""

    @abstractmethod
    def user_events(
        self,
        user_id: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Event]:
        """A user's stored events in the order they were stored (or newest first), paged."""

    @abstractmethod
    def count_events(self) -> int: ...

    @abstractmethod
    def last_event_id(self) -> int: ...

    # -- recommendation log and feedback -------------------------------------------------
    @abstractmethod
    def log_recommendations(self, entries: Iterable[RecLogEntry]) -> None: ...

    @abstractmethod
    def get_rec_log(self, session_id: str) -> RecLogEntry | None: ...

    @abstractmethod
    def iter_rec_log(self) -> Iterator[RecLogEntry]: ...

    @abstractmethod
    def purge_rec_log(self, before: float) -> int:
        """Delete the lists logged before ``before`` (Unix s) and their feedback; returns
        how many lists went."""

    @abstractmethod
    def user_rec_log(self, user_id: str) -> list[RecLogEntry]:
        """Every list logged for one user, oldest first (restores a lost shown set)."""

    @abstractmethod
    def add_feedback(self, feedback: Feedback) -> None: ...

    @abstractmethod
    def session_feedback(self, session_id: str) -> list[Feedback]: ...

    @abstractmethod
    def iter_feedback(self) -> Iterator[Feedback]: ...

    # -- windows for online quality (docs/observability.md) -----------------------------
    # Defaults filter the full iterators; backends override them with one query.
    def iter_rec_log_since(self, ts: float) -> Iterator[RecLogEntry]:
        """Log entries shown at or after ``ts``."""
        return (e for e in self.iter_rec_log() if e.ts >= ts)

    def iter_feedback_since(self, ts: float) -> Iterator[Feedback]:
        """Feedback given at or after ``ts``."""
        return (f for f in self.iter_feedback() if f.ts >= ts)

    def iter_events_since(self, ts: float, kinds: Sequence[EventKind] = ()) -> Iterator[Event]:
        """Events with an event time at or after ``ts`` (of ``kinds`` only, when given)."""
        wanted = set(kinds)
        return (e for _, e in self.iter_events() if e.ts >= ts and (not wanted or e.kind in wanted))

    @abstractmethod
    def iter_experiment_log(self, experiment_id: str) -> Iterator[RecLogEntry]:
        """The lists logged in one experiment, in log order."""

    # -- experiments ---------------------------------------------------------------------
    @abstractmethod
    def save_experiment(self, experiment: Experiment) -> None:
        """Insert an experiment or replace the stored one with the same id."""

    @abstractmethod
    def get_experiment(self, experiment_id: str) -> Experiment | None: ...

    @abstractmethod
    def list_experiments(self) -> list[Experiment]:
        """Newest first."""

    # -- model registry ------------------------------------------------------------------
    @abstractmethod
    def add_model(self, record: ModelRecord) -> None:
        """Register a model version; a ``serving`` one retires the previous serving one of
        the same kind in the same transaction."""

    @abstractmethod
    def list_models(self, limit: int = 100) -> list[ModelRecord]:
        """Newest first."""

    @abstractmethod
    def serving_models(self) -> list[ModelRecord]:
        """The serving version of each kind, best first by ``metrics['ndcg@10']``."""

    # -- accounts ------------------------------------------------------------------------
    @abstractmethod
    def add_account(self, account: Account) -> bool:
        """Create an account; returns False (and changes nothing) if the user id has one."""

    @abstractmethod
    def get_account(self, user_id: str) -> Account | None: ...

    @abstractmethod
    def revoke_token(self, jti: str, expires_at: float) -> None:
        """Remember a token id as signed out until ``expires_at`` (idempotent)."""

    @abstractmethod
    def is_token_revoked(self, jti: str) -> bool: ...

    @abstractmethod
    def revoked_token_ids(self, now: float) -> set[str]:
        """Every id signed out that has not expired by ``now`` (what each API process keeps
        in memory to check access tokens without a query per request)."""

    @abstractmethod
    def purge_revoked_tokens(self, now: float) -> int:
        """Forget revocations of tokens expired by ``now``; returns how many went."""
