"""Training, evaluation on a held-out slice, promotion and hot swap of personal models.

Training data comes from the engine's serving state (which the store rebuilt at start-up),
so the weights per event kind are exactly the ones serving uses: one path for the CLI, the
worker, the scheduler and the admin endpoint.

Promotion: a candidate is fitted with 20 % of the positives of a sample of users held out,
scored on those hold-outs (nDCG@10, HR@10), and serves unless it is worse than the serving
model of the same kind (by that one's own check, while the data has not grown by 10 %) beyond
``promotion_tolerance``. What serves is then refitted on everything. The ranker that orders
the default list is trained on the same slice (:mod:`cinerec.ranker_training`).

Columns: the training matrix has one column per movie with at least one interaction (not per
catalogue movie), so the dense-model limit counts movies people actually reached. A model's
columns are named by the external ids saved beside it; an incremental run and the comparison
with the serving model reorder the matrix to that model's columns first (new movies
appended), so a column keeps meaning the same movie for the model's whole life.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from cinerec.config import Settings
from cinerec.domain import ModelRecord
from cinerec.engine import Engine
from cinerec.engine.ranking import Ranker, load_ranker
from cinerec.engine.recommenders import Recommender
from cinerec.engine.state import Catalog, UserState
from cinerec.evaluation.metrics import ndcg_at_k
from cinerec.models import Model, load_model, make_model
from cinerec.models.features import cold_item_features, item_features, user_genre_features
from cinerec.ranker_training import choose_ranker, offline_groups
from cinerec.store import Store

log = logging.getLogger(__name__)

#: models whose memory grows with items^2
DENSE_ITEM_MODELS = {"ease", "ease_plus"}
HOLDOUT_USERS = 2000


@dataclass(slots=True)
class TrainingData:
    """One training snapshot. Rows are the engine's users (dense order); columns are the movies
    with at least one interaction, named by ``item_ids`` (genres and years aligned)."""

    interactions: sp.csr_matrix  # (n_users, n_items)
    item_genres: list[tuple[str, ...]]
    years: list[int | None]
    n_events: int
    item_ids: list[str]
    user_ids: list[str]
    generation: int
    #: newest event time in the data (decay reference); None when decay is off
    t_ref: float | None = None
    #: catalogue dense id of each column
    item_idx: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def shape(self) -> tuple[int, int]:
        return self.interactions.shape


def decay_factors(ts: np.ndarray, t_ref: float, half_life_days: float) -> np.ndarray:
    """``0.5 ** ((t_ref - ts) / half_life)``; unknown times (NaN) and future ones count fully.

    >>> decay_factors(np.array([0.0, 86400.0, np.nan]), 86400.0, 1.0).tolist()
    [0.5, 1.0, 1.0]
    """
    age_days = np.nan_to_num((t_ref - ts) / 86400.0, nan=0.0)
    return np.power(0.5, np.maximum(age_days, 0.0) / half_life_days)


def build_training_data(engine: Engine, half_life_days: float = 0.0) -> TrainingData:
    """Snapshot of every user's current signal per movie (latest event wins).

    Only movies with at least one interaction get a column. With ``half_life_days > 0`` each
    weight is multiplied by ``0.5 ** ((t_ref - t) / half_life)``, ``t`` the time of the event
    behind it and ``t_ref`` the newest such time in the data (not the wall clock, so a replayed
    historical log decays the same way as a live one).
    """
    decay = half_life_days > 0
    with engine.lock:
        cat = engine.catalog
        n_users = len(engine.user_ids)
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        times: list[float] = []
        for uidx, u in engine.users.items():
            inter = u.interactions
            if not inter:
                continue
            rows.extend([uidx] * len(inter))
            cols.extend(inter.keys())
            vals.extend(inter.values())
            if decay:
                ts = u.interaction_ts
                times.extend([ts.get(i, math.nan) for i in inter])
        items, col_idx = np.unique(np.asarray(cols, dtype=np.int64), return_inverse=True)
        genres = [tuple(cat.genres.external(g) for g in cat.movie_genres[i]) for i in items]
        years = [cat.years[i] for i in items]
        n_events = engine.n_events
        item_ids = cat.ids.externals(items.tolist())
        user_ids = engine.user_ids.externals(range(n_users))
        generation = engine.generation
    v = np.asarray(vals, dtype=np.float64)
    t_ref = None
    if decay and len(times):
        t = np.asarray(times, dtype=np.float64)
        if np.isfinite(t).any():
            t_ref = float(np.nanmax(t))
            v = v * decay_factors(t, t_ref, half_life_days)
    x = sp.csr_matrix(
        (v.astype(np.float32), (np.asarray(rows, dtype=np.int64), col_idx.ravel())),
        shape=(n_users, len(items)),
    )
    x.sum_duplicates()
    return TrainingData(x, genres, years, n_events, item_ids, user_ids, generation, t_ref, items)


def _positions(ids: list[str], first: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """New position of each of ``ids`` when ``first`` comes first (in its order) and the rest of
    ``ids`` follow in theirs; and the resulting id list."""
    pos = {x: j for j, x in enumerate(first)}
    order = list(first)
    new = np.empty(len(ids), dtype=np.int64)
    for j, x in enumerate(ids):
        p = pos.get(x)
        if p is None:
            p = len(order)
            order.append(x)
        new[j] = p
    return new, order


@dataclass(slots=True)
class Holdout:
    """The training matrix with held-out cells removed, and per held-out user the item."""

    train: sp.csr_matrix
    users: np.ndarray
    items: np.ndarray


def align_to(
    data: TrainingData,
    holdout: Holdout,
    item_ids: Sequence[str],
    user_ids: Sequence[str],
    engine: Engine,
) -> tuple[TrainingData, Holdout]:
    """``data`` and ``holdout`` with a model's items and users first, in the model's order.

    Movies (users) the model knows but the snapshot lacks get empty columns (rows), so the
    model's column ``j`` is column ``j`` here; everything else is appended in snapshot order.
    """
    if (
        list(item_ids) == data.item_ids[: len(item_ids)]
        and list(user_ids) == data.user_ids[: len(user_ids)]
    ):
        return data, holdout
    col_new, new_items = _positions(data.item_ids, item_ids)
    row_new, new_users = _positions(data.user_ids, user_ids)
    shape = (len(new_users), len(new_items))

    def remap(m: sp.csr_matrix) -> sp.csr_matrix:
        c = m.tocoo()
        out = sp.csr_matrix((c.data, (row_new[c.row], col_new[c.col])), shape=shape)
        out.sort_indices()
        return out

    known = dict(zip(data.item_ids, zip(data.item_genres, data.years, strict=True), strict=True))
    genres: list[tuple[str, ...]] = []
    years: list[int | None] = []
    with engine.lock:
        cat = engine.catalog
        for mid in new_items:
            if mid in known:
                g, y = known[mid]
            else:  # a movie of the model without interactions now
                idx = cat.ids.get(mid)
                g = tuple(cat.genre_names(idx)) if idx is not None else ()
                y = cat.years[idx] if idx is not None else None
            genres.append(g)
            years.append(y)
    aligned = replace(
        data,
        interactions=remap(data.interactions),
        item_genres=genres,
        years=years,
        item_ids=new_items,
        user_ids=new_users,
    )
    return aligned, Holdout(remap(holdout.train), row_new[holdout.users], col_new[holdout.items])


def keep_top_items(data: TrainingData, holdout: Holdout, n: int) -> tuple[TrainingData, Holdout]:
    """``data`` and ``holdout`` cut to the ``n`` movies with the most positive signals.

    Dense item-item models (EASE: memory and fit time grow with items squared) train on this
    head of the catalogue; the other movies reach users through the other sources. A held-out
    movie outside the head stays a miss in the hold-out metrics (index -1)."""
    if data.shape[1] <= n:
        return data, holdout
    positives = np.asarray((data.interactions > 0).sum(axis=0)).ravel()
    keep = np.sort(np.argsort(-positives, kind="stable")[:n])
    new_col = np.full(data.shape[1], -1, dtype=np.int64)
    new_col[keep] = np.arange(len(keep))
    cut = replace(
        data,
        interactions=data.interactions[:, keep].tocsr(),
        item_genres=[data.item_genres[i] for i in keep],
        years=[data.years[i] for i in keep],
        item_ids=[data.item_ids[i] for i in keep],
    )
    return cut, Holdout(holdout.train[:, keep].tocsr(), holdout.users, new_col[holdout.items])


def holdout_split(
    x: sp.csr_matrix,
    n_users: int,
    seed: int = 0,
    share: float = 0.2,
    most: int = 10,
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Hold out a random ``share`` of the positives (at least 1, at most ``most``) of up to
    ``n_users`` users with at least 3 positives.

    Returns ``(train, users, items)``: the matrix without the held-out cells and the held-out
    ``(user, item)`` pairs (a user appears once per held-out item).
    """
    rng = np.random.default_rng(seed)
    pos = (x > 0).astype(np.int32)
    counts = np.asarray(pos.sum(axis=1)).ravel()
    eligible = np.flatnonzero(counts >= 3)
    chosen = rng.choice(eligible, size=min(n_users, len(eligible)), replace=False)
    chosen.sort()
    users: list[int] = []
    items: list[int] = []
    keep = np.ones(x.nnz, dtype=bool)
    for u in chosen:
        lo, hi = x.indptr[u], x.indptr[u + 1]
        cells = np.arange(lo, hi)[x.data[lo:hi] > 0]
        n = int(min(max(1, round(share * len(cells))), most, len(cells) - 2))
        out = rng.choice(cells, size=n, replace=False)
        keep[out] = False
        users.extend([int(u)] * n)
        items.extend(x.indices[out].tolist())
    train = x.copy()
    train.data = np.where(keep, train.data, 0).astype(train.data.dtype)
    train.eliminate_zeros()
    return train, np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


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
    uniq, row = np.unique(users, return_inverse=True)
    uf = features.get("user_features")
    reco, _ = model.recommend(
        train[uniq],
        k=k,
        filter_seen=True,
        user_features=None if uf is None else uf[uniq],
        user_ids=uniq,
    )
    # A held-out movie the model has no column for (-1, see keep_top_items) is a miss: it
    # counts in the ideal (column n, which no model recommends) and is never found.
    n = train.shape[1]
    truth = sp.csr_matrix(
        (np.ones(len(items)), (row, np.where(items >= 0, items, n))), shape=(len(uniq), n + 1)
    )
    truth.sum_duplicates()
    truth.data[:] = 1.0
    hits = np.asarray(
        [
            np.isin(reco[j], truth.indices[truth.indptr[j] : truth.indptr[j + 1]]).any()
            for j in range(len(uniq))
        ]
    )
    ndcg = ndcg_at_k(reco, truth, k)
    return {
        "ndcg@10": round(float(ndcg), 5),
        "hr@10": round(float(hits.mean()), 5),
        "holdout_users": float(len(uniq)),
    }


