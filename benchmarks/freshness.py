"""Like-to-next-list freshness: how long after a like's ``/interact`` answer the next ``/recs``
reflects it, on the MovieLens demo catalogue with trained models.

    .venv/bin/python benchmarks/freshness.py            # 300 users, one server

For each of ``--users`` brand-new users: like one of the 200 top-rated movies, X, through
``/interact`` (contract A's collector), and as soon as that answer arrives ask ``/recs``. A list
*reflects* the like when it holds one of X's 20 most similar movies
(``/api/v1/movies/X/similar``: the co-likes of X's likers); a brand-new user's list rarely
does.
The same number of control users ask ``/recs`` without liking, for the base rate. Reported:
the share of lists that reflect the like (against the control), and the time from the
``/interact`` answer to the ``/recs`` answer (p50, p99): the freshness a client sees when it
asks at once. Results merge into ``benchmarks/results/freshness.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from recs_throughput import free_port, seed_likers, start, stop, train

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "freshness.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="cinerec-fresh-") as tmp:
        work = Path(tmp)
        port, cport = free_port(), free_port()
        url, curl = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{cport}"
        cinerec = Path(sys.executable).with_name("cinerec")
        proc, _ = start(
            [str(cinerec), "serve", "--demo", "--host", "127.0.0.1", "--port", str(port),
             "--collector-port", str(cport), "--database-url", f"sqlite:///{work / 'f.db'}"],
            url, work / "service.log", timeout=300,
        )  # fmt: skip
        try:
            seed_likers(url)
            print("training ...", flush=True)
            train(url)
            with httpx.Client(timeout=30) as c:
                movies = c.get(
                    f"{url}/api/recommend/v1/recommendations/genres_top", params={"limit": 200}
                ).json()["movies"]
                similar = {
                    m: {s["movie_id"] for s in c.get(
                        f"{url}/api/v1/movies/{m}/similar", params={"k": 20}).json()}
                    for m in movies
                }  # fmt: skip
                fresh_ms: list[float] = []
                hits = control = 0
                for n in range(args.users):
                    x = rng.choice(movies)
                    user = f"fresh-{args.seed}-{n}"
                    r = c.post(
                        f"{curl}/interact",
                        json={"user_id": user, "item_ids": [x], "actions": ["like"]},
                    )
                    r.raise_for_status()
                    t0 = time.perf_counter()
                    got = c.get(f"{url}/recs/{user}").json()["item_ids"]
                    fresh_ms.append((time.perf_counter() - t0) * 1e3)
                    hits += bool(similar[x] & set(got))
                    base = c.get(f"{url}/recs/control-{args.seed}-{n}").json()["item_ids"]
                    control += bool(similar[x] & set(base))
        finally:
            stop(proc)
    fresh_ms.sort()
    out = {
        "users": args.users,
        "seed": args.seed,
        "reflect_rate": round(hits / args.users, 3),
        "control_rate": round(control / args.users, 3),
        "freshness_p50_ms": round(statistics.median(fresh_ms), 2),
        "freshness_p99_ms": round(fresh_ms[min(len(fresh_ms) - 1, int(len(fresh_ms) * 0.99))], 2),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(out, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
