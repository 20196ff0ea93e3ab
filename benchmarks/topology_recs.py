"""Throughput and latency of ``GET /recs/{user_id}`` on an API replica of the topology, next to
``cinerec serve`` and the constant-answer endpoint (``benchmarks/const_app.py``), in one run.

    .venv/bin/python benchmarks/topology_recs.py --postgres-url postgresql://…/bench \\
        --redis-url redis://127.0.0.1:6379/13 --amqp-url amqp://guest:guest@127.0.0.1:5672/

The demo catalogue (MovieLens latest-small) goes into SQLite for ``serve`` and into the given
PostgreSQL database (wiped first) for the topology: a ``worker``, a ``collector`` and one
``api`` replica, events over RabbitMQ (a queue of this run's own), serving state in Redis.
No models are trained on either side (the scheduler is off): both serve the non-personal
sources and the ranker's absence alike, so the difference is the serving path: ``serve``
walks a plan in memory, the replica runs one Lua script in Redis and logs to PostgreSQL.
300 users like 5 movies each through the collector (or ``serve``'s batch endpoint) before the
runs; the request mix is the one of ``recs_throughput.py`` (a third brand-new users, whose
shown set is restored from the database first, a third likers, a third MovieLens raters).
Each target is measured ``--repeats`` times with ``wrk -t1 -c32``, targets alternating; the
table quotes medians and each one's ratio to the constant endpoint of the same run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recs_throughput import DEMO, LIKERS, Run, free_port, run_wrk, stop

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "topology_recs.json"
CINEREC = [str(Path(sys.executable).with_name("cinerec"))]


def launch(args: list[str], env: dict[str, str], log: Path, probe: str) -> subprocess.Popen:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{args} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(probe, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    sys.exit(f"{args} not ready:\n{log.read_text()}")


def like_events() -> list[dict[str, str]]:
    with (DEMO / "movies.csv").open(newline="", encoding="utf-8") as f:
        movies = [row["movieId"] for row in csv.DictReader(f)]
    rng = random.Random(0)
    return [
        {"user_id": f"liker-{u}", "movie_id": m, "kind": "like"}
        for u in range(LIKERS)
        for m in rng.sample(movies, 5)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres-url", required=True, help="a database of its own: it is wiped")
    ap.add_argument("--redis-url", required=True, help="a Redis database of its own")
    ap.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cinerec-topo-bench-"))
    queue = f"cinerec-bench-{uuid.uuid4().hex[:8]}"
    base = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "CINEREC_AUTH": "off",
        "CINEREC_RATE_LIMIT": "false",
        "CINEREC_SCHEDULER": "false",
        "CINEREC_DATA_DIR": str(work),
    }
    topo = {
        **base,
        "CINEREC_DATABASE_URL": args.postgres_url,
        "CINEREC_CACHE_URL": args.redis_url,
        "CINEREC_BROKER_URL": args.amqp_url,
        "CINEREC_BROKER_QUEUE": queue,
    }
    # The same catalogue and history on both sides.
    from cinerec.store import open_store

    store = open_store(args.postgres_url)
    store.wipe()
    store.close()
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    subprocess.run([*CINEREC, "import", "movielens", str(DEMO)], env=topo, check=True)
    sqlite = f"sqlite:///{work / 'serve.db'}"
    subprocess.run(
        [*CINEREC, "import", "movielens", str(DEMO), "--database-url", sqlite],
        env=base,
        check=True,
    )
    procs: list[subprocess.Popen] = []
    try:
        ports = {n: free_port() for n in ("serve", "api", "collector", "worker", "const")}
        url = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
        procs.append(
            launch(
                [*CINEREC, "worker", "--metrics-port", str(ports["worker"])],
                topo,
                work / "worker.log",
                f"{url['worker']}/metrics",
            )
        )
        procs.append(
            launch(
                [*CINEREC, "collector", "--port", str(ports["collector"])],
                topo,
                work / "collector.log",
                f"{url['collector']}/readyz",
            )
        )
        procs.append(
            launch(
                [*CINEREC, "api", "--port", str(ports["api"])],
                topo,
                work / "api.log",
                f"{url['api']}/readyz",
            )
        )
        procs.append(
            launch(
                [*CINEREC, "serve", "--port", str(ports["serve"]), "--database-url", sqlite],
                base,
                work / "serve.log",
                f"{url['serve']}/healthcheck",
            )
        )
        procs.append(
            launch(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "const_app:app",
                    "--app-dir",
                    str(HERE),
                    "--host",
                    "127.0.0.1",
                    "--workers",
                    "1",
                    "--port",
                    str(ports["const"]),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                base,
                work / "const.log",
                f"{url['const']}/recs/1",
            )
        )
        events = like_events()
        for target in ("serve", "collector"):
            r = httpx.post(
                f"{url[target]}/api/v1/events/batch", json={"events": events}, timeout=120
            )
            r.raise_for_status()
        # The worker has stored every like and made the likers' plans.
        counters = redis.Redis.from_url(args.redis_url, decode_responses=True)
        deadline = time.monotonic() + 300
        while int(counters.hget("cinerec:counters", "events") or 0) < len(events):
            if time.monotonic() > deadline:
                sys.exit("the worker did not store the likes in 300 s")
            time.sleep(0.5)
        runs: dict[str, list[Run]] = {"const": [], "serve": [], "api": []}
        for target in runs:  # warm-up
            run_wrk(url[target], f"warm-{target}", args.concurrency, 2, work)
        for i in range(args.repeats):
            for target in runs:
                runs[target].append(
                    run_wrk(url[target], f"{target}-{i}", args.concurrency, args.duration, work)
                )
    finally:
        for proc in reversed(procs):
            stop(proc)
        try:
            import pika

            conn = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
            conn.channel().queue_delete(queue)
            conn.close()
        except Exception as exc:
            print(f"could not delete the queue {queue}: {exc}")

    med = {
        t: {k: statistics.median(getattr(r, k) for r in rs) for k in ("rps", "p50_ms", "p99_ms")}
        for t, rs in runs.items()
    }
    errors = {t: sum(r.errors for r in rs) for t, rs in runs.items()}
    print("| target | req/s | x constant | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
    for t, m in med.items():
        ratio = m["rps"] / med["const"]["rps"]
        print(
            f"| {t} | {m['rps']:.0f} | {ratio:.2f} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} "
            f"| {errors[t]} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "medians": med,
                "errors": errors,
                "runs": {t: [asdict(r) for r in rs] for t, rs in runs.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
