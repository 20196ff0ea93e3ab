"""Prometheus metrics, one registry per role (``docs/observability.md``).

Each role owns its registry and serves it itself: the main app (``api``) and the collector app
(``collector``) at ``/metrics`` on their own ports, the training worker (``worker``) on
``--metrics-port``. Nothing is shared between processes (no ``PROMETHEUS_MULTIPROC_DIR``):
every role runs as one process, and Prometheus tells the roles apart by their targets. When
``cinerec serve`` runs the api and collector roles in one process, the state read at scrape
time (engine, models, online quality, dependencies) is exported by the api role only, so no
series is counted twice.

Live state is read at scrape time by custom collectors (:class:`StateCollector`,
:class:`ModelCollector`) instead of being mirrored into counters on the request path; only
what has no state to read (HTTP requests, list latency, training runs) is counted as it
happens.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cinerec.observability.online import ALL, OnlineMonitor

if TYPE_CHECKING:
    from cinerec.service import RecResult, RecService
    from cinerec.training import Trainer, TrainReport

# ``*_created`` series double the output and no dashboard or rule here reads them.
disable_created_metrics()

#: request latency buckets: the /recs path answers in milliseconds, batch imports in seconds
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TRAIN_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: the route label of a request no route matched (404s of arbitrary paths stay one series)
UNMATCHED = "unmatched"
#: sources that are popularity fallbacks (seed 000's ``popular_recommendations_total``)
POPULARITY_SOURCES = frozenset({"popular", "top_rated", "genre_top", "genre_popular"})
#: models whose online figures seed 000 exports under fixed names (``als_precision_at_3`` …)
SEED_MODELS = ("als", "lightfm")
#: dependencies are pinged at most this often, off the scrape's thread
PROBE_INTERVAL_S = 10.0


class HttpMetrics:
    """``http_requests_total`` and ``http_request_latency_seconds`` by method, route template
    and status. Label children are cached: an observation costs two dictionary look-ups, an
    increment and a bucket search."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("method", "route", "status")
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by method, route template and status",
            labels,
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_latency_seconds",
            "Time from the request to the end of the response, by method, route template and "
            "status",
            labels,
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            m = method if method in METHODS else "other"
            children = (
                self.requests.labels(m, route, str(status)),
                self.latency.labels(m, route, str(status)),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class TrainingMetrics:
    """Counted as runs finish (a :attr:`Trainer.listeners` hook)."""

    def __init__(self, registry: CollectorRegistry, trainer: Trainer) -> None:
        self.duration = Histogram(
            "model_train_duration_seconds",
            "Duration of a training run, by type (full, incremental = seed 000's partial)",
            ("type",),
            buckets=TRAIN_BUCKETS,
            registry=registry,
        )
        self.runs = Counter(
            "cinerec_training_runs_total",
            "Training runs, by mode and outcome (trained, skipped, failed)",
            ("mode", "outcome"),
            registry=registry,
        )
        self.candidate_ndcg = Gauge(
            "cinerec_candidate_ndcg_at_10",
            "Held-out nDCG@10 of the model the last run fitted, promoted or not",
            ("model",),
            registry=registry,
        )
        trainer.listeners.append(self.on_run)

    def on_run(self, mode: str, report: TrainReport | None, seconds: float) -> None:
        if report is None:
            self.runs.labels(mode, "failed").inc()
            return
        if report.skipped and not report.trained:
            self.runs.labels(report.mode, "skipped").inc()
            return
        self.runs.labels(report.mode, "trained").inc()
        self.duration.labels(report.mode).observe(seconds)
        for rec in report.trained:
            if "ndcg@10" in rec.metrics:
                self.candidate_ndcg.labels(rec.kind).set(rec.metrics["ndcg@10"])


class RecommendationMetrics:
    """Counted as lists are served (a :attr:`RecService.rec_listeners` hook)."""

    def __init__(self, registry: CollectorRegistry, svc: RecService) -> None:
        self.svc = svc
        self.duration = Histogram(
            "recommendation_duration_seconds",
            "Time to compute one recommendation list (service call, no HTTP)",
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.popular = Counter(
            "popular_recommendations_total",
            "Lists served mostly from a popularity source, by reason (requested, no_model, "
            "cold_user, ranked)",
            ("reason",),
            registry=registry,
        )
        for reason in ("requested", "no_model", "cold_user", "ranked"):
            self.popular.labels(reason=reason)  # every series exists from the start, at 0
        self.lists = Counter(
            "cinerec_recommendations_total",
            "Lists served, by the source that produced most of each",
            ("source",),
            registry=registry,
        )
        self._lists: dict[str, Any] = {}
        svc.rec_listeners.append(self.on_list)

    def on_list(self, result: RecResult, seconds: float, forced: str | None) -> None:
        self.duration.observe(seconds)
        child = self._lists.get(result.source)
        if child is None:
            child = self._lists[result.source] = self.lists.labels(result.source)
        child.inc()
        if result.source in POPULARITY_SOURCES:
            self.popular.labels(self._reason(result.user_id, forced)).inc()

    def _reason(self, user_id: str, forced: str | None) -> str:
        if forced:
            return "requested"
        engine = self.svc.engine
        if not engine.personal_pool:
            return "no_model"
        u = engine.user(user_id, create=False)
        return "cold_user" if u is None or not u.interactions else "ranked"


class DependencyProbe:
    """Pings the store and the cache in the background, at most every ``interval_s``; a
    scrape reads the last answer."""

    def __init__(self, svc: RecService, interval_s: float = PROBE_INTERVAL_S) -> None:
        self.svc = svc
        self.interval_s = interval_s
        self.up: dict[str, float] = {}
        self.checked_at = 0.0
        self._running = threading.Lock()

    def check(self) -> dict[str, float]:
        up: dict[str, float] = {}
        for name, ping in (("database", self.svc.store.ping), ("cache", self.svc.cache.ping)):
            try:
                ping()
                up[name] = 1.0
            except Exception:  # down is what we report, not raise
                up[name] = 0.0
        self.up = up
        self.checked_at = time.time()
        return up

    def maybe_check(self) -> None:
        if time.time() - self.checked_at < self.interval_s:
            return
        if not self._running.acquire(blocking=False):
            return

        def run() -> None:
            try:
                self.check()
            finally:
                self._running.release()

        threading.Thread(target=run, name="dependency-probe", daemon=True).start()


class ModelCollector(Collector):
    """The models a process serves, read at scrape time: loaded or not, held-out nDCG, age,
    matrix size, and when this process last trained."""

    def __init__(self, trainer: Trainer, kinds: list[str]) -> None:
        self.trainer = trainer
        self.kinds = kinds

    def collect(self) -> Iterator[Any]:
        now = time.time()
        records = {name: rec.record for name, rec in self.trainer.serving().items()}
        if self.trainer.ranker_record is not None:
            records["ranker"] = self.trainer.ranker_record
        loaded = GaugeMetricFamily(
            "model_loaded_status", "1 when a model of this kind serves, else 0", labels=["model"]
        )
        for kind in sorted({*self.kinds, "ranker", *records}):
            loaded.add_metric([kind], 1.0 if kind in records else 0.0)
        yield loaded
        size = GaugeMetricFamily(
            "matrix_size_elements",
            "Users x movies of the interaction matrix the serving model was fitted on",
            labels=["model"],
        )
        ndcg = GaugeMetricFamily(
            "cinerec_model_ndcg_at_10",
            "Held-out nDCG@10 of the serving model (its promotion check)",
            labels=["model"],
        )
        age = GaugeMetricFamily(
            "cinerec_model_age_seconds",
            "Seconds since the serving model was fitted",
            labels=["model"],
        )
        for kind, rec in sorted(records.items()):
            size.add_metric([kind], float(rec.n_users * rec.n_items))
            if "ndcg@10" in rec.metrics:
                ndcg.add_metric([kind], float(rec.metrics["ndcg@10"]))
            age.add_metric([kind], max(0.0, now - rec.created_at))
        yield size
        yield ndcg
        yield age
        yield GaugeMetricFamily(
            "cinerec_last_training_timestamp_seconds",
            "Unix time of this process's last completed training run (0: none yet)",
            value=self.trainer.last_run,
        )


class StateCollector(Collector):
    """The serving state, read at scrape time: per-source tallies, counts, backlogs,
    dependencies and the online quality (recomputed in the background when stale)."""

    def __init__(
        self, svc: RecService, online: OnlineMonitor, probe: DependencyProbe | None = None
    ) -> None:
        self.svc = svc
        self.online = online
        self.probe = probe or DependencyProbe(svc)

    def collect(self) -> Iterator[Any]:
        svc, eng = self.svc, self.svc.engine
        eng.fold_served()  # lists served on the fast path count from now, not ~20 ms later
        with eng.lock:
            tallies = [(n, t.shown, t.liked, t.disliked) for n, t in sorted(eng.tallies.items())]
            n_events = eng.n_events
            n_users = len(eng.users) + len(eng.viewers)  # as Engine.stats counts
            n_movies = int(eng.catalog.servable.sum())
        shown = CounterMetricFamily(
            "cinerec_source_impressions",
            "Movies shown, by the source that chose each",
            labels=["source"],
        )
        liked = CounterMetricFamily(
            "cinerec_source_likes", "Shown movies the user then liked, by source", labels=["source"]
        )
        disliked = CounterMetricFamily(
            "cinerec_source_dislikes",
            "Shown movies the user then disliked, by source",
            labels=["source"],
        )
        rate = GaugeMetricFamily(
            "cinerec_source_like_rate", "Likes per impression, by source", labels=["source"]
        )
        for name, n_shown, n_liked, n_disliked in tallies:
            shown.add_metric([name], n_shown)
            liked.add_metric([name], n_liked)
            disliked.add_metric([name], n_disliked)
            rate.add_metric([name], n_liked / n_shown if n_shown else 0.0)
        yield from (shown, liked, disliked, rate)
        yield CounterMetricFamily(
            "cinerec_events_ingested",
            "Events applied to the serving state (since start-up or the last /cleanup)",
            value=n_events,
        )
        yield GaugeMetricFamily("cinerec_catalog_movies", "Servable movies", value=n_movies)
        yield GaugeMetricFamily("cinerec_users", "Users known to the serving state", value=n_users)
        yield GaugeMetricFamily(
            "cinerec_rec_log_pending",
            "Recommendation log entries waiting for the background writer",
            value=svc.rec_log.backlog,
        )
        yield GaugeMetricFamily(
            "cinerec_events_since_training",
            "Events applied since the last training run read the data (served live by "
            "fold-in, not yet fitted)",
            value=max(0, n_events - svc.trainer.last_trained_events),
        )
        yield GaugeMetricFamily(
            "cinerec_uptime_seconds",
            "Seconds since the service started",
            value=time.time() - svc.started_at,
        )
        self.probe.maybe_check()
        up = GaugeMetricFamily(
            "cinerec_dependency_up",
            "1 when the dependency answered its last ping, else 0",
            labels=["dependency"],
        )
        for name, value in sorted(self.probe.up.items()):
            up.add_metric([name], value)
        yield up
        yield from self._online()
        yield from self._experiment()

    def _experiment(self) -> Iterator[Any]:
        """The running experiment's per-variant figures, from its last report (recomputed
        in the background when older than the online refresh interval)."""
        ex = self.svc.experiments
        ex.maybe_refresh_report(self.svc.settings.online_refresh_s)
        rep = ex.last_report
        labels = ["experiment", "variant"]
        impressions = CounterMetricFamily(
            "cinerec_experiment_impressions",
            "Movies shown in the running experiment, by variant",
            labels=labels,
        )
        likes = CounterMetricFamily(
            "cinerec_experiment_likes",
            "Shown movies liked within the attribution window, by variant of the running "
            "experiment",
            labels=labels,
        )
        users = GaugeMetricFamily(
            "cinerec_experiment_users",
            "Users shown a list in the running experiment, by variant",
            labels=labels,
        )
        rate = GaugeMetricFamily(
            "cinerec_experiment_like_rate",
            "Likes per impression in the running experiment, by variant",
            labels=labels,
        )
        if rep is not None:
            for v in rep["variants"]:
                key = [rep["id"], v["name"]]
                impressions.add_metric(key, v["impressions"])
                likes.add_metric(key, v["likes"])
                users.add_metric(key, v["users"])
                value = v["like_rate"]["value"]
                rate.add_metric(key, math.nan if value is None else value)
        yield from (impressions, likes, users, rate)

    def _online(self) -> Iterator[Any]:
        self.online.maybe_refresh()
        s = self.online.summary
        precision = GaugeMetricFamily(
            "cinerec_online_precision",
            "Online Precision@K of logged lists over the sliding window, by list source",
            labels=["k", "source"],
        )
        recall = GaugeMetricFamily(
            "cinerec_online_recall",
            "Online Recall@K of logged lists with a like, over the sliding window, by source",
            labels=["k", "source"],
        )
        lists = GaugeMetricFamily(
            "cinerec_online_lists",
            "Logged lists in the sliding window, by source",
            labels=["source"],
        )
        slot = GaugeMetricFamily(
            "cinerec_online_slot_precision",
            "Share of the first K slots a source filled that were then liked",
            labels=["k", "source"],
        )
        seed: dict[str, float] = {}
        if s is not None:
            for source, q in sorted(s.groups.items()):
                lists.add_metric([source], q.lists)
                for k in s.ks:
                    precision.add_metric([str(k), source], q.precision[k])
                    r = q.recall[k]
                    if r is not None:
                        recall.add_metric([str(k), source], r)
            for source, sq in sorted(s.slots.items()):
                for k in s.ks:
                    if sq.shown.get(k):
                        slot.add_metric([str(k), source], sq.precision(k))
            for model in SEED_MODELS:
                mq = s.groups.get(model)
                if mq is not None and 3 in mq.precision:
                    r3 = mq.recall[3]
                    seed[f"{model}_precision_at_3"] = mq.precision[3]
                    seed[f"{model}_recall_at_3"] = math.nan if r3 is None else r3
        yield from (precision, recall, lists, slot)
        for model in SEED_MODELS:
            for what in ("precision", "recall"):
                name = f"{model}_{what}_at_3"
                yield GaugeMetricFamily(
                    name,
                    f'Seed 000\'s name for cinerec_online_{what}{{k="3",source="{model}"}} '
                    "(NaN while no list of that source is in the window)",
                    value=seed.get(name, math.nan),
                )
        yield GaugeMetricFamily(
            "cinerec_online_computed_timestamp_seconds",
            "Unix time the online figures were computed (0: not yet)",
            value=s.computed_at if s else 0.0,
        )
        all_q = s.groups.get(ALL) if s else None
        yield GaugeMetricFamily(
            "cinerec_online_window_lists",
            "Logged lists in the window, all sources",
            value=all_q.lists if all_q else 0,
        )


@dataclass(slots=True)
class RoleMetrics:
    """One role's registry and the parts its app or tests reach for."""

    role: str
    registry: CollectorRegistry
    http: HttpMetrics | None = None
    online: OnlineMonitor | None = None
    probe: DependencyProbe | None = None


def api_metrics(svc: RecService) -> RoleMetrics:
    """The main app's registry: HTTP, lists, training, models, serving state, online quality."""
    registry = CollectorRegistry()
    http = HttpMetrics(registry)
    RecommendationMetrics(registry, svc)
    TrainingMetrics(registry, svc.trainer)
    registry.register(ModelCollector(svc.trainer, list(svc.settings.models)))
    st = svc.settings
    online = OnlineMonitor(
        svc.store,
        window_s=st.online_window_s,
        attribution_s=st.online_attribution_s,
        refresh_s=st.online_refresh_s,
        weights=st.weights,
    )
    svc.on_close(online.stop)
    probe = DependencyProbe(svc)
    registry.register(StateCollector(svc, online, probe))
    ProcessCollector(registry=registry)
    return RoleMetrics("api", registry, http, online, probe)


def collector_metrics() -> RoleMetrics:
    """The collector app's registry: its own HTTP traffic (the state is the api role's)."""
    registry = CollectorRegistry()
    http = HttpMetrics(registry)
    ProcessCollector(registry=registry)
    return RoleMetrics("collector", registry, http)


def worker_metrics(svc: RecService) -> RoleMetrics:
    """The training worker's registry: training runs and the models it fitted."""
    registry = CollectorRegistry()
    TrainingMetrics(registry, svc.trainer)
    registry.register(ModelCollector(svc.trainer, list(svc.settings.models)))
    ProcessCollector(registry=registry)
    return RoleMetrics("worker", registry)
