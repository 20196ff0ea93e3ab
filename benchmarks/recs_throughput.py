"""Throughput and latency of ``GET /recs/{user_id}`` on the MovieLens demo catalogue, next to a
constant-answer FastAPI endpoint served the same way (``benchmarks/const_app.py``).

    .venv/bin/python benchmarks/recs_throughput.py                   # wrk if installed
    .venv/bin/python benchmarks/recs_throughput.py --client asyncio  # pure Python client

Both servers run in this one invocation: ``cinerec serve --demo`` on a temporary SQLite file
(MovieLens latest-small: 9,742 movies, 100,836 ratings) and uvicorn with the constant app,
each one process and one worker with the same host and log flags. Users are distinct: a third
brand-new on every request, a third who liked 5 movies just before the run, a third MovieLens
raters (ids 1-610). Before measuring, a full training run makes the personal model serve
(``serve`` would start one on its own seconds later, in the middle of a run); ``--models none``
measures the non-personal recommenders with the scheduler off instead. Each target is measured
``--repeats`` times (targets alternate); the table quotes medians. Beside throughput and
latency it reports each server's CPU time per answered request (all its threads, from
``/proc``; per thread in the run lines and the JSON): steadier than requests per second on a
shared 2-core machine, and it says where the service's time goes. ``--profile DIR`` records
where the service spends its time during each measured run (py-spy, in the virtualenv's dev
extras or on PATH). Results are merged into
``benchmarks/results/recs_throughput.json`` under the key "<client>, models=<models>".

Clients: ``wrk -t1 -c32`` (the protocol of the anchor figure in shared/BENCHMARKS.md), or
without wrk, 32 asyncio keep-alive connections speaking HTTP/1.1 directly. (httpx's async
client tops out at 400-900 requests/s on this machine, below the constant endpoint: it would
measure itself, not the servers.)
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEMO = ROOT / "src" / "cinerec" / "demo_data" / "ml-latest-small"
RESULTS = HERE / "results" / "recs_throughput.json"
LIKERS = 300
MOVIELENS_USERS = 610

WRK_SCRIPT = """
local n = 0
request = function()
  n = n + 1
  local kind = n % 3
  local path
  if kind == 0 then
    path = "/recs/new-@TAG@-" .. n
  elseif kind == 1 then
    path = "/recs/liker-" .. (n % @LIKERS@)
  else
    path = "/recs/" .. (n % @MOVIELENS_USERS@ + 1)
  end
  return wrk.format("GET", path)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %f %f %f\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Run:
    requests: int
    seconds: float
    errors: int
    rps: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    #: the server process's CPU time per request answered (µs; Linux /proc, else 0), and
    #: the same per thread name (the event loop is "main")
    cpu_us: float = 0.0
    threads_us: dict[str, float] = field(default_factory=dict)


def user_paths(tag: str) -> Iterator[str]:
    """The same mix of users as the wrk script: new, liked something, MovieLens rater."""
    n = 0
    while True:
        n += 1
        kind = n % 3
        if kind == 0:
            yield f"/recs/new-{tag}-{n}"
        elif kind == 1:
            yield f"/recs/liker-{n % LIKERS}"
        else:
            yield f"/recs/{n % MOVIELENS_USERS + 1}"


# -- servers -------------------------------------------------------------------------------
def cpu_ticks(pid: int) -> dict[str, int]:
    """CPU time (user + system, clock ticks) of each thread of ``pid`` by thread name, the
    main thread as "main" (Linux ``/proc``; empty elsewhere)."""
    ticks: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = "main" if task.name == str(pid) else stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks[name] = ticks.get(name, 0) + int(fields[11]) + int(fields[12])
    return ticks


def with_cpu(run: Run, before: dict[str, int], after: dict[str, int]) -> Run:
    """``run`` with the server's CPU time per answered request (``cpu_ticks`` around it)."""
    answered = max(run.requests - run.errors, 1)
    us = 1e6 / os.sysconf("SC_CLK_TCK") / answered
    threads = {
        name: round((t - before.get(name, 0)) * us, 1)
        for name, t in sorted(after.items())
        if t > before.get(name, 0)
    }
    return replace(run, cpu_us=round(sum(threads.values()), 1), threads_us=threads)


