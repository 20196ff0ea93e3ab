"""What reasons cost: a list of 10 vs the same list's reasons, same run, demo catalogue.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/explain_cost.py --users 300

Loads MovieLens latest-small (the demo) into a temporary SQLite store, runs one full training
run (personal models and the ranker serve, as under ``make run``), and gives ``--users`` new
users 5 likes each (popular movies, drawn at random). Then, per user and per round, it times

  list     ``RecService.recommend(user, 10)``: the default list (made from the user's plan,
           logged), what contract B and ``/api/v1`` serve
  reasons  ``RecService.explain(result)``: the reasons of that list's 10 movies

after the background plan refresher has gone idle, and prints medians (and p90) of each
and the ratio reasons / list. Contract A (``/recs``)
never computes reasons, so its cost is unchanged by them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from cinerec.config import load_settings
from cinerec.domain import Event, EventKind
from cinerec.service import RecService


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}", data_dir=tmp, scheduler=False
        )
        svc = RecService(settings)
        svc.load_demo_if_empty()
        svc.load()
        t0 = time.perf_counter()
        report = svc.trainer.train("full")
        print(f"training: {time.perf_counter() - t0:.1f} s, serving {report.serving}")
        popular = svc.genre_top(None, 300)
        users = [f"bench-{n}" for n in range(args.users)]
        for user in users:
            likes = rng.choice(popular, 5, replace=False)
            svc.record_events([Event(user, str(m), EventKind.LIKE) for m in likes])
        # Measure once the background plan refresher is idle (it holds the engine lock
        # that both steps take while it makes the plans the start-up asked for).
        while svc.refresher.backlog:
            time.sleep(0.5)
        lists: list[float] = []
        reasons: list[float] = []
        kinds: Counter[str] = Counter()
        for _ in range(args.rounds):
            for user in users:
                t0 = time.perf_counter()
                result = svc.recommend(user, 10)
                t1 = time.perf_counter()
                explained = svc.explain(result)
                t2 = time.perf_counter()
                lists.append((t1 - t0) * 1e3)
                reasons.append((t2 - t1) * 1e3)
                kinds.update(r.kind for r in explained)
        svc.rec_log.flush()
        svc.close()
    ml, mr = statistics.median(lists), statistics.median(reasons)
    print(f"{len(lists)} lists of 10 ({args.users} users x {args.rounds} rounds)")
    print(f"list     median {ml:.3f} ms  p90 {pct(lists, 90):.3f} ms")
    print(f"reasons  median {mr:.3f} ms  p90 {pct(reasons, 90):.3f} ms")
    print(f"reasons / list (medians): {mr / ml:.2f}x")
    total = sum(kinds.values())
    print("reason kinds: " + ", ".join(f"{k} {v / total:.0%}" for k, v in kinds.most_common()))


if __name__ == "__main__":
    main()
