"""ALS trained from the store vs a bare `implicit` fit on the same matrix, same run.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/training_speed.py \
        --dataset ../shared/datasets/ml-1m --repeats 3

Steps timed (medians over --repeats):
  bare      implicit.als.AlternatingLeastSquares.fit on the matrix our pipeline built
  ours      build_training_data(engine) + ALSModel.fit (what `cinerec train` does per model,
            without the held-out evaluation)
  trainer   Trainer.train("full") end to end: build, hold-out split, fit, evaluate, save,
            register, swap in
and, once: store import and the engine's start-up load. Then the per-request cost of a
personal list (fold-in of the user's row + serving policy) over 1000 users.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from implicit.als import AlternatingLeastSquares

from cinerec.config import load_settings
from cinerec.ingest import import_movielens
from cinerec.models import ALSModel
from cinerec.service import RecService
from cinerec.training import build_training_data

ROOT = Path(__file__).resolve().parent.parent


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "ml-1m"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training_speed.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cinerec-bench-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    settings = load_settings(database_url=url, data_dir=tmp, models=["als"])
    svc = RecService(settings)
    svc.cleanup()
    t_import = timed(lambda: import_movielens(svc.store, args.dataset, progress=False))
    t_load = timed(svc.load)

    params = ALSModel().params
    bare, ours, build = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        data = build_training_data(svc.engine)
        t_build = time.perf_counter() - t0
        x = data.interactions
        t_fit = timed(lambda x=x: ALSModel(**params).fit(x))
        pos = x.copy()
        pos.data[pos.data < 0] = 0
        pos.eliminate_zeros()
        als = AlternatingLeastSquares(
            factors=params["factors"],
            regularization=params["regularization"],
            alpha=params["alpha"],
            iterations=params["iterations"],
            random_state=params["random_state"],
            num_threads=1,
        )
        bare.append(timed(lambda als=als, pos=pos: als.fit(pos, show_progress=False)))
        ours.append(t_build + t_fit)
        build.append(t_build)
    trainer = [timed(lambda: svc.trainer.train("full")) for _ in range(args.repeats)]

    # Per-request cost of a personal list, through the engine (fold-in + policy).
    rng = np.random.default_rng(0)
    users = [
        svc.engine.user_ids.external(int(i))
        for i in rng.choice(len(svc.engine.user_ids), size=1000, replace=False)
    ]
    lat = []
    for u in users:
        t0 = time.perf_counter()
        svc.engine.recommend(u, 10, mark_shown=False)
        lat.append((time.perf_counter() - t0) * 1e3)
    res = {
        "dataset": args.dataset,
        "database": url.split(":")[0],
        "matrix": list(data.interactions.shape),
        "nnz": int(data.interactions.nnz),
        "import_s": round(t_import, 2),
        "startup_load_s": round(t_load, 2),
        "bare_implicit_fit_s": round(statistics.median(bare), 3),
        "ours_build_plus_fit_s": round(statistics.median(ours), 3),
        "build_matrix_s": round(statistics.median(build), 3),
        "ratio_ours_over_bare": round(statistics.median(ours) / statistics.median(bare), 2),
        "trainer_full_s": round(statistics.median(trainer), 3),
        "recs_with_foldin_ms_p50": round(float(np.percentile(lat, 50)), 3),
        "recs_with_foldin_ms_p99": round(float(np.percentile(lat, 99)), 3),
        "repeats": args.repeats,
    }
    svc.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    for k, v in res.items():
        print(f"{k:28s} {v}")


if __name__ == "__main__":
    main()
