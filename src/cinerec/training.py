"""Training, evaluation on a held-out slice, promotion and hot swap of personal models.

Training data comes from the engine's serving state (which the store rebuilt at start-up),
so the weights per event kind are exactly the ones serving uses: one path for the CLI, the
worker, the scheduler and the admin endpoint.

Promotion: a candidate is fitted with one positive interaction held out for a sample of
users, scored on those hold-outs (nDCG@10, HR@10), and serves only if it is not worse than
the serving model of the same kind on the same slice beyond ``promotion_tolerance``. The
held-out interactions are missed by the fit only, not by serving: fold-in scoring always
uses the user's current row.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from cinerec.config import Settings
from cinerec.domain import ModelRecord
from cinerec.engine import Engine
from cinerec.engine.recommenders import Recommender
from cinerec.engine.state import Catalog, UserState
from cinerec.evaluation.metrics import ndcg_at_k
from cinerec.models import Model, load_model, make_model
from cinerec.models.features import item_features, user_genre_features
from cinerec.store import Store

log = logging.getLogger(__name__)

#: models whose memory grows with items^2
DENSE_ITEM_MODELS = {"ease", "ease_plus"}
HOLDOUT_USERS = 2000


@dataclass(slots=True)
class TrainingData:
    interactions: sp.csr_matrix  # (n_users, n_items) in engine dense ids
    item_genres: list[tuple[str, ...]]
    years: list[int | None]
    n_events: int
    item_ids: list[str]
    user_ids: list[str]
    generation: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.interactions.shape


def build_training_data(engine: Engine) -> TrainingData:
    """Snapshot of every user's current signal per movie (latest event wins)."""
    with engine.lock:
        cat = engine.catalog
        n_users, n_items = len(engine.user_ids), cat.n
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for uidx, u in engine.users.items():
            for i, w in u.interactions.items():
                rows.append(uidx)
                cols.append(i)
                vals.append(w)
        genres = [tuple(cat.genres.external(g) for g in gs) for gs in cat.movie_genres]
        years = list(cat.years)
        n_events = engine.n_events
        item_ids = cat.ids.externals(range(n_items))
        user_ids = engine.user_ids.externals(range(n_users))
    x = sp.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
    x.sum_duplicates()
    return TrainingData(x, genres, years, n_events, item_ids, user_ids, engine.generation)


