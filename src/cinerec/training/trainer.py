"""Training, evaluation on a held-out slice, promotion and hot swap of personal models.

Training data comes from the engine's serving state (which the store rebuilt at start-up),
so the weights per event kind are exactly the ones serving uses: one path for the CLI, the
worker, the scheduler and the admin endpoint.

Promotion: a candidate is fitted with 20 % of the positives of a sample of users held out,
scored on those hold-outs (nDCG@10, HR@10), and serves unless it is worse than the serving
model of the same kind (by that one's own check, while the data has not grown by 10 %) beyond
``promotion_tolerance``. What serves is then refitted on everything. The ranker that orders
the default list is trained on the same slice (:mod:`cinerec.training.ranker`).

Columns: the training matrix has one column per movie with at least one interaction (not per
catalogue movie), so the dense-model limit counts movies people actually reached. A model's
columns are named by the external ids saved beside it; an incremental run and the comparison
with the serving model reorder the matrix to that model's columns first (new movies
appended), so a column keeps meaning the same movie for the model's whole life.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cinerec.config import Settings
from cinerec.domain import ModelRecord
from cinerec.engine import Engine
from cinerec.engine.ranking import Ranker, load_ranker
from cinerec.engine.recommenders import ModelRecommender, Recommender
from cinerec.models import Model, load_model, make_model
from cinerec.store import Store
from cinerec.training.data import TrainingData, build_training_data
from cinerec.training.fitting import DENSE_ITEM_MODELS, ids_path, load_ids, model_features, save_ids
from cinerec.training.holdout import (
    Holdout,
    align_to,
    holdout_metrics,
    holdout_split,
    keep_top_items,
)
from cinerec.training.ranker import choose_ranker, offline_groups

log = logging.getLogger(__name__)

HOLDOUT_USERS = 2000


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
        self._lock = threading.RLock()
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

    def train_if_due(self) -> TrainReport | None:
        """The schedule's run: :meth:`due` asked once no other run is under way, so that a
        run an admin asked for while the schedule waited is not repeated at once (the demo's
        start-up run used to be: a second full run right after the first)."""
        with self._lock:
            mode = self.due()
            return self.train(mode) if mode else None

    def _train(self, mode: str) -> TrainReport:
        """Fit the personal models and the ranker; promote what is not worse on held-out
        evidence; serve the promoted models refitted on all the data.

        1. Hold out random positives of a sample of users; fit every model without them.
        2. Promote a model unless its held-out nDCG@10 is worse than the serving one's (the
           figure of that one's own check, while the data has not grown by 10 %).
        3. Train the ranker on the candidates of the held-out slice (with the models as fitted
           in 1) and on logged impressions; serve the best ranker on validation groups
           (:func:`cinerec.training.ranker.choose_ranker`).
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
        """Fit and choose the ranker (see :mod:`cinerec.training.ranker`); the record to
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
