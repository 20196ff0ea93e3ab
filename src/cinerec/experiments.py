"""A/B experiments: which ranking setting each user gets, kept in the store.

An experiment splits users between named variants, each a ranking setting the engine serves
(:class:`cinerec.engine.RankingSetting`: the learned ranker, one forced source, exploration on
or off), by traffic shares. A user's variant is a salted hash of their id: deterministic,
the same in every process and after a restart, and independent between experiments (each has
its own salt). At most one experiment runs at a time, so a user is in at most one.

When none runs, everyone gets the default setting: the learned ranker, or the setting of the
variant promoted last. No HTTP here: the API and the CLI reach this through ``RecService``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from cinerec.domain import Experiment, Variant
from cinerec.engine import DEFAULT_SETTING, RankingSetting
from cinerec.observability.experiments import METRICS, build_report
from cinerec.observability.online import (
    REACTION_KINDS,
    reactions_from_events,
    score_lists,
)
from cinerec.store import Store

log = logging.getLogger(__name__)

MAX_VARIANTS = 10
#: shares must sum to 1 within this
SHARE_TOLERANCE = 1e-6


class ExperimentError(ValueError):
    """A request about experiments that breaks a rule (the message says which)."""


class ExperimentConflictError(ExperimentError):
    """The request conflicts with the experiments' state (one is already running, the
    experiment has stopped)."""


def bucket(salt: str, user_id: str) -> float:
    """The user's point in [0, 1) for this salt (the first 64 bits of BLAKE2b).

    >>> bucket("s", "alice") == bucket("s", "alice") != bucket("t", "alice")
    True
    """
    h = hashlib.blake2b(f"{salt}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0**64


def assign(experiment: Experiment, user_id: str) -> Variant:
    """The variant of ``user_id``: the one whose cumulative share interval holds its bucket."""
    x = bucket(experiment.salt, user_id)
    acc = 0.0
    for v in experiment.variants:
        acc += v.share
        if x < acc:
            return v
    return experiment.variants[-1]  # shares summing to 1 - 1e-12


def setting_of(v: Variant) -> RankingSetting:
    return RankingSetting(v.source, v.explore)


@dataclass(frozen=True, slots=True)
class Assignment:
    """A user's place in the running experiment."""

    experiment: str
    variant: str
    setting: RankingSetting


def check_variants(
    variants: Sequence[Variant], sources: Sequence[str], metric: str
) -> list[Variant]:
    """Refuse variants an experiment cannot run, with a message that says what to fix."""
    if not 2 <= len(variants) <= MAX_VARIANTS:
        raise ExperimentError(
            f"an experiment needs 2 to {MAX_VARIANTS} variants, got {len(variants)}"
        )
    names = [v.name for v in variants]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ExperimentError(f"variant names must be unique; repeated: {', '.join(dup)}")
    for v in variants:
        if not (0.0 < v.share <= 1.0) or not math.isfinite(v.share):
            raise ExperimentError(f"variant {v.name!r}: share must be in (0, 1], got {v.share}")
        if v.source is not None and v.source not in sources:
            raise ExperimentError(
                f"variant {v.name!r}: unknown source {v.source!r}; available: "
                f"{', '.join(sorted(sources))} (or none for the learned ranker)"
            )
    total = sum(v.share for v in variants)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ExperimentError(f"variant shares must sum to 1, they sum to {total:.6g}")
    if metric not in METRICS:
        raise ExperimentError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    return list(variants)