def wait_for_plans(url: str, timeout: float = 600.0) -> float:
    """Wait until the service has made every plan it queued in the background; returns the
    seconds it took. After a model swap a user's plan is remade when the user next asks
    (the warm-up asks for every user), so waiting after the warm-up measures the steady
    state: lists served from plans, not the seconds after a swap."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if httpx.get(f"{url}/api/v1/health", timeout=30).json().get("plans_pending", 0) == 0:
            break
        time.sleep(0.5)
    return time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    cmd: list[str], url: str, log: Path, timeout: float, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, float]:
    """Start a server and wait for its /healthcheck; returns the process and start-up seconds."""
    # A benchmark server on loopback: no auth (docs/security.md), as `make run`.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "CINEREC_AUTH": "off", **(env or {})}
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            sys.exit(f"{cmd[0]} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthcheck", timeout=2).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"{cmd} not healthy after {timeout} s:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def seed_likers(url: str) -> None:
    """LIKERS users, each liking 5 random MovieLens movies."""
    with (DEMO / "movies.csv").open(newline="", encoding="utf-8") as f:
        movies = [row["movieId"] for row in csv.DictReader(f)]
    rng = random.Random(0)
    events = [
        {"user_id": f"liker-{u}", "movie_id": m, "kind": "like"}
        for u in range(LIKERS)
        for m in rng.sample(movies, 5)
    ]
    r = httpx.post(f"{url}/api/v1/events/batch", json={"events": events}, timeout=60)
    r.raise_for_status()


def train(url: str) -> tuple[str | None, str | None]:
    """Train now and wait until the new models serve, so that the scheduler inside ``serve``
    does not train in the middle of a measurement. Returns the personal model serving and
    the ranker the run chose (``warm=…,cold=…``): a plan ordered by one source's scores
    costs far less than one a learned ranker scores (every source asked, every candidate
    predicted), and which one a run chooses depends on its random held-out slice."""
    r = httpx.post(f"{url}/api/v1/admin/train", json={"mode": "full"}, timeout=60)
    r.raise_for_status()
    job_url = f"{url}/api/v1/admin/jobs/{r.json()['id']}"
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        job = httpx.get(job_url, timeout=60).json()
        if job["status"] == "succeeded":
            ranker = job["result"]["ranker"]
            return job["result"]["personal"], ranker["params"].get("ranker") if ranker else None
        if job["status"] == "failed":
            raise RuntimeError(f"training failed: {job['error']} (see the server log)")
        time.sleep(1)
    raise RuntimeError("training did not finish within 1800 s")


def profile(pid: int, out: Path, seconds: float) -> subprocess.Popen:
    """py-spy sampling ``pid`` for ``seconds`` without pausing it, GIL holders only."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [spy, "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "100",
         "--gil", "--nonblocking", "--threads", "-f", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


