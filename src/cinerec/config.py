"""One settings class, read from ``CINEREC_*`` environment variables.

An optional TOML file (``CINEREC_CONFIG=path/to/cinerec.toml``) supplies defaults; environment
variables win over it. Example::

    CINEREC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test cinerec serve
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("data")


class EventWeights(BaseSettings):
    """How strongly each kind of event says "this user wants movies like this one".

    Positive weights are interest, negative weights are dislike. Ratings are on the 0.5-5 star
    scale: ``rating_positive_threshold`` and above counts as a like of strength value/5, at or
    below ``rating_negative_threshold`` as a dislike.
    """

    model_config = SettingsConfigDict(env_prefix="CINEREC_WEIGHT_")

    like: float = 1.0
    dislike: float = -1.0
    bookmark: float = 0.3
    view_complete: float = 1.0
    view_partial: float = 0.5
    not_interested: float = -0.5
    rating_positive_threshold: float = 3.5
    rating_negative_threshold: float = 2.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CINEREC_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR / 'cinerec.db'}",
        description="sqlite:///path or postgresql://user@host:port/db",
    )
    cache_url: str = Field(
        default="memory://",
        description="memory:// or redis://host:port/db; the API role keeps the serving state "
        "that replicas share (plans, shown sets, counters) there",
    )
    broker_url: str = Field(
        default="memory://",
        description="memory:// (events stored in process) or amqp://user:pass@host:port/vhost "
        "(the collector publishes events to RabbitMQ, the worker stores them)",
    )
    broker_queue: str = Field(default="cinerec.events", description="the durable event queue")
    data_dir: Path = DEFAULT_DATA_DIR
    recommendation_size: int = Field(default=10, ge=1, le=1000)
    exploration_share: float = Field(default=0.2, ge=0.0, le=1.0)
    exploration_saturation: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="once this share of the catalogue has been shown to someone, exploration "
        "keeps a single slot (for what is new); none once every movie has been shown",
    )
    popularity_half_life_days: float = Field(default=30.0, gt=0)
    top_rated_prior_count: float = Field(default=20.0, ge=0, description="Bayesian average m")
    demo_data: bool = Field(default=False, description="load MovieLens latest-small when empty")
    demo_path: Path | None = None
    log_level: str = "INFO"
    # -- security (docs/security.md) -------------------------------------------------------
    auth: bool = Field(
        default=True,
        description="on: user-scoped endpoints need a bearer token (the user's own, or an "
        "admin's) and admin endpoints an admin token; off only for a local demo",
    )
    contract_a: bool = Field(
        default=True,
        description="mount the course grader's open endpoints (/healthcheck, /cleanup, "
        "/add_items, /recs, /interact); off in production",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="bearer token of the operator; when unset (and auth is on) one is "
        "generated at first start into <data_dir>/admin_token (mode 0600)",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 key: signs the tokens /api/v1/auth issues and checks external "
        "HS256 tokens; when unset one is generated into <data_dir>/jwt_secret (mode 0600)",
    )
    jwt_public_key: str | None = Field(
        default=None,
        description="PEM public key (or a path to one) of an external auth service: its "
        "RS256/ES256 tokens are accepted",
    )
    access_token_ttl_s: int = Field(default=900, ge=10, le=86_400)
    refresh_token_ttl_s: int = Field(default=30 * 86_400, ge=60)
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="larger request bodies get 413"
    )
    rec_log_retention_days: float = Field(
        default=180.0,
        ge=0,
        description="the recommendation log keeps the lists of this many days (0 = all): a "
        "restart rebuilds who was shown what from it, so a user is never shown a movie again "
        "within this window; older lists are deleted at start and every hour",
    )
    max_catalog_genres: int = Field(
        default=1_000,
        ge=1,
        description="distinct genres in the catalogue (it keeps a movies x genres matrix); "
        "a write that would add more gets 422",
    )
    trusted_proxies: str = Field(
        default="127.0.0.1,::1",
        max_length=4096,
        description="comma-separated addresses or networks (CIDR), or *, of the reverse proxies "
        "in front: a request from one of them is taken to come from the client its "
        "X-Forwarded-For names (rate limits per address count that client, not the proxy)",
    )
    rate_limit: bool = Field(default=True, description="per-client limits on writes and auth")
    rate_limit_writes_per_s: float = Field(default=20.0, gt=0)
    rate_limit_writes_burst: int = Field(default=200, ge=1)
    rate_limit_auth_per_min: float = Field(default=10.0, gt=0)
    rate_limit_auth_burst: int = Field(default=10, ge=1)
    weights: EventWeights = Field(default_factory=EventWeights)
    # -- training ---------------------------------------------------------------------------
    models: list[str] = Field(
        default=["ease_plus", "als", "lightfm"],
        description="model kinds trained by a full run; see serving_model for which serves",
    )
    serving_model: str = Field(
        default="auto",
        description="'auto' (every serving model proposes candidates to the ranker) or one kind",
    )
    promotion_tolerance: float = Field(
        default=0.005, ge=0, description="promote unless held-out nDCG@10 drops by more"
    )
    dense_model_max_items: int = Field(
        default=4_000,
        description="dense item-item models (EASE: items^2 time, memory) train on this many "
        "of the most-liked movies",
    )
    scheduler: bool = Field(default=True, description="train on a schedule inside `serve`")
    incremental_interval_s: float = Field(default=300.0, gt=0)
    full_interval_s: float = Field(default=6 * 3600.0, gt=0)
    min_events_to_train: int = Field(default=20, ge=1)
    retrain_growth: float = Field(
        default=0.3, gt=0, description="full refit once events grew by this share since the last"
    )
    min_retrain_interval_s: float = Field(default=10.0, ge=0)
    training_duty: float = Field(
        default=0.33,
        gt=0,
        le=1,
        description="scheduled refits of a growing data set take at most this share of the "
        "time: after a run of t seconds the next waits t * (1 / duty - 1)",
    )
    ranker_warm_users: int = Field(
        default=600, ge=0, description="held-out users whose candidates train the ranker"
    )
    ranker_cold_users: int = Field(
        default=200, ge=0, description="users masked entirely to teach the ranker cold start"
    )
    ranker_evidence_share: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="share of default lists that ask every source and log their feature rows "
        "as online ranker evidence (the rest ask only what the serving ranker reads: faster)",
    )
    training_half_life_days: float = Field(
        default=0.0,
        ge=0,
        description="time decay of training weights (0 = off): a signal this many days older "
        "than the newest event in the data trains with half its weight",
    )

    # -- observability (docs/observability.md) ---------------------------------------------
    online_window_s: float = Field(
        default=86_400.0, gt=0, description="online P@K/R@K cover the lists of this long"
    )
    online_attribution_s: float = Field(
        default=3_600.0, gt=0, description="a like counts for a list within this long after it"
    )
    online_refresh_s: float = Field(
        default=60.0, ge=0, description="online quality is recomputed at most this often"
    )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _file_defaults() -> dict[str, Any]:
    path = os.environ.get("CINEREC_CONFIG")
    if not path:
        return {}
    with open(path, "rb") as f:
        data = tomllib.load(f)
    # Environment variables win over the file.
    return {k: v for k, v in data.items() if f"CINEREC_{k.upper()}" not in os.environ}


def load_settings(**overrides: Any) -> Settings:
    return Settings(**{**_file_defaults(), **overrides})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
