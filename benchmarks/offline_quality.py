"""Offline quality of every model on ML-100K and ML-1M (Microsoft Recommenders protocol) and
fold-in latency of ``score_user`` on ML-1M.

Protocol (see /work/shared/BENCHMARKS.md): ``python_stratified_split`` 75/25 per user, seed 42,
every rating relevant, seen items removed, top-10 over all items. ML-1M is the reconstructed
copy keyed by ``item_index`` where the movie id is blank (the reader does that).

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/offline_quality.py \
        --data /work/shared/datasets --out benchmarks/results/offline_quality.json

Other splitters (``--splitter time|strong``, see ``cinerec.evaluation.harness.SPLITTERS``) and
the service's optional training time decay (``--train-half-life-days``: the training matrix
only, with :func:`cinerec.training.decay_factors` and the newest training event as
reference, exactly as ``CINEREC_TRAINING_HALF_LIFE_DAYS`` does; fold-in rows stay undecayed,
as in serving) run through the same harness.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from cinerec.evaluation.data import load_movielens
from cinerec.evaluation.harness import (
    SPLITTERS,
    format_table,
    plot_results,
    run_dataset,
    write_json,
)
from cinerec.evaluation.splitters import InteractionLog, Split, stratified_split
from cinerec.models import Model, make_model
from cinerec.training import decay_factors

DATA = Path(os.environ.get("CINEREC_DATASETS", "/work/shared/datasets"))

#: Per data set settings; EASE's lambda is the one BENCHMARKS.md quotes for each.
MODELS: dict[str, dict[str, dict[str, Any]]] = {
    "ml-100k": {
        "popular": {},
        "item_knn": {"neighbours": 100, "similarity": "bm25"},
        "als": {"factors": 32, "regularization": 0.1, "alpha": 1.0, "iterations": 15},
        "lightfm": {"no_components": 64, "epochs": 20},
        "ease": {"lambda_": 500.0},
        "ease_plus": {},
    },
    "ml-1m": {
        "popular": {},
        "item_knn": {"neighbours": 100, "similarity": "bm25"},
        "als": {"factors": 32, "regularization": 0.1, "alpha": 1.0, "iterations": 15},
        "lightfm": {"no_components": 64, "epochs": 20},
        "ease": {"lambda_": 1000.0},
        "ease_plus": {},
    },
}


def _factory(kind: str, params: dict[str, Any]) -> Any:
    return lambda: make_model(kind, **params)


PROTOCOLS = {
    "stratified": "stratified per user 75/25 seed 42",
    "stratified-item": "stratified per item 75/25 seed 42",
    "time": "per-user chronological 75/25 (oldest 75% of each user's ratings train)",
    "strong": "strong generalisation: 10% of users held out (seed 42), 80% of each one's "
    "ratings folded in, 20% truth",
}


def decayed_train(split: Split, log: InteractionLog, half_life_days: float) -> Split:
    """``split`` with each training weight multiplied by the service's decay factor, the
    reference time being the newest training event (unknown times are not decayed)."""
    key = log.users.astype(np.int64) * log.n_items + log.items
    ts = np.nan_to_num(log.timestamps, nan=-np.inf)
    order = np.lexsort((ts, key))
    k_sorted = key[order]
    last = np.r_[k_sorted[1:] != k_sorted[:-1], True]  # latest event of each pair
    uniq, t_latest = k_sorted[last], log.timestamps[order][last]
    train = split.train.tocoo()
    t = t_latest[np.searchsorted(uniq, train.row.astype(np.int64) * log.n_items + train.col)]
    if not np.isfinite(t).any():
        return split
    w = train.data * decay_factors(t, float(np.nanmax(t)), half_life_days)
    x = sp.csr_matrix((w.astype(np.float32), (train.row, train.col)), shape=train.shape)
    return Split(x, split.test_users, split.test_input, split.test, split.warm_users, split.name)


def fold_in_latency(model: Model, rows: Any, n: int = 1000, seed: int = 0) -> dict[str, float]:
    """p50/p99/mean milliseconds of ``score_user`` + top-10 over ``n`` random users' rows."""
    rng = np.random.default_rng(seed)
    users = rng.choice(rows.shape[0], size=min(n, rows.shape[0]), replace=False)
    for u in users[:20]:  # warm caches (ALS Gram matrix, BLAS)
        model.score_user(rows[u])
    times = []
    for u in users:
        row = rows[u]
        t0 = time.perf_counter()
        s = model.score_user(row)
        np.argpartition(-s, 10)[:10]
        times.append((time.perf_counter() - t0) * 1000.0)
    t = np.asarray(times)
    return {
        "p50_ms": float(np.percentile(t, 50)),
        "p99_ms": float(np.percentile(t, 99)),
        "mean_ms": float(t.mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--datasets", nargs="*", default=["ml-100k", "ml-1m"])
    ap.add_argument("--models", nargs="*", default=None, help="subset of model kinds")
    ap.add_argument("--splitter", default="stratified", choices=sorted(SPLITTERS))
    ap.add_argument(
        "--train-half-life-days",
        type=float,
        default=0.0,
        help="decay training weights like CINEREC_TRAINING_HALF_LIFE_DAYS (0 = off)",
    )
    ap.add_argument("--latency-users", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/offline_quality.json"))
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG next to --out")
    args = ap.parse_args()

    splitter = args.splitter
    if args.train_half_life_days > 0:
        base, hl = SPLITTERS[splitter], args.train_half_life_days
        splitter = f"{splitter}+decay{hl:g}d"
        SPLITTERS[splitter] = lambda log: decayed_train(base(log), log, hl)

    all_rows: list[dict[str, Any]] = []
    latency: dict[str, dict[str, float]] = {}
    for name in args.datasets:
        data = load_movielens(args.data / name)
        models = {
            kind: _factory(kind, p)
            for kind, p in MODELS[name].items()
            if not args.models or kind in args.models
        }
        rows = run_dataset(data, models, splitter=splitter, k=10, progress=False)
        all_rows.extend(rows)
        print(format_table(rows), flush=True)
        if name == "ml-1m" and args.latency_users:
            split = stratified_split(data.log)
            for kind, factory in models.items():
                model = factory()
                model.fit(split.train)
                latency[kind] = fold_in_latency(model, split.train, args.latency_users)
                print(
                    f"fold-in {kind}: "
                    + ", ".join(f"{k}={v:.3f}" for k, v in latency[kind].items()),
                    flush=True,
                )
    decay = (
        f", training weights decayed with a {args.train_half_life_days:g}-day half-life"
        if args.train_half_life_days > 0
        else ""
    )
    out = {
        "protocol": f"{PROTOCOLS[args.splitter]}{decay}, all ratings relevant, seen removed, "
        "top-10 over all items",
        "splitter": splitter,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
        "results": all_rows,
        "fold_in_latency_ml1m": latency,
    }
    write_json([out], args.out)
    if not args.no_plot:
        plot_results(all_rows, args.out.with_suffix(".png"))
    print(json.dumps(latency, indent=2))


if __name__ == "__main__":
    main()