class Experiments:
    """The experiments of one service: the running one (if any), the promoted default, the
    store they persist in. Assignment reads two attributes and hashes: no lock, no store."""

    def __init__(self, store: Store, *, attribution_s: float = 3600.0) -> None:
        self.store = store
        self.attribution_s = attribution_s
        self._lock = threading.Lock()
        self.running: Experiment | None = None
        #: what everyone gets when no experiment runs (set by promoting a variant)
        self.default = DEFAULT_SETTING
        #: the running experiment's last report and when it was computed (metrics read it)
        self.last_report: dict[str, Any] | None = None
        self._last_report_at = 0.0
        self._reporting = threading.Lock()

    def load(self) -> None:
        """Read the running experiment and the promoted default back from the store."""
        with self._lock:
            listed = self.store.list_experiments()
            self.running = next((e for e in listed if e.status == "running"), None)
            promoted = next((e for e in listed if e.status == "promoted"), None)
            self.default = DEFAULT_SETTING
            if promoted is not None:
                winner = next(v for v in promoted.variants if v.name == promoted.winner)
                self.default = setting_of(winner)
            self._forget_report()

    def _forget_report(self) -> None:
        self.last_report, self._last_report_at = None, 0.0

    # -- assignment (the read path) --------------------------------------------------------
    def assign(self, user_id: str) -> Assignment | None:
        exp = self.running
        if exp is None:
            return None
        v = assign(exp, user_id)
        return Assignment(exp.id, v.name, setting_of(v))

    def setting_for(self, user_id: str) -> RankingSetting:
        a = self.assign(user_id)
        return a.setting if a is not None else self.default

    def settings_in_use(self) -> list[RankingSetting]:
        exp = self.running
        return [setting_of(v) for v in exp.variants] if exp is not None else [self.default]

    # -- admin -----------------------------------------------------------------------------
    def create(
        self,
        name: str,
        variants: Sequence[Variant],
        sources: Sequence[str],
        *,
        metric: str = "like_rate",
        salt: str | None = None,
    ) -> Experiment:
        check_variants(variants, sources, metric)
        with self._lock:
            if self.running is not None:
                raise ExperimentConflictError(
                    f"experiment {self.running.id!r} ({self.running.name}) is running; at most "
                    "one runs at a time: stop or promote it first"
                )
            exp = Experiment(
                id=f"exp-{os.urandom(6).hex()}",
                name=name,
                salt=salt or os.urandom(8).hex(),
                variants=list(variants),
                metric=metric,
            )
            self.store.save_experiment(exp)
            self.running = exp
            self._forget_report()
            return exp

    def get(self, experiment_id: str) -> Experiment | None:
        return self.store.get_experiment(experiment_id)

    def list(self) -> list[Experiment]:
        return self.store.list_experiments()

    def stop(self, experiment_id: str) -> Experiment:
        """Stop a running experiment: everyone gets the default setting again."""
        with self._lock:
            exp = self._existing(experiment_id)
            if exp.status != "running":
                raise ExperimentConflictError(
                    f"experiment {experiment_id!r} is already {exp.status}"
                )
            exp = replace(exp, status="stopped", stopped_at=time.time())
            self.store.save_experiment(exp)
            self.running = None
            self._forget_report()
            return exp

    def promote(self, experiment_id: str, variant: str) -> Experiment:
        """Make ``variant``'s setting what everyone gets (stopping the experiment if it runs);
        persisted, so it holds after a restart until another variant is promoted. At most
        one experiment is ``promoted``: the one promoted before becomes ``superseded`` (its
        ``winner`` stays as the record), so a restart finds the current default without
        comparing times."""
        with self._lock:
            exp = self._existing(experiment_id)
            chosen = next((v for v in exp.variants if v.name == variant), None)
            if chosen is None:
                names = ", ".join(v.name for v in exp.variants)
                raise ExperimentError(
                    f"experiment {experiment_id!r} has no variant {variant!r}; "
                    f"its variants: {names}"
                )
            exp = replace(
                exp,
                status="promoted",
                winner=variant,
                stopped_at=exp.stopped_at or time.time(),
            )
            for before in self.store.list_experiments():
                if before.status == "promoted" and before.id != experiment_id:
                    self.store.save_experiment(replace(before, status="superseded"))
            self.store.save_experiment(exp)
            if self.running is not None and self.running.id == experiment_id:
                self.running = None
                self._forget_report()
            self.default = setting_of(chosen)
            return exp

    def _existing(self, experiment_id: str) -> Experiment:
        exp = self.store.get_experiment(experiment_id)
        if exp is None:
            raise LookupError(f"no experiment {experiment_id!r}")
        return exp

    # -- the report ------------------------------------------------------------------------
    def report(self, experiment_id: str) -> dict[str, Any]:
        """Per-variant figures with 95 % intervals, differences and the verdict
        (:mod:`cinerec.observability.experiments`), from the experiment's logged lists and
        the likes that followed each within the attribution window."""
        exp = self._existing(experiment_id)
        lists = list(self.store.iter_experiment_log(experiment_id))
        since = min((e.ts for e in lists), default=exp.created_at)
        reactions = reactions_from_events(self.store.iter_events_since(since, REACTION_KINDS))
        sessions = {e.session_id for e in lists}
        feedback = [f for f in self.store.iter_feedback_since(since) if f.session_id in sessions]
        scores = score_lists(
            lists, reactions, feedback, ks=(3, 10), attribution_s=self.attribution_s
        )
        variant_of = {e.session_id: e.variant or "" for e in lists}
        rep = build_report(exp, scores, variant_of, attribution_s=self.attribution_s)
        if self.running is not None and self.running.id == experiment_id:
            self.last_report, self._last_report_at = rep, time.time()
        return rep

    def stop_reports(self, timeout: float = 30.0) -> None:
        """Wait for a background report to end and start no other (before the store
        closes under it)."""
        self._reporting.acquire(timeout=timeout)

    def maybe_refresh_report(self, max_age_s: float) -> None:
        """Recompute the running experiment's report in the background when the last one is
        older than ``max_age_s`` (a metrics scrape never waits for the store)."""
        exp = self.running
        if exp is None or time.time() - self._last_report_at < max_age_s:
            return
        if not self._reporting.acquire(blocking=False):
            return

        def run() -> None:
            try:
                self.report(exp.id)
            except Exception:  # a failing store shows as a stale report
                log.exception("experiment %s: the report failed", exp.id)
            finally:
                self._reporting.release()

        threading.Thread(target=run, name="experiment-report", daemon=True).start()