def holdout_split(
    x: sp.csr_matrix, n_users: int, seed: int = 0
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Remove one random positive of up to ``n_users`` users with at least 3 positives.

    Returns ``(train, users, items)``: the matrix without the held-out cells and, per held-out
    user, the hidden item.
    """
    rng = np.random.default_rng(seed)
    pos = (x > 0).astype(np.int32)
    counts = np.asarray(pos.sum(axis=1)).ravel()
    eligible = np.flatnonzero(counts >= 3)
    users = rng.choice(eligible, size=min(n_users, len(eligible)), replace=False)
    users.sort()
    items = np.empty(len(users), dtype=np.int64)
    x = x.tolil(copy=True)
    for j, u in enumerate(users):
        row = np.asarray(x.rows[u])
        vals = np.asarray(x.data[u])
        candidates = row[vals > 0]
        items[j] = candidates[rng.integers(len(candidates))]
        x[u, items[j]] = 0
    train = x.tocsr()
    train.eliminate_zeros()
    return train, users, items


def holdout_metrics(
    model: Model,
    train: sp.csr_matrix,
    users: np.ndarray,
    items: np.ndarray,
    features: dict[str, Any],
    k: int = 10,
) -> dict[str, float]:
    if len(users) == 0:
        return {}
    uf = features.get("user_features")
    reco, _ = model.recommend(
        train[users],
        k=k,
        filter_seen=True,
        user_features=None if uf is None else uf[users],
        user_ids=users,
    )
    truth = sp.csr_matrix(
        (np.ones(len(users)), (np.arange(len(users)), items)), shape=(len(users), train.shape[1])
    )
    hits = (reco == items[:, None]).any(axis=1)
    return {
        "ndcg@10": round(float(ndcg_at_k(reco, truth, k)), 5),
        "hr@10": round(float(hits.mean()), 5),
        "holdout_users": float(len(users)),
    }


def model_features(data: TrainingData, model: Model, x: sp.csr_matrix) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if model.uses_item_features or model.uses_user_features:
        itf, names = item_features(data.item_genres, data.years)
        if model.uses_item_features:
            out["item_features"] = itf
        if model.uses_user_features:
            vocab = [n for n in names if not n.startswith("decade:")]
            out["user_features"] = user_genre_features(x, data.item_genres, vocab)
            out["vocabulary"] = vocab
    return out


class ModelRecommender(Recommender):
    """A trained model as a serving source: folds the user's current row in on every request,
    so a new like changes the very next list without retraining.

    The model speaks its own dense ids (those of the process that trained it); ``item_ids`` /
    ``user_ids`` (external, saved beside the artifact) map them onto this engine's ids, so a
    model trained by a separate worker serves correctly here.
    """

    positive_only = False

    def __init__(self, model: Model, record: ModelRecord, item_ids: list[str],
                 user_ids: list[str], catalog: Catalog) -> None:
        self.model = model
        self.record = record
        self.name = record.kind
        self.user_index = {u: i for i, u in enumerate(user_ids)}
        # model item -> catalogue idx (allocating inactive entries for ids not seen here)
        self.to_catalog = np.fromiter((catalog.index(m) for m in item_ids), dtype=np.int64,
                                      count=len(item_ids))
        self.from_catalog = np.full(catalog.n, -1, dtype=np.int64)
        self.from_catalog[self.to_catalog] = np.arange(len(item_ids))

    def scores(self, user: UserState | None, catalog: Catalog) -> np.ndarray | None:
        if user is None or not user.interactions:
            return None
        if len(self.from_catalog) < catalog.n:
            grown = np.full(catalog.n, -1, dtype=np.int64)
            grown[: len(self.from_catalog)] = self.from_catalog
            self.from_catalog = grown
        idx = np.fromiter(user.interactions.keys(), dtype=np.int64, count=len(user.interactions))
        val = np.fromiter(user.interactions.values(), dtype=np.float32, count=len(idx))
        cols = self.from_catalog[idx]
        known = cols >= 0
        row = sp.csr_matrix(
            (val[known], (np.zeros(int(known.sum()), dtype=np.int64), cols[known])),
            shape=(1, self.model.n_items),
        )
        uid = self.user_index.get(user.id)
        s = self.model.score_user(row, None, uid)
        out = np.full(catalog.n, -np.inf, dtype=np.float64)
        out[self.to_catalog] = s[: len(self.to_catalog)]
        return out


def save_ids(path: Path, item_ids: list[str], user_ids: list[str]) -> None:
    path.write_text(json.dumps({"items": item_ids, "users": user_ids}))


def load_ids(path: Path) -> tuple[list[str], list[str]]:
    data = json.loads(path.read_text())
    return list(data["items"]), list(data["users"])


def ids_path(model_path: str | Path) -> Path:
    return Path(str(model_path).removesuffix(".npz") + ".ids.json")


@dataclass(slots=True)
class TrainReport:
    mode: str
    trained: list[ModelRecord] = field(default_factory=list)
    serving: list[str] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0


class Trainer:
    """Owns the model lifecycle of one engine: train, evaluate, promote, load at start-up."""

    def __init__(self, settings: Settings, store: Store, engine: Engine) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.model_dir = Path(settings.data_dir) / "models"
        self._lock = threading.Lock()
        self.last_trained_events = 0
        self.last_full = 0.0
        self.last_run = 0.0

    # -- serving set -----------------------------------------------------------------------
    def serving(self) -> dict[str, ModelRecommender]:
        return {
            n: r for n, r in self.engine.recommenders.items() if isinstance(r, ModelRecommender)
        }

    def _activate(self, rec: ModelRecommender) -> None:
        self.engine.register(rec)
        self._choose_personal()

    def _choose_personal(self) -> None:
        serving = self.serving()
        if not serving:
            self.engine.personal = None
            return
        wanted = self.settings.serving_model
        if wanted != "auto" and wanted in serving:
            self.engine.personal = wanted
            return
        best = max(serving.values(), key=lambda r: r.record.metrics.get("ndcg@10", 0.0))
        self.engine.personal = best.name

    def load_serving(self) -> None:
        """Load the registry's serving models (at start-up, or when a worker trained new ones)."""
        current = {r.record.version for r in self.serving().values()}
        for rec in self.store.serving_models():
            if rec.version in current or not Path(rec.path).exists():
                continue
            items, users = load_ids(ids_path(rec.path))
            with self.engine.lock:
                model_rec = ModelRecommender(load_model(rec.path), rec, items, users,
                                             self.engine.catalog)
            self._activate(model_rec)
            log.info("serving model %s (%s)", rec.version, rec.kind)

    def forget(self) -> None:
        """Part of /cleanup: drop every model from serving and delete the artifacts."""
        for name in list(self.serving()):
            self.engine.recommenders.pop(name, None)
        self.engine.personal = None
        if self.model_dir.exists():
            for f in [*self.model_dir.glob("*.npz"), *self.model_dir.glob("*.ids.json")]:
                f.unlink(missing_ok=True)
        self.last_trained_events = 0

    # -- training --------------------------------------------------------------------------
    def kinds(self, data: TrainingData) -> list[str]:
        kinds = list(dict.fromkeys(self.settings.models))
        if data.shape[1] > self.settings.dense_model_max_items:
            kinds = [k for k in kinds if k not in DENSE_ITEM_MODELS]
        return kinds

    def train(self, mode: str = "full") -> TrainReport:
        if mode not in ("full", "incremental"):
            raise ValueError("mode must be 'full' or 'incremental'")
        with self._lock:
            t0 = time.perf_counter()
            report = TrainReport(mode)
            data = build_training_data(self.engine)
            need = self.settings.min_events_to_train
            if data.interactions.nnz < need:
                report.skipped = f"only {data.interactions.nnz} interactions; need {need}"
                return report
            if mode == "incremental" and not self.serving():
                mode = report.mode = "full"  # nothing to update yet
            train, users, items = holdout_split(data.interactions, HOLDOUT_USERS)
            serving = self.serving()
            targets = self.kinds(data) if mode == "full" else list(serving)
            for kind in targets:
                old = serving.get(kind)
                if mode == "incremental" and old is not None:
                    model = old.model
                    # partial_fit mutates; keep serving the old object until the swap
                    model = load_model(self._save_tmp(model))
                else:
                    model = make_model(kind)
                feats = model_features(data, model, train)
                fit_t0 = time.perf_counter()
                if mode == "incremental":
                    model.partial_fit(train, feats.get("item_features"), feats.get("user_features"))
                else:
                    model.fit(train, feats.get("item_features"), feats.get("user_features"))
                fit_s = time.perf_counter() - fit_t0
                metrics = holdout_metrics(model, train, users, items, feats)
                model.metrics = metrics
                status = "serving"
                if old is not None:
                    old_feats = model_features(data, old.model, train)
                    old_metrics = holdout_metrics(old.model, train, users, items, old_feats)
                    if (
                        metrics.get("ndcg@10", 0)
                        < old_metrics.get("ndcg@10", 0) - self.settings.promotion_tolerance
                    ):
                        status = "rejected"
                        metrics["serving_ndcg@10"] = old_metrics.get("ndcg@10", 0.0)
                if self.engine.generation != data.generation:
                    report.skipped = "state was reset (/cleanup) during training"
                    return report
                record = self._register(model, kind, mode, data, fit_s, status, metrics)
                report.trained.append(record)
                if status == "serving":
                    with self.engine.lock:
                        if self.engine.generation != data.generation:
                            report.skipped = "state was reset (/cleanup) during training"
                            return report
                        self._activate(ModelRecommender(model, record, data.item_ids,
                                                        data.user_ids, self.engine.catalog))
            self.last_trained_events = data.n_events
            self.last_run = time.time()
            if mode == "full":
                self.last_full = self.last_run
            report.serving = [r.record.version for r in self.serving().values()]
            report.seconds = round(time.perf_counter() - t0, 3)
            return report

    def _save_tmp(self, model: Model) -> Path:
        path = self.model_dir / f"tmp-{uuid.uuid4().hex}.npz"
        model.save(path)
        return path

    def _register(
        self,
        model: Model,
        kind: str,
        mode: str,
        data: TrainingData,
        fit_s: float,
        status: str,
        metrics: dict[str, float],
    ) -> ModelRecord:
        version = f"{kind}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        path = model.save(self.model_dir / f"{version}.npz")
        save_ids(ids_path(path), data.item_ids, data.user_ids)
        for tmp in self.model_dir.glob("tmp-*.npz"):
            tmp.unlink(missing_ok=True)
        record = ModelRecord(
            version,
            kind,
            model.params,
            metrics,
            mode,
            data.shape[0],
            data.shape[1],
            data.n_events,
            round(fit_s, 3),
            status,
            str(path),
        )
        self.store.add_model(record)
        log.info("trained %s (%s, %s): %s", version, mode, status, metrics)
        return record

    # -- schedule --------------------------------------------------------------------------
    def due(self, now: float | None = None) -> str | None:
        """Which run the schedule asks for now, if any."""
        now = now or time.time()
        new_events = self.engine.n_events - self.last_trained_events
        if new_events < self.settings.min_events_to_train:
            return None
        if not self.serving() or now - self.last_full >= self.settings.full_interval_s:
            return "full"
        if now - self.last_run >= self.settings.incremental_interval_s:
            return "incremental"
        return None


class Scheduler:
    """Background thread: trains when :meth:`Trainer.due` says so (embedded server)."""

    def __init__(self, trainer: Trainer, tick_s: float = 5.0) -> None:
        self.trainer = trainer
        self.tick_s = tick_s
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="train-scheduler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                mode = self.trainer.due()
                if mode:
                    self.trainer.train(mode)
                else:
                    self.trainer.load_serving()  # pick up models a worker trained
            except Exception:
                log.exception("scheduled training failed")
