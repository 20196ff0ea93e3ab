"""Recommendation quality on imported history, measured from outside through the HTTP API only.

The Microsoft Recommenders MovieLens protocol (../shared/BENCHMARKS.md), with a real server
in the middle: the data set is split 75/25 with the project's ``stratified_split`` (seed 42,
grouped per user as in ``benchmarks/offline_quality.py``, so the split is the in-process
benchmark's), a fresh ``cinerec serve`` on a temporary SQLite store receives the catalogue
through ``POST /add_items`` and every training rating as a like through the collector's
``POST /interact`` (each user's likes grouped per UTC day, stamped with the last rating's time
of that day; no timestamp where the data set has none, so the server stamps those "now"),
trains once with ``POST /api/v1/admin/train {"mode": "full"}`` (a background job, polled), and
every test user's top-10 is read with
``GET /api/v1/recommendations/{user}?k=10&explore=false&record=false`` (a preview: not logged,
nothing marked shown, so every source is measured on the same state), once for the default
blend and once per forced ``&source=``. nDCG@10 (binary gains), Precision@10 and Recall@10
come from ``cinerec.evaluation.metrics``, exactly as in the in-process harness; the training
ratings are already seen, so the server leaves them out by itself. Most-popular (training
counts, seen removed) is computed in process as a reference row.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/imported_http.py \
        ../shared/datasets/ml-100k [more folders...] \
        [--sources default ease_plus ...] [--users 200] [--port 5201] [--keep-server]

Any ``CINEREC_*`` variable in the environment reaches the server (e.g.
``CINEREC_SCHEDULER=false`` to stop the embedded scheduler from retraining while the likes
arrive); otherwise it runs on its defaults. Results: a table on stdout and
``benchmarks/results/imported_http_<dataset>.json`` (``..._users<N>.json`` with ``--users``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import scipy.sparse as sp

from cinerec.evaluation.data import LoadedDataset, load_movielens
from cinerec.evaluation.metrics import ranking_report
from cinerec.evaluation.splitters import Split, stratified_split

ROOT = Path(__file__).resolve().parent.parent
CINEREC = ROOT / ".venv" / "bin" / "cinerec"
RESULTS = ROOT / "benchmarks" / "results"
K = 10
#: The engine's built-in sources (``cinerec.engine.Engine``); trained models add their kind.
BUILTIN_SOURCES = ("item_to_item", "popular", "like_rate", "top_rated", "genre_top", "newest")
DEFAULT = "default"  # the blend: no ``source`` parameter
CATALOGUE_BATCH = 1000
MAX_LIKES_PER_REQUEST = 500
DAY_S = 86400.0


# -- data ------------------------------------------------------------------------------------
def train_timestamps(data: LoadedDataset, train: sp.csr_matrix) -> np.ndarray:
    """Timestamp of each stored entry of ``train`` (CSR order): the latest rating of that
    (user, movie) pair in the log, NaN where the data set has none."""
    log = data.log
    key = log.users.astype(np.int64) * log.n_items + log.items
    order = np.lexsort((np.nan_to_num(log.timestamps, nan=-np.inf), key))
    k_sorted = key[order]
    last = np.r_[k_sorted[1:] != k_sorted[:-1], True]
    uniq, ts = k_sorted[last], log.timestamps[order][last]
    coo = train.tocoo()
    want = coo.row.astype(np.int64) * log.n_items + coo.col
    pos = np.searchsorted(uniq, want)
    if not np.array_equal(uniq[pos], want):
        raise AssertionError("training pair missing from the log")
    out: np.ndarray = ts[pos]
    return out


def like_requests(data: LoadedDataset, train: sp.csr_matrix) -> list[list[dict[str, Any]]]:
    """Per user with training rows, its ``/interact`` bodies in time order: likes grouped per
    UTC day (at most :data:`MAX_LIKES_PER_REQUEST` each), stamped with the day's last rating;
    likes without a timestamp go last, unstamped."""
    train = sp.csr_matrix(train)
    train.sort_indices()
    ts_all = train_timestamps(data, train)
    out: list[list[dict[str, Any]]] = []
    for u in range(train.shape[0]):
        lo, hi = train.indptr[u], train.indptr[u + 1]
        if lo == hi:
            continue
        items, ts = train.indices[lo:hi], ts_all[lo:hi]
        known = ~np.isnan(ts)
        stamped = np.flatnonzero(known)[np.argsort(ts[known], kind="stable")]
        order = np.r_[stamped, np.flatnonzero(~known)]
        day = np.where(known, np.floor(np.nan_to_num(ts) / DAY_S), np.inf)[order]
        starts = np.r_[0, np.flatnonzero(day[1:] != day[:-1]) + 1, len(order)]
        bodies = []
        for a, b in itertools.pairwise(starts):
            for c in range(a, b, MAX_LIKES_PER_REQUEST):
                sel = order[c : min(b, c + MAX_LIKES_PER_REQUEST)]
                body: dict[str, Any] = {
                    "user_id": str(data.user_ids[u]),
                    "item_ids": [str(data.item_ids[i]) for i in items[sel]],
                    "actions": ["like"] * len(sel),
                }
                if np.isfinite(day[a]):
                    body["timestamp"] = float(ts[sel].max())
                bodies.append(body)
        out.append(bodies)
    return out


def catalogue_batches(data: LoadedDataset) -> list[dict[str, Any]]:
    """``/add_items`` bodies for every movie of the log (the in-process candidate set), in
    movie-id order where the ids are numeric."""
    ids = [str(i) for i in data.item_ids]
    genres = [[g for g in m.genres if g.strip()] if m else [] for m in data.movies]
    order = sorted(range(len(ids)), key=lambda i: (0, int(ids[i])) if ids[i].isdigit() else (1, i))
    return [
        {
            "item_ids": [ids[i] for i in order[a : a + CATALOGUE_BATCH]],
            "genres": [genres[i] for i in order[a : a + CATALOGUE_BATCH]],
        }
        for a in range(0, len(order), CATALOGUE_BATCH)
    ]


def most_popular(train: sp.csr_matrix, users: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` training counts per user, the user's training items left out."""
    counts = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float64)
    reco = np.full((len(users), k), -1, dtype=np.int64)
    for r, u in enumerate(users):
        s = counts.copy()
        s[train.indices[train.indptr[u] : train.indptr[u + 1]]] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        reco[r, : len(top)] = top
    return reco


