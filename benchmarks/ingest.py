"""Ingest speed: events per second into the store by ``cinerec import movielens``, by
``cinerec generate`` and through ``POST /api/v1/events/batch``, each next to a baseline
measured in the same run.

    .venv/bin/python benchmarks/ingest.py                                   # SQLite only
    .venv/bin/python benchmarks/ingest.py --postgres-url postgresql://postgres@127.0.0.1:5432/db

**The database's events are truncated**: give a PostgreSQL database of its own.

* **import**: :func:`cinerec.ingest.import_movielens` (what the CLI runs) on the demo data
  (MovieLens latest-small: 9,742 movies, 100,836 ratings), timed whole (reading the files,
  the catalogue, building the rows, storing); figure = ratings / seconds.
* **generate**: :func:`cinerec.ingest.generate` (10,000 movies, 10,000 users,
  ``--events`` events), timed whole (drawing the events included).
* **baseline** for both: the same event rows, built before the clock starts, written raw to
  the same schema (indexes included) in transactions of 100,000 rows: SQLite through the
  ``sqlite3`` module's ``executemany`` with the store's journal settings (WAL,
  ``synchronous=FULL``), PostgreSQL through psycopg's ``COPY``. The ratio says how close the
  whole command comes to writing the rows alone.
* **http**: ``cinerec serve`` (one process, scheduler off, auth and rate limits off, SQLite
  or PostgreSQL holding the generated catalogue and no events) gets ``--http-events`` events
  in batches of ``--batch`` over ``--connections`` keep-alive connections; figure = accepted
  events / wall seconds, measured by the client. Each event has a ``client_event_id``; 1 % are
  for movies not in the catalogue. Baseline: the constant app (``benchmarks/const_app.py``),
  which parses and validates the same bodies with the service's schema and stores nothing,
  started the same way. Afterwards the run checks that the store holds every accepted event,
  that ``/api/v1/health`` counts them all (the engine learned each one) and that a batch sent
  again is answered as duplicates.

Each measurement is repeated ``--repeats`` times (service and baseline alternate); the table
quotes medians. Results go to ``benchmarks/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from cinerec.datasets.movielens import detect
from cinerec.ingest import generate, import_movielens, synthetic_batches, synthetic_catalog
from cinerec.service import DEMO_PATH
from cinerec.store import EventRow, Store, open_store
from recs_throughput import free_port, start, stop

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "ingest.json"
COLUMNS = "user_id, movie_id, kind, value, ts, client_event_id"
CHUNK = 100_000
N_MOVIES = N_USERS = 10_000


# -- the rows the baselines write --------------------------------------------------------
def movielens_rows() -> list[EventRow]:
    r = detect(DEMO_PATH).ratings()
    return [
        (str(u), str(m), "rating", float(v), float(t), None)
        for u, m, v, t in zip(r.user_ids, r.movie_ids, r.ratings, r.timestamps, strict=True)
    ]


def generated_rows(n: int) -> list[EventRow]:
    data = synthetic_catalog(N_MOVIES, N_USERS)
    return [row for b in synthetic_batches(data, n) for row in b.rows(data)]


def raw_sqlite(path: Path, rows: Sequence[EventRow]) -> float:
    """Seconds to write ``rows`` with plain ``executemany`` into a freshly migrated file."""
    open_store(f"sqlite:///{path}").close()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    sql = f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
    t0 = time.perf_counter()
    for i in range(0, len(rows), CHUNK):
        con.execute("BEGIN")
        con.executemany(sql, rows[i : i + CHUNK])
        con.execute("COMMIT")
    seconds = time.perf_counter() - t0
    con.close()
    return seconds


def truncate_postgres(url: str) -> None:
    open_store(url).close()  # a database new to cinerec gets its schema first
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("TRUNCATE events, movies, users RESTART IDENTITY")


def raw_postgres(url: str, rows: Sequence[EventRow]) -> float:
    """Seconds to ``COPY`` ``rows`` into the emptied events table."""
    truncate_postgres(url)
    with psycopg.connect(url) as con:
        t0 = time.perf_counter()
        for i in range(0, len(rows), CHUNK):
            with con.cursor() as cur, cur.copy(f"COPY events ({COLUMNS}) FROM STDIN") as cp:
                for row in rows[i : i + CHUNK]:
                    cp.write_row(row)
            con.commit()
        return time.perf_counter() - t0


# -- the commands ------------------------------------------------------------------------
def fresh_store(backend: str, work: Path, pg_url: str | None, tag: str) -> Store:
    if backend == "sqlite":
        return open_store(f"sqlite:///{work / f'{tag}.db'}")
    assert pg_url is not None
    truncate_postgres(pg_url)
    return open_store(pg_url)


def timed_import(store: Store) -> tuple[int, float]:
    report = import_movielens(store, DEMO_PATH, progress=False)
    store.close()
    return report.events, report.seconds


def timed_generate(store: Store, n: int) -> tuple[int, float]:
    report = generate(store, N_MOVIES, N_USERS, n, progress=False)
    store.close()
    return report.events, report.seconds


# -- HTTP --------------------------------------------------------------------------------
def batch_bodies(n: int, size: int, tag: str, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    t0 = time.time() - 86_400
    bodies = []
    for b in range(0, n, size):
        events = [
            {
                "user_id": f"u{rng.randrange(2 * N_USERS)}",
                "movie_id": f"m{rng.randrange(N_MOVIES)}" if rng.random() > 0.01 else f"x{b}",
                "kind": "like" if rng.random() < 0.8 else "dislike",
                "timestamp": t0 + b + i,
                "client_event_id": f"{tag}-{b + i}",
            }
            for i in range(min(size, n - b))
        ]
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post_all(url: str, bodies: list[bytes], connections: int) -> tuple[int, float]:
    """Send every body over ``connections`` keep-alive connections; (accepted, seconds)."""
    todo = list(reversed(bodies))
    lock = threading.Lock()
    accepted = [0]
    failures: list[str] = []

    def work() -> None:
        with httpx.Client(timeout=300) as client:
            while True:
                with lock:
                    if not todo or failures:
                        return
                    body = todo.pop()
                r = client.post(
                    f"{url}/api/v1/events/batch",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                with lock:
                    if r.status_code != 200:
                        failures.append(f"{r.status_code}: {r.text[:300]}")
                    else:
                        accepted[0] += r.json()["accepted"]

    threads = [threading.Thread(target=work) for _ in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if failures:
        sys.exit(f"batch endpoint failed: {failures[0]}")
    return accepted[0], seconds


def http_runs(
    backend: str, work: Path, pg_url: str | None, args: argparse.Namespace
) -> dict[str, list[float]]:
    url_db = (
        f"sqlite:///{work / 'http.db'}" if backend == "sqlite" else pg_url
    )  # the catalogue, no events
    assert url_db is not None
    store = fresh_store(backend, work, pg_url, "http")
    generate(store, N_MOVIES, N_USERS, 0, progress=False)
    store.close()
    port, cport, const_port = free_port(), free_port(), free_port()
    svc_url, const_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{const_port}"
    cinerec = Path(sys.executable).with_name("cinerec")
    env = {"CINEREC_SCHEDULER": "false", "CINEREC_RATE_LIMIT": "false"}
    svc, _ = start(
        [str(cinerec), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--collector-port", str(cport), "--database-url", url_db],
        svc_url, work / f"service-{backend}.log", timeout=300, env=env,
    )  # fmt: skip
    const, _ = start(
        [sys.executable, "-m", "uvicorn", "const_app:app", "--app-dir", str(HERE),
         "--host", "127.0.0.1", "--port", str(const_port), "--workers", "1",
         "--log-level", "warning", "--no-access-log"],
        const_url, work / "constant.log", timeout=60,
    )  # fmt: skip
    out: dict[str, list[float]] = {"service": [], "baseline": [], "service_cpu_us": []}
    total = 0
    try:
        for rep in range(args.repeats):
            bodies = batch_bodies(args.http_events, args.batch, f"{backend}{rep}", rep)
            cpu0 = cpu_seconds(svc.pid)
            n, s = post_all(svc_url, bodies, args.connections)
            # the server's own CPU per event: what the load of other jobs changes least
            out["service_cpu_us"].append((cpu_seconds(svc.pid) - cpu0) / n * 1e6)
            total += n
            out["service"].append(n / s)
            n, s = post_all(const_url, bodies, args.connections)
            out["baseline"].append(n / s)
            print(
                f"  http {backend} run {rep + 1}: service {out['service'][-1]:,.0f}/s "
                f"({out['service_cpu_us'][-1]:.0f} us CPU per event), "
                f"constant {out['baseline'][-1]:,.0f}/s",
                flush=True,
            )
        # What a 200 promised: stored, learned by the engine, a retry stored once.
        again = httpx.post(
            f"{svc_url}/api/v1/events/batch",
            content=bodies[0],
            headers={"content-type": "application/json"},
            timeout=300,
        ).json()
        health = httpx.get(f"{svc_url}/api/v1/health", timeout=60).json()
    finally:
        stop(svc)
        stop(const)
    check = open_store(url_db)
    stored = check.count_events()
    check.close()
    size = min(args.batch, args.http_events)
    problems = []
    if stored != total:
        problems.append(f"store holds {stored} events, {total} were accepted")
    if health["events"] != total:
        problems.append(f"the engine counts {health['events']} events, {total} were accepted")
    if again["accepted"] != 0 or again["duplicates"] != size:
        problems.append(f"a batch sent again: {again}")
    if problems:
        sys.exit("; ".join(problems))
    print(f"  http {backend}: {total} accepted = stored = learned; a retried batch: duplicates")
    return out


# -- main --------------------------------------------------------------------------------
def alternate(
    repeats: int, service: Callable[[int], tuple[int, float]], baseline: Callable[[], float], n: int
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"service": [], "baseline": []}
    for rep in range(repeats):
        events, seconds = service(rep)
        out["service"].append(events / seconds)
        out["baseline"].append(n / baseline())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres-url", default=None, help="also measure PostgreSQL (truncated!)")
    ap.add_argument("--events", type=int, default=1_000_000, help="events cinerec generate draws")
    ap.add_argument("--http-events", type=int, default=100_000, help="events per HTTP run")
    ap.add_argument("--batch", type=int, default=5_000, help="events per HTTP request")
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["import", "generate", "http"], action="append")
    args = ap.parse_args()
    parts = args.only or ["import", "generate", "http"]
    backends = ["sqlite"] + (["postgres"] if args.postgres_url else [])
    pg = args.postgres_url
    results: dict[str, dict[str, list[float]]] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cinerec-ingest-") as tmp:
        work = Path(tmp)
        for backend in backends:

            def raw(rows: Sequence[EventRow], backend: str = backend) -> Callable[[], float]:
                def run() -> float:
                    if backend == "sqlite":
                        path = work / "raw.db"
                        for f in work.glob("raw.db*"):
                            f.unlink()
                        return raw_sqlite(path, rows)
                    assert pg is not None
                    return raw_postgres(pg, rows)

                return run

            if "import" in parts:
                rows = movielens_rows()
                results[f"import movielens, {backend}"] = alternate(
                    args.repeats,
                    lambda rep, b=backend: timed_import(fresh_store(b, work, pg, f"imp{rep}")),
                    raw(rows),
                    len(rows),
                )
                print(f"  import {backend}: {results[f'import movielens, {backend}']}")
            if "generate" in parts:
                rows = generated_rows(args.events)
                results[f"generate, {backend}"] = alternate(
                    args.repeats,
                    lambda rep, b=backend: timed_generate(
                        fresh_store(b, work, pg, f"gen{rep}"), args.events
                    ),
                    raw(rows),
                    len(rows),
                )
                print(f"  generate {backend}: {results[f'generate, {backend}']}")
                for f in work.glob("gen*.db*"):
                    f.unlink()
            if "http" in parts:
                results[f"http batch {args.batch}, {backend}"] = http_runs(backend, work, pg, args)
    load_after = os.getloadavg()[0]
    medians = {
        k: {
            "service_events_per_s": round(statistics.median(v["service"])),
            "baseline_events_per_s": round(statistics.median(v["baseline"])),
            "ratio": round(statistics.median(v["service"]) / statistics.median(v["baseline"]), 2),
            "runs": [round(x) for x in v["service"]],
            **(
                {"server_cpu_us_per_event": round(statistics.median(v["service_cpu_us"]), 1)}
                if "service_cpu_us" in v
                else {}
            ),
            "load_average_before_after": [round(load_before, 1), round(load_after, 1)],
        }
        for k, v in results.items()
    }
    print(f"\nload average {load_before:.1f} before, {load_after:.1f} after (1 min)")
    print("\n| what | events/s (median) | baseline events/s | ratio |\n|---|---|---|---|")
    for k, m in medians.items():
        cpu = m.get("server_cpu_us_per_event")
        print(
            f"| {k} | {m['service_events_per_s']:,} | {m['baseline_events_per_s']:,} "
            f"| {m['ratio']:.2f} |" + (f" server CPU {cpu} us/event" if cpu else "")
        )
    RESULTS.parent.mkdir(exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    old.update(
        {
            k: {
                **m,
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "args": {k2: v for k2, v in vars(args).items() if k2 != "postgres_url"},
            }
            for k, m in medians.items()
        }
    )
    RESULTS.write_text(json.dumps(old, indent=2) + "\n")


if __name__ == "__main__":
    main()
