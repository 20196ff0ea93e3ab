"""The SQLAlchemy implementation shared by the SQLite and PostgreSQL backends.

Dialect differences (connection options, upsert syntax) live in ``sqlite.py`` and
``postgres.py``; everything here is portable SQLAlchemy Core.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Insert, delete, event, func, select, text, update
from sqlalchemy.engine import Connection, ExceptionContext, Row
from sqlalchemy.exc import DataError, InterfaceError, OperationalError

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
    Variant,
)
from cinerec.store import tables as t
from cinerec.store.base import EventRow, RefusedValueError, Store, StoreUnavailableError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: each kind's stored spelling (a dict lookup: ``Enum.value`` is a slow property)
_KIND = {k: k.value for k in EventKind}

#: the columns of :data:`EventRow`, in its order
EVENT_COLUMNS = "user_id, movie_id, kind, value, ts, client_event_id"


class _HasRetries(Exception):
    """A batch held events stored before: its optimistic transaction is rolled back."""


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class SqlStore(Store):
    """Portable SQL store. Subclasses give ``_insert`` (dialect insert with upsert support)."""

    #: rows per INSERT statement; keeps parameter counts under every driver's limit
    chunk_size = 2_000

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        # One writer at a time inside this process: SQLite allows a single writer anyway,
        # and serialising here turns "database is locked" errors into short waits.
        self._write_lock = threading.Lock()
        self._listen_errors(engine)

    @staticmethod
    def _listen_errors(engine: Engine) -> None:
        event.listen(engine, "handle_error", _refused_value)

    # -- dialect hooks -------------------------------------------------------------------
    def _insert(self, table: t.Table) -> Any:
        raise NotImplementedError

    def _existing_client_ids(
        self, conn: Connection, keys: list[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Which ``(user_id, client_event_id)`` of ``keys`` are stored: one probe of the
        unique index per key. (The portable ``(user_id, client_event_id) IN (…)`` made SQLite
        scan the whole index on every batch.)"""
        raise NotImplementedError

    def _write_events(self, conn: Connection, rows: Sequence[EventRow]) -> None:
        """Append rows known not to repeat a stored ``client_event_id``, by the driver's
        fastest path (compiling a Core INSERT cost more than SQLite's own work)."""
        raise NotImplementedError

    def _load_events(self, conn: Connection, rows: Sequence[EventRow]) -> int:
        """Append rows, skipping those whose ``client_event_id`` is stored (or earlier in
        ``rows``); returns how many were stored."""
        raise NotImplementedError

    def _upsert(self, table: t.Table, keys: list[str], columns: Iterable[str]) -> Insert:
        """An upsert of one row, run over many rows at once (``conn.execute(stmt, rows)``):
        compiled once and cached, where a multi-row VALUES was compiled anew per chunk."""
        stmt = self._insert(table)
        cols = {c: stmt.excluded[c] for c in columns if c not in keys}
        return stmt.on_conflict_do_update(index_elements=keys, set_=cols)

    # -- lifecycle -----------------------------------------------------------------------
    def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def wipe(self) -> None:
        with self._write_lock, self.engine.begin() as conn:
            for table in t.ALL_TABLES:
                conn.execute(delete(table))

    def close(self) -> None:
        self.engine.dispose()

    # -- catalogue -----------------------------------------------------------------------
    @staticmethod
    def _movie_row(m: Movie) -> dict[str, Any]:
        return {
            "id": m.id,
            "title": m.title,
            "year": m.year,
            "genres": list(m.genres),
            "rating_avg": m.rating_avg,
            "rating_count": m.rating_count,
            "created_at": m.created_at,
            "hidden": m.hidden,
        }

    @staticmethod
    def _to_movie(r: Row[Any]) -> Movie:
        return Movie(
            id=r.id,
            title=r.title,
            year=r.year,
            genres=list(r.genres or []),
            rating_avg=r.rating_avg,
            rating_count=r.rating_count,
            created_at=r.created_at,
            hidden=bool(r.hidden),
        )

    def upsert_movies(self, movies: Sequence[Movie]) -> int:
        if not movies:
            return 0
        # The last occurrence of an id in one call wins, as it would with sequential calls.
        rows = list({m.id: self._movie_row(m) for m in movies}.values())
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(self._upsert(t.movies, ["id"], rows[0]), rows)
        return len(rows)

    def get_movie(self, movie_id: str) -> Movie | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(t.movies).where(t.movies.c.id == movie_id)).first()
        return self._to_movie(r) if r else None

    def get_movies(self, movie_ids: Sequence[str]) -> dict[str, Movie]:
        out: dict[str, Movie] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(movie_ids), self.chunk_size):
                for r in conn.execute(select(t.movies).where(t.movies.c.id.in_(chunk))):
                    out[r.id] = self._to_movie(r)
        return out

    def iter_movies(self) -> Iterator[Movie]:
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=10_000).execute(
                select(t.movies).order_by(t.movies.c.created_at, t.movies.c.id)
            )
            for r in result:
                yield self._to_movie(r)

    def count_movies(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.movies)).scalar_one())

    def set_movie_hidden(self, movie_id: str, hidden: bool) -> bool:
        with self._write_lock, self.engine.begin() as conn:
            res = conn.execute(
                update(t.movies).where(t.movies.c.id == movie_id).values(hidden=hidden)
            )
        return bool(res.rowcount)

    # -- users ---------------------------------------------------------------------------
    def upsert_users(self, users: Sequence[User]) -> int:
        if not users:
            return 0
        rows = list(
            {
                u.id: {
                    "id": u.id,
                    "favorite_genres": list(u.favorite_genres),
                    "created_at": u.created_at,
                }
                for u in users
            }.values()
        )
        with self._write_lock, self.engine.begin() as conn:
            # an existing user keeps its creation time
            conn.execute(self._upsert(t.users, ["id"], ["favorite_genres"]), rows)
        return len(rows)

    def get_user(self, user_id: str) -> User | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(t.users).where(t.users.c.id == user_id)).first()
        return User(r.id, list(r.favorite_genres or []), r.created_at) if r else None

    def iter_users(self) -> Iterator[User]:
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=10_000).execute(select(t.users)):
                yield User(r.id, list(r.favorite_genres or []), r.created_at)

    # -- events --------------------------------------------------------------------------
    @staticmethod
    def _to_event(r: Row[Any]) -> Event:
        return Event(r.user_id, r.movie_id, EventKind(r.kind), r.value, r.ts, r.client_event_id)

    def add_events(self, events: Sequence[Event]) -> list[bool]:
        if not events:
            return []
        rows: list[EventRow] = [
            (e.user_id, e.movie_id, _KIND[e.kind], e.value, e.ts, e.client_event_id) for e in events
        ]
        with self._write_lock:
            # Retries are rare: store the whole batch skipping conflicts, and keep it if
            # nothing was skipped. Otherwise roll back and sort the retries out key by key.
            try:
                with self.engine.begin() as conn:
                    if self._load_events(conn, rows) != len(rows):
                        raise _HasRetries
                return [True] * len(rows)
            except _HasRetries:
                pass
            with self.engine.begin() as conn:
                return self._add_events_with_retries(conn, rows)

    def _add_events_with_retries(self, conn: Connection, rows: list[EventRow]) -> list[bool]:
        keys = [(r[0], r[5]) for r in rows if r[5]]
        seen = self._existing_client_ids(conn, keys)
        fresh = [True] * len(rows)
        new: list[EventRow] = []
        for i, row in enumerate(rows):
            if row[5]:
                key = (row[0], row[5])
                if key in seen:  # stored before, or earlier in this same batch
                    fresh[i] = False
                    continue
                seen.add(key)
            new.append(row)
        if new:
            self._write_events(conn, new)
        return fresh

    def load_events(self, rows: Sequence[EventRow]) -> int:
        if not rows:
            return 0
        with self._write_lock, self.engine.begin() as conn:
            return self._load_events(conn, rows)

    def iter_events(
        self, after_id: int = 0, batch_size: int = 50_000
    ) -> Iterator[tuple[int, Event]]:
        last = after_id
        cols = (
            t.events.c.id,
            t.events.c.user_id,
            t.events.c.movie_id,
            t.events.c.kind,
            t.events.c.value,
            t.events.c.ts,
            t.events.c.client_event_id,
        )
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(*cols)
                    .where(t.events.c.id > last)
                    .order_by(t.events.c.id)
                    .limit(batch_size)
                ).all()
            for r in rows:
                yield r.id, self._to_event(r)
            if len(rows) < batch_size:
                return
            last = rows[-1].id

    def user_events(
        self,
        user_id: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Event]:
        order = t.events.c.id.desc() if newest_first else t.events.c.id
        q = select(t.events).where(t.events.c.user_id == user_id).order_by(order)
        if limit is not None:
            q = q.limit(limit)
        if offset:
            q = q.offset(offset)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [self._to_event(r) for r in rows]

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.events)).scalar_one())

    def last_event_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(t.events.c.id), 0))).scalar_one())

    # -- recommendation log and feedback -------------------------------------------------
    def log_recommendations(self, entries: Iterable[RecLogEntry]) -> None:
        entries = list(entries)
        if not entries:
            return
        with self._write_lock, self._log_transaction() as conn:
            self._insert_log(conn, entries)

    def _insert_log(self, conn: Connection, entries: list[RecLogEntry]) -> None:
        rows = [
            {
                "session_id": e.session_id,
                "user_id": e.user_id,
                "movie_ids": list(e.movie_ids),
                "sources": list(e.sources),
                "source": e.source,
                "model_version": e.model_version,
                "ts": e.ts,
                "experiment": e.experiment,
                "variant": e.variant,
            }
            for e in entries
        ]
        for chunk in _chunks(rows, self.chunk_size):
            conn.execute(t.rec_log.insert(), list(chunk))

    def _log_transaction(self) -> AbstractContextManager[Connection]:
        """The transaction of a batch of the recommendation log. The backends commit it
        safe from a crash of this process (``kill -9``) without waiting for the disk: the
        log is written for every list served, and a flush to disk per group commit would
        make every answer wait for the disk. A power loss may lose the last lists (a user
        may then see one of them again); events never: they commit to disk."""
        return self.engine.begin()

    @staticmethod
    def _to_log(r: Row[Any]) -> RecLogEntry:
        return RecLogEntry(
            r.session_id,
            r.user_id,
            list(r.movie_ids),
            list(r.sources),
            r.source,
            r.model_version,
            r.ts,
            r.experiment,
            r.variant,
        )

    def get_rec_log(self, session_id: str) -> RecLogEntry | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(t.rec_log).where(t.rec_log.c.session_id == session_id)).first()
        return self._to_log(r) if r else None

    def iter_rec_log(self) -> Iterator[RecLogEntry]:
        with self.engine.connect() as conn:
            q = select(t.rec_log).order_by(t.rec_log.c.id)
            for r in conn.execution_options(yield_per=10_000).execute(q):
                yield self._to_log(r)

    def purge_rec_log(self, before: float) -> int:
        old = select(t.rec_log.c.session_id).where(t.rec_log.c.ts < before)
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(t.feedback.delete().where(t.feedback.c.session_id.in_(old)))
            return int(conn.execute(t.rec_log.delete().where(t.rec_log.c.ts < before)).rowcount)

    def user_rec_log(self, user_id: str) -> list[RecLogEntry]:
        q = select(t.rec_log).where(t.rec_log.c.user_id == user_id).order_by(t.rec_log.c.id)
        with self.engine.connect() as conn:
            return [self._to_log(r) for r in conn.execute(q)]

    def add_feedback(self, feedback: Feedback) -> None:
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(
                t.feedback.insert().values(
                    session_id=feedback.session_id,
                    user_id=feedback.user_id,
                    movie_id=feedback.movie_id,
                    liked=feedback.liked,
                    ts=feedback.ts,
                )
            )

    @staticmethod
    def _to_feedback(r: Row[Any]) -> Feedback:
        return Feedback(r.session_id, r.user_id, r.movie_id, bool(r.liked), r.ts)

    def session_feedback(self, session_id: str) -> list[Feedback]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.feedback)
                .where(t.feedback.c.session_id == session_id)
                .order_by(t.feedback.c.id)
            ).all()
        return [self._to_feedback(r) for r in rows]

    def iter_feedback(self) -> Iterator[Feedback]:
        with self.engine.connect() as conn:
            for r in conn.execute(select(t.feedback).order_by(t.feedback.c.id)):
                yield self._to_feedback(r)

    def iter_rec_log_since(self, ts: float) -> Iterator[RecLogEntry]:
        with self.engine.connect() as conn:
            q = select(t.rec_log).where(t.rec_log.c.ts >= ts).order_by(t.rec_log.c.id)
            rows = conn.execute(q).all()
        return (self._to_log(r) for r in rows)

    def iter_feedback_since(self, ts: float) -> Iterator[Feedback]:
        with self.engine.connect() as conn:
            q = select(t.feedback).where(t.feedback.c.ts >= ts).order_by(t.feedback.c.id)
            rows = conn.execute(q).all()
        return (self._to_feedback(r) for r in rows)

    def iter_events_since(self, ts: float, kinds: Sequence[EventKind] = ()) -> Iterator[Event]:
        q = select(t.events).where(t.events.c.ts >= ts)
        if kinds:
            q = q.where(t.events.c.kind.in_([k.value for k in kinds]))
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(t.events.c.id)).all()
        return (self._to_event(r) for r in rows)

    def iter_experiment_log(self, experiment_id: str) -> Iterator[RecLogEntry]:
        with self.engine.connect() as conn:
            q = (
                select(t.rec_log)
                .where(t.rec_log.c.experiment == experiment_id)
                .order_by(t.rec_log.c.id)
            )
            rows = conn.execute(q).all()
        return (self._to_log(r) for r in rows)

    # -- experiments ---------------------------------------------------------------------
    def save_experiment(self, experiment: Experiment) -> None:
        row = {
            "id": experiment.id,
            "name": experiment.name,
            "salt": experiment.salt,
            "variants": [
                {"name": v.name, "share": v.share, "source": v.source, "explore": v.explore}
                for v in experiment.variants
            ],
            "metric": experiment.metric,
            "status": experiment.status,
            "winner": experiment.winner,
            "created_at": experiment.created_at,
            "stopped_at": experiment.stopped_at,
        }
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(self._upsert(t.experiments, ["id"], row), [row])

    @staticmethod
    def _to_experiment(r: Row[Any]) -> Experiment:
        return Experiment(
            r.id,
            r.name,
            r.salt,
            [Variant(v["name"], v["share"], v["source"], v["explore"]) for v in r.variants],
            r.metric,
            r.status,
            r.winner,
            r.created_at,
            r.stopped_at,
        )

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(t.experiments).where(t.experiments.c.id == experiment_id)
            ).first()
        return self._to_experiment(r) if r else None

    def list_experiments(self) -> list[Experiment]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.experiments).order_by(
                    t.experiments.c.created_at.desc(), t.experiments.c.id.desc()
                )
            ).all()
        return [self._to_experiment(r) for r in rows]

    # -- model registry ------------------------------------------------------------------
    def add_model(self, record: ModelRecord) -> None:
        with self._write_lock, self.engine.begin() as conn:
            if record.status == "serving":
                conn.execute(
                    update(t.models)
                    .where((t.models.c.kind == record.kind) & (t.models.c.status == "serving"))
                    .values(status="retired")
                )
            conn.execute(
                t.models.insert().values(
                    version=record.version,
                    kind=record.kind,
                    params=record.params,
                    metrics=record.metrics,
                    mode=record.mode,
                    n_users=record.n_users,
                    n_items=record.n_items,
                    n_events=record.n_events,
                    train_seconds=record.train_seconds,
                    status=record.status,
                    path=record.path,
                    created_at=record.created_at,
                )
            )

    @staticmethod
    def _to_model(r: Row[Any]) -> ModelRecord:
        return ModelRecord(
            r.version,
            r.kind,
            dict(r.params),
            dict(r.metrics),
            r.mode,
            r.n_users,
            r.n_items,
            r.n_events,
            r.train_seconds,
            r.status,
            r.path,
            r.created_at,
        )

    def list_models(self, limit: int = 100) -> list[ModelRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.models).order_by(t.models.c.created_at.desc()).limit(limit)
            ).all()
        return [self._to_model(r) for r in rows]

    def serving_models(self) -> list[ModelRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.models).where(t.models.c.status == "serving")).all()
        recs = [self._to_model(r) for r in rows]
        return sorted(recs, key=lambda m: -float(m.metrics.get("ndcg@10", 0.0)))

    # -- accounts ------------------------------------------------------------------------
    def add_account(self, account: Account) -> bool:
        row = {
            "user_id": account.user_id,
            "password_hash": account.password_hash,
            "role": account.role,
            "created_at": account.created_at,
        }
        with self._write_lock, self.engine.begin() as conn:
            stmt = (
                self._insert(t.accounts)
                .values(row)
                .on_conflict_do_nothing()
                .returning(t.accounts.c.user_id)
            )
            # rowcount is not reliable here across drivers; RETURNING is
            return conn.execute(stmt).first() is not None

    def get_account(self, user_id: str) -> Account | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(t.accounts).where(t.accounts.c.user_id == user_id)).first()
        return Account(r.user_id, r.password_hash, r.role, r.created_at) if r else None

    def revoke_token(self, jti: str, expires_at: float) -> None:
        row = {"jti": jti, "expires_at": expires_at}
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(self._insert(t.revoked_tokens).values(row).on_conflict_do_nothing())

    def is_token_revoked(self, jti: str) -> bool:
        q = select(t.revoked_tokens.c.jti).where(t.revoked_tokens.c.jti == jti)
        with self.engine.connect() as conn:
            return conn.execute(q).first() is not None

    def revoked_token_ids(self, now: float) -> set[str]:
        q = select(t.revoked_tokens.c.jti).where(t.revoked_tokens.c.expires_at >= now)
        with self.engine.connect() as conn:
            return {str(row[0]) for row in conn.execute(q)}

    def purge_revoked_tokens(self, now: float) -> int:
        q = t.revoked_tokens.delete().where(t.revoked_tokens.c.expires_at < now)
        with self._write_lock, self.engine.begin() as conn:
            return int(conn.execute(q).rowcount)


def _refused_value(ctx: ExceptionContext) -> None:
    """SQLAlchemy's ``DataError`` becomes the store's own :class:`RefusedValueError`, and a
    database that cannot be reached its :class:`StoreUnavailableError`, so that callers (the
    API's error handlers) never import SQLAlchemy."""
    if isinstance(ctx.sqlalchemy_exception, DataError):
        orig = ctx.original_exception
        reason = str(orig).strip().splitlines()[0] if str(orig).strip() else "invalid value"
        raise RefusedValueError(reason) from orig
    # A pre-ping's failure is the pool's own business: it reconnects.
    if not ctx.is_pre_ping and isinstance(
        ctx.sqlalchemy_exception, (OperationalError, InterfaceError)
    ):
        raise StoreUnavailableError("the database does not answer") from ctx.original_exception