# -- server ----------------------------------------------------------------------------------
def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Server:
    """``cinerec serve`` on a fresh SQLite store in a temporary directory."""

    port: int
    collector_port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def collector_url(self) -> str:
        return f"http://127.0.0.1:{self.collector_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def start(self, timeout_s: float = 120.0) -> None:
        for p in (self.port, self.collector_port):
            if port_in_use(p):
                raise RuntimeError(f"port {p} is already in use; pick another with --port")
        # A benchmark server on loopback: no auth (docs/security.md), as `make run`.
        env = {
            **os.environ,
            "CINEREC_DATA_DIR": str(self.workdir),
            "OPENBLAS_NUM_THREADS": "1",
            "CINEREC_AUTH": "off",
        }
        cmd = [
            str(CINEREC),
            "serve",
            "--port",
            str(self.port),
            "--collector-port",
            str(self.collector_port),
            "--database-url",
            f"sqlite:///{self.workdir / 'db'}",
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if all(
                        c.get(f"{u}/healthcheck").status_code == 200
                        for u in (self.url, self.collector_url)
                    ):
                        return
                time.sleep(0.2)
        raise RuntimeError(f"server not healthy after {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def running_server(port: int, collector_port: int, keep: bool) -> Iterator[Server]:
    srv = Server(port, collector_port, Path(tempfile.mkdtemp(prefix="cinerec-imported-")))
    try:
        srv.start()
        yield srv
    except BaseException:
        if srv.proc is not None:
            print(f"server log tail ({srv.log_path}):\n{srv.tail()}", file=sys.stderr)
        raise
    finally:
        if keep and srv.proc is not None and srv.proc.poll() is None:
            print(
                f"--keep-server: pid {srv.proc.pid}, {srv.url} (collector {srv.collector_url}), "
                f"store and log in {srv.workdir}",
                flush=True,
            )
        else:
            srv.stop()
            shutil.rmtree(srv.workdir, ignore_errors=True)


# -- HTTP ------------------------------------------------------------------------------------
def _client(concurrency: int, timeout_s: float = 120.0) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=timeout_s)


async def send_catalogue(srv: Server, batches: Sequence[dict[str, Any]]) -> None:
    async with _client(1) as c:
        for body in batches:
            (await c.post(f"{srv.url}/add_items", json=body)).raise_for_status()


async def send_likes(
    srv: Server, per_user: Sequence[Sequence[dict[str, Any]]], concurrency: int
) -> None:
    """Each user's requests in order, ``concurrency`` users at a time; any failure aborts."""
    queue: asyncio.Queue[Sequence[dict[str, Any]]] = asyncio.Queue()
    for bodies in per_user:
        queue.put_nowait(bodies)
    total = sum(len(b) for b in per_user)
    done = 0
    t0 = time.perf_counter()
    step = max(total // 10, 1)

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal done
        while True:
            try:
                bodies = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            for body in bodies:
                r = await c.post(f"{srv.collector_url}/interact", json=body)
                if r.status_code != 200:
                    raise RuntimeError(f"/interact answered {r.status_code}: {r.text[:300]}")
                done += 1
                if done % step == 0:
                    el = time.perf_counter() - t0
                    print(f"  likes: {done}/{total} requests, {el:.0f} s", flush=True)

    async with _client(concurrency) as c:
        await asyncio.gather(*(worker(c) for _ in range(concurrency)))


@dataclass
class SourceRun:
    source: str
    lists: list[list[str]] = field(default_factory=list)
    labels: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: int = 0
    first_error: str | None = None
    seconds: float = 0.0


async def fetch_lists(
    srv: Server, users: Sequence[str], source: str, k: int, concurrency: int
) -> SourceRun:
    """Every user's top-``k`` preview from ``source``; stops after the first user if that
    one fails (an unknown or broken source), otherwise counts failures as empty lists."""
    run = SourceRun(source, [[] for _ in users])
    params = {"k": str(k), "explore": "false", "record": "false"}
    if source != DEFAULT:
        params["source"] = source
    sem = asyncio.Semaphore(concurrency)
    t0 = time.perf_counter()

    async def one(c: httpx.AsyncClient, i: int) -> None:
        async with sem:
            try:
                r = await c.get(f"{srv.url}/api/v1/recommendations/{users[i]}", params=params)
                ok = r.status_code == 200
                msg = f"HTTP {r.status_code}: {r.text[:300]}"
            except httpx.HTTPError as exc:
                ok, msg = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            run.errors += 1
            run.first_error = run.first_error or msg
            return
        items = r.json()["items"]
        run.lists[i] = [it["movie_id"] for it in items]
        run.labels.update(it["source"] for it in items)

    async with _client(concurrency) as c:
        await one(c, 0)
        if run.errors == 0:
            await asyncio.gather(*(one(c, i) for i in range(1, len(users))))
    run.seconds = time.perf_counter() - t0
    return run


async def get_json(url: str, timeout_s: float = 60.0) -> Any:
    async with httpx.AsyncClient(timeout=timeout_s) as c:
        r = await c.get(url)
        r.raise_for_status()
        return r.json()


async def train_full(srv: Server) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=7200.0) as c:
        r = await c.post(f"{srv.url}/api/v1/admin/train", json={"mode": "full"})
        if r.status_code != 202:
            raise RuntimeError(f"/api/v1/admin/train answered {r.status_code}: {r.text[:500]}")
        # A background job: poll it until the new models serve.
        job_url = f"{srv.url}/api/v1/admin/jobs/{r.json()['id']}"
        while True:
            job = (await c.get(job_url)).json()
            if job["status"] == "succeeded":
                out: dict[str, Any] = job["result"]
                return out
            if job["status"] == "failed":
                raise RuntimeError(f"training failed: {job['error']}:\n{srv.tail()}")
            await asyncio.sleep(1.0)


# -- evaluation ------------------------------------------------------------------------------
def to_dense(lists: Sequence[Sequence[str]], index: dict[str, int], k: int) -> np.ndarray:
    """External ids -> ``(n, k)`` dense ids, ``-1`` for empty slots and unknown ids."""
    reco = np.full((len(lists), k), -1, dtype=np.int64)
    for r, items in enumerate(lists):
        for c, mid in enumerate(items[:k]):
            reco[r, c] = index.get(mid, -1)
    return reco


def metrics_row(
    source: str, reco: np.ndarray, truth: sp.csr_matrix, seconds: float, k: int
) -> dict[str, Any]:
    rep = ranking_report(reco, truth, k)
    return {
        "source": source,
        **rep,
        "users": int(truth.shape[0]),
        "short_lists": int((reco[:, k - 1] < 0).sum()),
        "seconds": round(seconds, 2),
    }


def discover_sources(models: list[dict[str, Any]], health: Any) -> list[str]:
    """The default blend, the serving models, the built-in sources and whatever /health's
    tallies name (more join from the answers' item labels as the evaluation goes)."""
    names = [DEFAULT]
    names += [m["kind"] for m in models if m.get("status") == "serving"]
    names += list(BUILTIN_SOURCES)
    names += list(health.get("sources", {}))
    return list(dict.fromkeys(names))


def serving_notes(models: list[dict[str, Any]], train_likes: int) -> dict[str, str]:
    """Per serving model kind, a note when it was fit on fewer events than were sent (an
    older version, e.g. a scheduled run during ingest, kept because the full run's was
    rejected)."""
    notes = {}
    for m in models:
        if m.get("status") == "serving" and m["n_events"] < train_likes:
            notes[m["kind"]] = (
                f"serving {m['version']} fit on {m['n_events']} of {train_likes} likes"
            )
    return notes


def state_digest(health: Any) -> tuple[Any, ...]:
    """What a preview must not change: events, and what every source showed and got liked
    (tallies appear lazily with zeros, so only the sums count)."""
    tallies = health.get("sources", {}).values()
    return (
        health.get("events"),
        health.get("users"),
        sum(t["shown"] for t in tallies),
        sum(t["liked"] for t in tallies),
    )


def format_table(rows: Sequence[dict[str, Any]], k: int) -> str:
    head = f"| source | nDCG@{k} | P@{k} | R@{k} | users | seconds | note |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['source']} | - | - | - | - | {r['seconds']:.1f} | {r['error']} |")
            continue
        notes = []
        if r.get("errors"):
            notes.append(f"{r['errors']} failed requests (counted as empty lists)")
        if r.get("short_lists"):
            notes.append(f"{r['short_lists']} lists shorter than {k}")
        if r.get("note"):
            notes.append(r["note"])
        lines.append(
            f"| {r['source']} | {r[f'ndcg@{k}']:.4f} | {r[f'precision@{k}']:.4f} | "
            f"{r[f'recall@{k}']:.4f} | {r['users']} | {r['seconds']:.1f} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def git_state() -> dict[str, str]:
    """HEAD, and a digest of the uncommitted changes to tracked files (the server runs the
    working tree)."""

    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout

    diff = git("diff", "HEAD")
    return {
        "commit": git("rev-parse", "HEAD").strip() or "unknown",
        "uncommitted_diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else "",
        "uncommitted_files": " ".join(git("diff", "HEAD", "--name-only").split()),
    }


async def run_dataset(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    data = load_movielens(path)
    split: Split = stratified_split(data.log, 0.75, 42, args.stratify)
    train = split.train
    users = split.test_users
    if args.users and args.users < len(users):
        users = np.sort(np.random.default_rng(0).choice(users, size=args.users, replace=False))
    truth = split.test[np.searchsorted(split.test_users, users)]
    per_user = like_requests(data, train)
    catalogue = catalogue_batches(data)
    n_req = sum(len(b) for b in per_user)
    n_stamped = sum("timestamp" in body for bodies in per_user for body in bodies)
    phases["load_split"] = time.perf_counter() - t0
    info = {
        "users": data.log.n_users,
        "items": data.log.n_items,
        "ratings": len(data.log),
        "train_likes": int(train.nnz),
        "test_users_evaluated": len(users),
        "test_items_evaluated": int(truth.nnz),
        "interact_requests": n_req,
        "interact_requests_without_timestamp": n_req - n_stamped,
        "add_items_requests": len(catalogue),
    }
    print(f"{data.name}: {json.dumps(info)}", flush=True)

    collector_port = args.collector_port or args.port - 1
    with running_server(args.port, collector_port, args.keep_server) as srv:
        t = time.perf_counter()
        await send_catalogue(srv, catalogue)
        phases["catalogue"] = time.perf_counter() - t
        t = time.perf_counter()
        await send_likes(srv, per_user, args.concurrency)
        phases["likes"] = time.perf_counter() - t
        print(
            f"ingest: catalogue {phases['catalogue']:.1f} s, "
            f"{train.nnz} likes in {n_req} requests {phases['likes']:.1f} s",
            flush=True,
        )
        models_before = await get_json(f"{srv.url}/api/v1/models")
        t = time.perf_counter()
        trained = await train_full(srv)
        phases["train"] = time.perf_counter() - t
        print(
            f"train ({phases['train']:.1f} s): serving {trained['serving']}, "
            f"personal {trained['personal']}, skipped {trained['skipped']}"
        )
        for m in trained["trained"]:
            mets = ", ".join(f"{k}={v:.4f}" for k, v in m["metrics"].items())
            print(f"  {m['kind']:<10} {m['status']:<9} {m['train_seconds']:7.1f} s  {mets}")
        models = await get_json(f"{srv.url}/api/v1/models")
        notes = serving_notes(models, int(train.nnz))
        for kind, note in notes.items():
            print(f"  note: {kind}: {note}")
        health_before = await get_json(f"{srv.url}/api/v1/health")
        sources = list(args.sources or discover_sources(models, health_before))

        index = {str(m): i for i, m in enumerate(data.item_ids)}
        ext_users = [str(data.user_ids[u]) for u in users]
        rows: list[dict[str, Any]] = []
        runs: dict[str, dict[str, Any]] = {}
        t = time.perf_counter()
        n = 0
        while n < len(sources):
            source = sources[n]
            n += 1
            run = await fetch_lists(srv, ext_users, source, K, args.concurrency)
            if run.errors and not any(run.lists):
                rows.append({"source": source, "error": run.first_error, "seconds": run.seconds})
            else:
                row = metrics_row(source, to_dense(run.lists, index, K), truth, run.seconds, K)
                row["errors"] = run.errors
                if run.first_error:
                    row["first_error"] = run.first_error
                if source in notes:
                    row["note"] = notes[source]
                rows.append(row)
            runs[source] = {"item_sources": dict(run.labels.most_common())}
            print(format_table(rows[-1:], K).splitlines()[-1], flush=True)
            if not args.sources:  # sources seen in answers or in /health's tallies join in
                health = await get_json(f"{srv.url}/api/v1/health")
                for name in [*run.labels, *health.get("sources", {})]:
                    if name not in sources:
                        sources.append(name)
        phases["evaluation"] = time.perf_counter() - t
        health_after = await get_json(f"{srv.url}/api/v1/health")

    t = time.perf_counter()
    pop = metrics_row("most_popular (in process)", most_popular(train, users, K), truth, 0.0, K)
    pop["seconds"] = round(time.perf_counter() - t, 2)
    pop["note"] = "reference: training counts, seen removed"
    rows.append(pop)
    if state_digest(health_after) != state_digest(health_before):
        print("warning: the previews changed the server's state (events, users or tallies)")
    return {
        "dataset": data.name,
        "path": str(path),
        "protocol": f"stratified per {args.stratify} 75/25 seed 42 (cinerec stratified_split), "
        "every rating relevant, training ratings sent as likes and left out by the server, "
        f"top-{K} over the log's movies, previews (explore=false, record=false)",
        "data": info,
        "phases_seconds": {k: round(v, 2) for k, v in phases.items()},
        "train": trained,
        "models_before_train": models_before,
        "models_after_train": models,
        "health_before_evaluation": health_before,
        "health_after_evaluation": health_after,
        "results": rows,
        "item_sources_per_run": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+", type=Path, help="MovieLens folders")
    ap.add_argument(
        "--sources",
        nargs="+",
        default=None,
        help=f"'{DEFAULT}' (the blend) and/or forced source names; default: the blend, the "
        "serving models, the built-in sources, and any source named by an answer's items or "
        "by /api/v1/health",
    )
    ap.add_argument("--port", type=int, default=5201, help="API port")
    ap.add_argument("--collector-port", type=int, default=None, help="default: --port minus 1")
    ap.add_argument("--users", type=int, default=0, help="evaluate a random sample (seed 0)")
    ap.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    ap.add_argument(
        "--stratify",
        choices=("user", "item"),
        default="user",
        help="stratified_split group; 'user' is the in-process benchmark's split",
    )
    ap.add_argument("--keep-server", action="store_true", help="leave the server running")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args()

    def on_term(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through running_server: the server stops

    signal.signal(signal.SIGTERM, on_term)
    meta = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "settings": {
            "port": args.port,
            "collector_port": args.collector_port or args.port - 1,
            "k": K,
            "users_sample": args.users or None,
            "concurrency": args.concurrency,
            "server_env": {k: v for k, v in os.environ.items() if k.startswith("CINEREC_")},
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    for path in args.datasets:
        result = {**meta, **asyncio.run(run_dataset(path, args))}
        print(f"\n{result['dataset']}: {json.dumps(result['phases_seconds'])}")
        print(format_table(result["results"], K))
        suffix = f"_users{args.users}" if args.users else ""
        out = args.out_dir / f"imported_http_{result['dataset']}{suffix}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
        print(f"wrote {out}\n", flush=True)


if __name__ == "__main__":
    main()
