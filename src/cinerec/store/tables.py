"""Table definitions (SQLAlchemy Core). The schema itself is built by the Alembic migrations in
``cinerec/migrations``; a test checks that both agree."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.types import BigInteger

metadata = MetaData()

# SQLite only auto-increments "INTEGER PRIMARY KEY"; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")

movies = Table(
    "movies",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("title", String(512), nullable=False, server_default=""),
    Column("year", Integer, nullable=True),
    Column("genres", JSON, nullable=False),
    Column("rating_avg", Float, nullable=True),
    Column("rating_count", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("hidden", Boolean, nullable=False, server_default="0"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("favorite_genres", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(128), nullable=False),
    Column("movie_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("ts", Float, nullable=False),
    Column("client_event_id", String(128), nullable=True),
    # Also a user's history (leading column); no other index: each costs every write.
    Index("ux_events_client", "user_id", "client_event_id", unique=True),
)

rec_log = Table(
    "rec_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("session_id", String(64), nullable=False, unique=True),
    Column("user_id", String(128), nullable=False),
    Column("movie_ids", JSON, nullable=False),
    Column("sources", JSON, nullable=False),
    Column("source", String(64), nullable=False),
    Column("model_version", String(64), nullable=True),
    Column("ts", Float, nullable=False),
    Column("experiment", String(64), nullable=True),
    Column("variant", String(64), nullable=True),
    # A user's lists, for API replicas restoring a shown set (PostgreSQL only: see
    # DIALECT_INDEXES).
    Index("ix_rec_log_user", "user_id"),
    Index("ix_rec_log_experiment", "experiment"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("session_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("movie_id", String(128), nullable=False),
    Column("liked", Boolean, nullable=False),
    Column("ts", Float, nullable=False),
    Index("ix_feedback_session", "session_id"),
)

models = Table(
    "models",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("mode", String(16), nullable=False),  # full | incremental
    Column("n_users", Integer, nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("n_events", Integer, nullable=False),
    Column("train_seconds", Float, nullable=False),
    Column("status", String(16), nullable=False),  # serving | candidate | rejected | retired
    Column("path", String(1024), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_models_created", "created_at"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("password_hash", String(512), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("variants", JSON, nullable=False),
    Column("metric", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # running|stopped|promoted|superseded
    Column("winner", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),
    Index("ix_experiments_created", "created_at"),
)

#: refresh tokens signed out before they expire (their ``jti``); a row may go once the token
#: has expired (:meth:`cinerec.store.Store.purge_revoked_tokens`)
revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_revoked_tokens_expires", "expires_at"),
)

ALL_TABLES = (
    revoked_tokens,
    experiments,
    accounts,
    models,
    feedback,
    rec_log,
    events,
    users,
    movies,
)

#: the full-text search objects of migration 0005, made in each database's own way (an FTS5
#: table and its shadow tables in SQLite, an expression index in PostgreSQL): the portable
#: metadata above does not describe them
SEARCH_OBJECTS_PREFIXES = ("movies_fts", "ix_movies_title_search")


def is_search_object(name: str | None) -> bool:
    return bool(name) and str(name).startswith(SEARCH_OBJECTS_PREFIXES)


#: indexes of the metadata that the migrations build on these dialects only: elsewhere
#: nothing reads them, and every write pays for them (migration 0008)
DIALECT_INDEXES: dict[str, tuple[str, ...]] = {"ix_rec_log_user": ("postgresql",)}


def index_kept_on(name: str | None, dialect: str) -> bool:
    """Whether the migrations build index ``name`` on ``dialect``."""
    return dialect in DIALECT_INDEXES.get(str(name), (dialect,))
