"""Offline quality of every model on ML-100K and ML-1M (Microsoft Recommenders protocol) and
fold-in latency of ``score_user`` on ML-1M.

Protocol (see /work/shared/BENCHMARKS.md): ``python_stratified_split`` 75/25 per user, seed 42,
every rating relevant, seen items removed, top-10 over all items. ML-1M is the reconstructed
copy keyed by ``item_index`` where the movie id is blank (the reader does that).

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/offline_quality.py \
        --data /work/shared/datasets --out benchmarks/results/offline_quality.json
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

from cinerec.evaluation.data import load_movielens
from cinerec.evaluation.harness import format_table, plot_results, run_dataset, write_json
from cinerec.evaluation.splitters import stratified_split
from cinerec.models import Model, make_model

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
    ap.add_argument("--splitter", default="stratified")
    ap.add_argument("--latency-users", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/offline_quality.json"))
    args = ap.parse_args()

    all_rows: list[dict[str, Any]] = []
    latency: dict[str, dict[str, float]] = {}
    for name in args.datasets:
        data = load_movielens(args.data / name)
        models = {
            kind: _factory(kind, p)
            for kind, p in MODELS[name].items()
            if not args.models or kind in args.models
        }
        rows = run_dataset(data, models, splitter=args.splitter, k=10, progress=False)
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
    out = {
        "protocol": f"{args.splitter} 75/25 seed 42, all ratings relevant, seen removed, k=10",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
        "results": all_rows,
        "fold_in_latency_ml1m": latency,
    }
    write_json([out], args.out)
    plot_results(all_rows, args.out.with_suffix(".png"))
    print(json.dumps(latency, indent=2))


if __name__ == "__main__":
    main()