def model_features(data: TrainingData, model: Model, x: sp.csr_matrix) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if model.uses_item_features or model.uses_user_features:
        itf, names = item_features(data.item_genres, data.years)
        if model.uses_item_features:
            out["item_features"] = itf
            out["item_feature_names"] = names
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

    Catalogue movies the model does not know (added after training, or without interactions
    then) get -inf, except from models that score unknown items from their features
    (:meth:`cinerec.models.Model.score_cold_items`, LightFM): their genre and decade rows are
    built once per catalogue change with the vocabulary saved with the model.
    """

    positive_only = False

    def __init__(
        self,
        model: Model,
        record: ModelRecord,
        item_ids: list[str],
        user_ids: list[str],
        catalog: Catalog,
    ) -> None:
        self.model = model
        self.record = record
        self.name = record.kind
        self.item_ids = item_ids
        self.user_ids = user_ids
        self.user_index = {u: i for i, u in enumerate(user_ids)}
        self._cold_key: tuple[int, int, int] | None = None
        self._cold: tuple[np.ndarray, sp.csr_matrix] | None = None
        # model item -> catalogue idx (allocating inactive entries for ids not seen here)
        self.to_catalog = np.fromiter(
            (catalog.index(m) for m in item_ids), dtype=np.int64, count=len(item_ids)
        )
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
        cold = self._cold_items(catalog)
        if cold is not None:
            ids = None if uid is None else np.asarray([uid], dtype=np.int64)
            cs = self.model.score_cold_items(row, cold[1], None, ids)
            if cs is not None:
                out[cold[0]] = cs[0]
        return out

    def explain(self, user: UserState, catalog: Catalog, idx: int) -> list[int]:
        return self.explain_many(user, catalog, [idx])[0]

    def explain_many(
        self, user: UserState, catalog: Catalog, idxs: Sequence[int]
    ) -> list[list[int]]:
        """The user's liked movies that add most to the model's score of each movie
        (:meth:`cinerec.models.Model.explain` on the same row the score folds in)."""
        out: list[list[int]] = [[] for _ in idxs]
        size = len(self.from_catalog)
        cols = [int(self.from_catalog[i]) if i < size else -1 for i in idxs]
        asked = [n for n, m in enumerate(cols) if 0 <= m < self.model.n_items]
        if not asked or not user.interactions:
            return out
        mine = np.fromiter(user.interactions.keys(), dtype=np.int64)
        val = np.fromiter(user.interactions.values(), dtype=np.float32, count=len(mine))
        inside = mine < size
        where, val = self.from_catalog[mine[inside]], val[inside]
        known = where >= 0
        row = sp.csr_matrix(
            (val[known], (np.zeros(int(known.sum()), dtype=np.int64), where[known])),
            shape=(1, self.model.n_items),
        )
        found = self.model.explain(row, [cols[n] for n in asked])
        for n, (items, _) in zip(asked, found, strict=True):
            liked = (int(self.to_catalog[j]) for j in items)
            out[n] = [i for i in liked if user.likes(i)]
        return out

    def _cold_items(self, catalog: Catalog) -> tuple[np.ndarray, sp.csr_matrix] | None:
        """Active catalogue movies unknown to the model and their side-feature rows (cached
        until the catalogue changes); None when the model has no named item features."""
        names = self.model.item_feature_names
        if not names:
            return None
        key = (id(catalog), catalog.version, catalog.n)
        if key != self._cold_key:
            known = np.zeros(catalog.n, dtype=bool)
            known[self.to_catalog[self.to_catalog < catalog.n]] = True
            idx = np.flatnonzero(catalog.active[: catalog.n] & ~known)
            self._cold = None
            if len(idx):
                feats = cold_item_features(
                    [catalog.genre_names(int(i)) for i in idx],
                    [catalog.years[int(i)] for i in idx],
                    names,
                )
                self._cold = (idx, feats)
            self._cold_key = key
        return self._cold


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
    #: the ranker chosen by this run (None without evidence yet)
    ranker: ModelRecord | None = None
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
        self.last_attempt = 0.0
        #: how long the last completed run took (the schedule's duty cycle, see :meth:`due`)
        self.last_seconds = 0.0
        self.ranker_record: ModelRecord | None = None
        #: called after every run with (mode asked, report or None when it raised, seconds)
        self.listeners: list[Callable[[str, TrainReport | None, float], None]] = []

    # -- serving set -----------------------------------------------------------------------
    def serving(self) -> dict[str, ModelRecommender]:
        return {
            n: r for n, r in self.engine.recommenders.items() if isinstance(r, ModelRecommender)
        }

    def _activate(self, rec: ModelRecommender) -> None:
        self.engine.register(rec)
        self._choose_personal()

    def _choose_personal(self) -> None:
        """Which serving models propose candidates to the ranker: ``serving_model`` alone if
        it serves; on "auto", all of them (the best one on the held-out check is the one named
        as personal in reports and `/models`)."""
        serving = self.serving()
        eng = self.engine
        eng.personal_pool = []
        if not serving:
            eng.personal = None
            return
        wanted = self.settings.serving_model
        if wanted != "auto" and wanted in serving:
            eng.personal = wanted
            eng.personal_pool = [wanted]
            return
        best = max(serving.values(), key=lambda r: r.record.metrics.get("ndcg@10", 0.0))
        eng.personal = best.name
        eng.personal_pool = sorted(serving)

    def load_serving(self) -> None:
        """Load the registry's serving models (at start-up, or when a worker trained new ones)."""
        current = {r.record.version for r in self.serving().values()}
        for rec in self.store.serving_models():
            if rec.version in current or not Path(rec.path).exists():
                continue
            if rec.kind == "ranker":
                if self.ranker_record is None or self.ranker_record.version != rec.version:
                    ranker = load_ranker(Path(rec.path))
                    with self.engine.lock:
                        self.engine.ranker = ranker
                    self.ranker_record = rec
                    log.info("serving ranker %s (%s)", rec.version, ranker.name)
                continue
            items, users = load_ids(ids_path(rec.path))
            with self.engine.lock:
                model_rec = ModelRecommender(
                    load_model(rec.path), rec, items, users, self.engine.catalog
                )
            self._activate(model_rec)
            log.info("serving model %s (%s)", rec.version, rec.kind)
            # A restart picks up the schedule where the promoted models left it, instead of
            # refitting everything as soon as a few events arrive.
            self.last_run = max(self.last_run, rec.created_at)
            if rec.mode == "full":
                self.last_full = max(self.last_full, rec.created_at)

    def forget(self) -> None:
        """Part of /cleanup: drop every model from serving and delete the artifacts."""
        for name in list(self.serving()):
            self.engine.recommenders.pop(name, None)
        self.engine.personal = None
        self.engine.personal_pool = []
        self.engine.ranker = None
        self.ranker_record = None
        if self.model_dir.exists():
            for pattern in ("*.npz", "*.ids.json", "ranker-*.json"):
                for f in self.model_dir.glob(pattern):
                    f.unlink(missing_ok=True)
        self.last_trained_events = 0

    # -- training --------------------------------------------------------------------------
    def kinds(self, data: TrainingData) -> list[str]:
        return list(dict.fromkeys(self.settings.models))

    def train(self, mode: str = "full") -> TrainReport:
        """One training run (:meth:`_train`), reported to :attr:`listeners`."""
        t0 = time.perf_counter()
        report: TrainReport | None = None
        try:
            report = self._train(mode)
            return report
        finally:
            for listener in self.listeners:
                listener(mode, report, time.perf_counter() - t0)

    def _train(self, mode: str) -> TrainReport:
        """Fit the personal models and the ranker; promote what is not worse on held-out
        evidence; serve the promoted models refitted on all the data.

        1. Hold out random positives of a sample of users; fit every model without them.
        2. Promote a model unless its held-out nDCG@10 is worse than the serving one's (the
           figure of that one's own check, while the data has not grown by 10 %).
        3. Train the ranker on the candidates of the held-out slice (with the models as fitted
           in 1) and on logged impressions; serve the best ranker on validation groups
           (:func:`cinerec.ranker_training.choose_ranker`).
        4. Refit each promoted model on everything (what serves is what was checked, plus the
           held-out slice) and swap it in.
        """
        if mode not in ("full", "incremental"):
            raise ValueError("mode must be 'full' or 'incremental'")
        with self._lock:
            self.last_attempt = time.time()
            t0 = time.perf_counter()
            report = TrainReport(mode)
            data = build_training_data(self.engine, self.settings.training_half_life_days)
            need = self.settings.min_events_to_train
            if data.interactions.nnz < need:
                report.skipped = f"only {data.interactions.nnz} interactions; need {need}"
                return report
            if mode == "incremental" and not self.serving():
                mode = report.mode = "full"  # nothing to update yet
            # Random positives, not each user's last ones: imported history often arrives in an
            # arbitrary order (by movie id, by user), and a last-events slice taught the ranker
            # that order instead of taste (docs/ranking.md). What comes next is what the
            # online evidence (logged impressions) teaches.
            holdout = Holdout(*holdout_split(data.interactions, HOLDOUT_USERS))
            serving = self.serving()
            targets = self.kinds(data) if mode == "full" else list(serving)
            promoted: list[tuple[str, TrainingData, dict[str, float], float]] = []
            checked: dict[str, Recommender] = {}
            for kind in targets:
                old = serving.get(kind)
                run_data, _, model, metrics, fit_s = self._fit_checked(
                    kind, mode, data, holdout, old
                )
                checked[kind] = self._recommender(model, kind, run_data)
                status = "serving"
                if old is not None and old.record.n_events >= 0.9 * data.n_events:
                    # The serving model was refitted on everything of its day, held-out cells
                    # of today included: scoring it on today's slice would flatter it. It is
                    # compared by the figure of its own check, and only while the data is
                    # about the same; once it has grown, the newer fit serves.
                    served = old.record.metrics.get("ndcg@10", 0.0)
                    if metrics.get("ndcg@10", 0) < served - self.settings.promotion_tolerance:
                        status = "rejected"
                        metrics["serving_ndcg@10"] = served
                if status == "serving":
                    promoted.append((kind, run_data, metrics, fit_s))
                else:
                    report.trained.append(
                        self._register(model, kind, mode, run_data, fit_s, status, metrics)
                    )
            if self.engine.generation != data.generation:
                report.skipped = "state was reset (/cleanup) during training"
                return report
            ranker_record = self._train_ranker(data, holdout, checked, mode)
            for kind, run_data, metrics, fit_s in promoted:
                model, fit_all_s = self._refit_all(kind, mode, run_data, serving.get(kind))
                model.metrics = metrics
                record = self._register(
                    model, kind, mode, run_data, fit_s + fit_all_s, "serving", metrics
                )
                report.trained.append(record)
                with self.engine.lock:
                    if self.engine.generation != data.generation:
                        report.skipped = "state was reset (/cleanup) during training"
                        return report
                    self._activate(
                        ModelRecommender(
                            model, record, run_data.item_ids, run_data.user_ids, self.engine.catalog
                        )
                    )
            if ranker_record is not None:
                with self.engine.lock:
                    if self.engine.generation != data.generation:
                        report.skipped = "state was reset (/cleanup) during training"
                        return report
                    self.store.add_model(ranker_record[0])
                    self.engine.ranker = ranker_record[1]
                    self.ranker_record = ranker_record[0]
                report.ranker = ranker_record[0]
            self.last_trained_events = data.n_events
            self.last_run = time.time()
            self.last_seconds = time.perf_counter() - t0
            if mode == "full":
                self.last_full = self.last_run
            report.serving = [r.record.version for r in self.serving().values()]
            if self.ranker_record is not None:
                report.serving.append(self.ranker_record.version)
            report.seconds = round(time.perf_counter() - t0, 3)
            return report

    def _fit_checked(
        self,
        kind: str,
        mode: str,
        data: TrainingData,
        holdout: Holdout,
        old: ModelRecommender | None,
    ) -> tuple[TrainingData, Holdout, Model, dict[str, float], float]:
        """Fit one kind without the held-out slice and score it on the slice."""
        if kind in DENSE_ITEM_MODELS:
            # refit from scratch on the most-liked movies (their partial_fit is a refit
            # anyway, and the head of the catalogue moves as likes arrive)
            model = make_model(kind)
            run_data, hold = keep_top_items(data, holdout, self.settings.dense_model_max_items)
        elif mode == "incremental" and old is not None:
            # partial_fit mutates; keep serving the old object until the swap
            model = load_model(self._save_tmp(old.model))
            run_data, hold = align_to(data, holdout, old.item_ids, old.user_ids, self.engine)
        else:
            model = make_model(kind)
            run_data, hold = data, holdout
        feats = model_features(run_data, model, hold.train)
        fit_t0 = time.perf_counter()
        fit = model.partial_fit if mode == "incremental" else model.fit
        fit(
            hold.train,
            feats.get("item_features"),
            feats.get("user_features"),
            item_feature_names=feats.get("item_feature_names"),
        )
        fit_s = time.perf_counter() - fit_t0
        metrics = holdout_metrics(model, hold.train, hold.users, hold.items, feats)
        model.metrics = metrics
        return run_data, hold, model, metrics, fit_s

    def _refit_all(
        self, kind: str, mode: str, run_data: TrainingData, old: ModelRecommender | None
    ) -> tuple[Model, float]:
        """The promoted kind fitted again on every interaction (held-out slice included)."""
        if mode == "incremental" and old is not None and kind not in DENSE_ITEM_MODELS:
            model = load_model(self._save_tmp(old.model))
            fit = model.partial_fit
        else:
            model = make_model(kind)
            fit = model.fit
        x = run_data.interactions
        feats = model_features(run_data, model, x)
        t0 = time.perf_counter()
        fit(
            x,
            feats.get("item_features"),
            feats.get("user_features"),
            item_feature_names=feats.get("item_feature_names"),
        )
        return model, time.perf_counter() - t0

    def _recommender(self, model: Model, kind: str, data: TrainingData) -> ModelRecommender:
        """A model as a source over this engine's ids, outside serving (ranker training)."""
        record = ModelRecord(kind, kind, {}, {}, "check", 0, 0, 0, 0.0, "candidate", "")
        with self.engine.lock:
            return ModelRecommender(
                model, record, data.item_ids, data.user_ids, self.engine.catalog
            )

    def _train_ranker(
        self,
        data: TrainingData,
        holdout: Holdout,
        checked: dict[str, Recommender],
        mode: str,
    ) -> tuple[ModelRecord, Ranker] | None:
        """Fit and choose the ranker (see :mod:`cinerec.ranker_training`); the record to
        register and the ranker, or None when there is no evidence yet."""
        t0 = time.perf_counter()
        groups = offline_groups(
            self.engine,
            holdout.users,
            holdout.items,
            data.item_idx,
            checked,
            x=data.interactions,
            warm_users=self.settings.ranker_warm_users,
            cold_users=self.settings.ranker_cold_users,
        )
        with self.engine.lock:
            online = self.engine.impressions.snapshot()
        choice = choose_ranker(groups + online, self.engine.ranker)
        if choice is None:
            return None
        version = f"ranker-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.model_dir.mkdir(parents=True, exist_ok=True)
        path = self.model_dir / f"{version}.json"
        ranker = choice.ranker
        ranker.save(path)
        metrics = {
            "ndcg@10": choice.scores.get(
                f"warm:{ranker.warm.name}", choice.scores.get("warm:serving", 0.0)
            ),
            **{f"valid_ndcg@10:{k}": v for k, v in choice.scores.items()},
            "groups_offline": float(sum(g.origin == "offline" for g in groups)),
            "groups_online": float(len(online)),
        }
        record = ModelRecord(
            version,
            "ranker",
            {"ranker": ranker.name},
            metrics,
            mode,
            choice.n_train,
            choice.n_valid,
            data.n_events,
            round(time.perf_counter() - t0, 3),
            "serving",
            str(path),
        )
        log.info("ranker %s (%s): %s", version, ranker.name, choice.scores)
        return record, ranker

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
        untrained = not self.serving() and self.engine.ranker is None
        if (
            untrained
            and self.engine.n_events >= self.settings.min_events_to_train
            and now - self.last_attempt >= self.settings.min_retrain_interval_s
        ):
            # A store with events and nothing trained (an import, the demo): train at once,
            # whether or not events arrived since start-up.
            return "full"
        new_events = self.engine.n_events - self.last_trained_events
        if new_events < self.settings.min_events_to_train:
            return None
        if not self.serving() or now - self.last_full >= self.settings.full_interval_s:
            return "full"
        # A young data set changes fast (a fresh catalogue after /cleanup, a launch): refit
        # whenever the events have grown by ``retrain_growth`` since the last fit.
        grown = new_events >= self.settings.retrain_growth * max(self.last_trained_events, 1)
        # Training shares the machine with serving: after a run of t seconds, wait at least
        # t · (1 / duty - 1), so that training takes at most ``training_duty`` of the time.
        duty = self.settings.training_duty
        rest = max(self.settings.min_retrain_interval_s, self.last_seconds * (1 / duty - 1))
        if grown and now - self.last_run >= rest:
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
        _lowest_cpu_priority()
        while not self._stop.wait(self.tick_s):
            try:
                mode = self.trainer.due()
                if mode:
                    self.trainer.train(mode)
                else:
                    self.trainer.load_serving()  # pick up models a worker trained
            except Exception:
                log.exception("scheduled training failed")


def _lowest_cpu_priority() -> None:
    """Run the calling thread (and the threads it starts: LightGBM's, OpenBLAS's) at nice 19
    on Linux, where niceness is per thread: when training and requests want the same core,
    the requests get it. Elsewhere, or where the OS refuses, nothing changes."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        log.debug("could not lower the training thread's priority")