# -- load generators -----------------------------------------------------------------------
def run_wrk(url: str, tag: str, concurrency: int, duration: float, workdir: Path) -> Run:
    script = workdir / f"recs-{tag}.lua"
    script.write_text(
        WRK_SCRIPT.replace("@TAG@", tag)
        .replace("@LIKERS@", str(LIKERS))
        .replace("@MOVIELENS_USERS@", str(MOVIELENS_USERS))
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    requests, duration_us, errors, mean_us, p50_us, p99_us = (float(x) for x in line.split()[1:])
    seconds = duration_us / 1e6
    return Run(
        int(requests),
        round(seconds, 3),
        int(errors),
        round(requests / seconds, 1),
        round(mean_us / 1e3, 2),
        round(p50_us / 1e3, 2),
        round(p99_us / 1e3, 2),
    )


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str
) -> int:
    """One keep-alive HTTP/1.1 GET; returns the status (the body is read and dropped)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def _asyncio_load(url: str, tag: str, concurrency: int, total: int, bound: float) -> Run:
    """``concurrency`` keep-alive connections, each sending its next request as soon as the
    previous answer is in, until ``total`` requests or ``bound`` seconds."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    paths = user_paths(tag)
    latencies: list[float] = []
    errors = 0
    t0 = time.perf_counter()
    deadline = t0 + bound

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        while len(latencies) + errors < total and time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                status = await _get(reader, writer, host, next(paths))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            if status == 200:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    latencies.sort()
    n = len(latencies)
    return Run(
        n + errors,
        round(seconds, 3),
        errors,
        round(n / seconds, 1),
        round(statistics.fmean(latencies) * 1e3, 2),
        round(latencies[n // 2] * 1e3, 2),
        round(latencies[min(n - 1, int(n * 0.99))] * 1e3, 2),
    )


def run_asyncio(url: str, tag: str, concurrency: int, total: int, bound: float) -> Run:
    return asyncio.run(_asyncio_load(url, tag, concurrency, total, bound))


# -- report --------------------------------------------------------------------------------
def median_run(runs: list[Run]) -> dict[str, float]:
    names = ("rps", "mean_ms", "p50_ms", "p99_ms", "cpu_us")
    return {f: round(statistics.median(getattr(r, f) for r in runs), 2) for f in names}


def table(medians: dict[str, dict[str, float]], errors: dict[str, int]) -> str:
    svc, const = medians["service"], medians["constant"]
    rows = [
        "| target | req/s | mean ms | p50 ms | p99 ms | CPU µs/request | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, label in (("service", "cinerec `/recs`"), ("constant", "constant FastAPI")):
        m = medians[name]
        rows.append(
            f"| {label} | {m['rps']:,.0f} | {m['mean_ms']:.2f} | {m['p50_ms']:.2f} "
            f"| {m['p99_ms']:.2f} | {m['cpu_us']:.0f} | {errors[name]} |"
        )
    cpu = f"{svc['cpu_us'] / const['cpu_us']:.2f}" if const["cpu_us"] else ""
    rows.append(
        f"| ratio service/constant | {svc['rps'] / const['rps']:.2f} "
        f"| {svc['mean_ms'] / const['mean_ms']:.2f} | {svc['p50_ms'] / const['p50_ms']:.2f} "
        f"| {svc['p99_ms'] / const['p99_ms']:.2f} | {cpu} | |"
    )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--client", choices=["auto", "wrk", "asyncio"], default="auto")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0, help="wrk: seconds per run")
    ap.add_argument("--requests", type=int, default=20_000, help="asyncio: requests per run")
    ap.add_argument("--time-bound", type=float, default=10.0, help="asyncio: max seconds per run")
    ap.add_argument(
        "--models",
        choices=["trained", "none"],
        default="trained",
        help="trained: a full training run first (what `serve` does on its own within "
        "seconds); none: scheduler off, only the non-personal recommenders",
    )
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument(
        "--profile",
        type=Path,
        help="a directory: py-spy (--gil --nonblocking) records the service during each of "
        "its measured runs into <dir>/service-<run>.txt (raw, collapsed stacks)",
    )
    args = ap.parse_args()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "asyncio"
    if client == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk), use --client asyncio")

    def measure(url: str, tag: str, workdir: Path) -> Run:
        if client == "wrk":
            return run_wrk(url, tag, args.concurrency, args.duration, workdir)
        return run_asyncio(url, tag, args.concurrency, args.requests, args.time_bound)

    with tempfile.TemporaryDirectory(prefix="cinerec-bench-") as tmp:
        work = Path(tmp)
        svc_port, const_port = free_port(), free_port()
        urls = {
            "service": f"http://127.0.0.1:{svc_port}",
            "constant": f"http://127.0.0.1:{const_port}",
        }
        cinerec = Path(sys.executable).with_name("cinerec")
        print("starting cinerec serve --demo (imports MovieLens latest-small) ...", flush=True)
        svc_proc, startup = start(
            [str(cinerec), "serve", "--demo", "--host", "127.0.0.1", "--port", str(svc_port),
             "--database-url", f"sqlite:///{work / 'bench.db'}"],
            urls["service"], work / "service.log", timeout=300,
            env={"CINEREC_SCHEDULER": "false"} if args.models == "none" else None,
        )  # fmt: skip
        const_proc, _ = start(
            [sys.executable, "-m", "uvicorn", "const_app:app", "--app-dir", str(HERE),
             "--host", "127.0.0.1", "--port", str(const_port), "--workers", "1",
             "--log-level", "warning", "--no-access-log"],
            urls["constant"], work / "constant.log", timeout=60,
        )  # fmt: skip
        try:
            seed_likers(urls["service"])
            personal = ranker = None
            if args.models == "trained":
                print("training (full) ...", flush=True)
                personal, ranker = train(urls["service"])
            settle = wait_for_plans(urls["service"])
            sample = httpx.get(f"{urls['service']}/recs/liker-1").json()["item_ids"]
            assert len(sample) == 10, sample
            health = httpx.get(f"{urls['service']}/api/v1/health").json()
            print(f"service up in {startup:.1f} s: {health['movies']} movies, "
                  f"{health['events']} events, personal model {personal}, ranker {ranker}, "
                  f"plans made in the background {settle:.1f} s after training; "
                  f"client {client}, c={args.concurrency}")  # fmt: skip
            for name, url in urls.items():  # warm-up, not recorded
                if client == "wrk":
                    run_wrk(url, f"warm-{name}", args.concurrency, 2, work)
                else:
                    run_asyncio(url, f"warm-{name}", args.concurrency, 500, 10)
            # The warm-up asked for every user's list: the plans the training run outdated
            # are remade now, before the measurement (not in the middle of it).
            remade = wait_for_plans(urls["service"])
            print(f"plans outdated by the training run remade {remade:.1f} s after the warm-up")
            runs: dict[str, list[Run]] = {"service": [], "constant": []}
            for rep in range(args.repeats):
                order = ["service", "constant"] if rep % 2 == 0 else ["constant", "service"]
                for name in order:
                    spy = None
                    if args.profile and name == "service":
                        spy = profile(
                            svc_proc.pid, args.profile / f"service-{rep + 1}.txt", args.duration - 1
                        )
                    pid = (svc_proc if name == "service" else const_proc).pid
                    before = cpu_ticks(pid)
                    run = with_cpu(
                        measure(urls[name], f"{name}-{rep}", work), before, cpu_ticks(pid)
                    )
                    if spy is not None:
                        spy.wait()
                    runs[name].append(run)
                    threads = ", ".join(f"{t} {us:.0f}" for t, us in run.threads_us.items())
                    print(f"  {name:8s} run {rep + 1}: {run.rps:8,.0f} req/s, mean "
                          f"{run.mean_ms:6.2f} ms, p99 {run.p99_ms:6.2f} ms, "
                          f"{run.errors} errors; CPU µs/request {run.cpu_us:.0f} "
                          f"({threads})", flush=True)  # fmt: skip
        finally:
            stop(svc_proc)
            stop(const_proc)

    medians = {name: median_run(r) for name, r in runs.items()}
    errors = {name: sum(x.errors for x in r) for name, r in runs.items()}
    report = table(medians, errors)
    print()
    print(report)

    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "protocol": {
            "client": client,
            "command": " ".join([os.path.relpath(sys.executable, ROOT), *sys.argv]),
            "concurrency": args.concurrency,
            "repeats": args.repeats,
            **(
                {"wrk": f"-t1 -c{args.concurrency} -d{args.duration:g}s"}
                if client == "wrk"
                else {"requests_per_run": args.requests, "time_bound_s": args.time_bound}
            ),
            "users": "1/3 new on every request, 1/3 liked 5 movies, 1/3 MovieLens raters",
            "both servers": "one process, one uvicorn worker, 127.0.0.1, log-level warning",
        },
        "catalogue": {k: health[k] for k in ("movies", "users", "events")},
        "personal_model": personal,
        "ranker": ranker,
        "service_startup_s": round(startup, 1),
        "median": medians,
        "ratio_service_to_constant": {
            "rps": round(medians["service"]["rps"] / medians["constant"]["rps"], 3),
            "cpu_per_request": round(
                medians["service"]["cpu_us"] / max(medians["constant"]["cpu_us"], 1e-9), 3
            ),
            "mean_latency": round(
                medians["service"]["mean_ms"] / medians["constant"]["mean_ms"], 3
            ),
        },
        "runs": {name: [asdict(x) for x in r] for name, r in runs.items()},
        "table": report,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(args.output.read_text()) if args.output.exists() else {}
    key = f"{client}, models={args.models}"
    saved[key] = record
    args.output.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"\nwritten to {args.output} (key {key!r})")


if __name__ == "__main__":
    main()
