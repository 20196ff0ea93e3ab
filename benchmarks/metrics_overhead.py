"""What the HTTP metrics middleware costs per request, without sockets or a client.

Drives a FastAPI app with one ``/recs/{user_id}`` route answering a constant list straight
through its ASGI callable (no server, no network, an async endpoint so that no thread hand-off
adds noise), with and without :class:`cinerec.api.middleware.MetricsMiddleware` in front,
interleaved in rounds; prints the median microseconds per request of each, their difference
(the middleware's cost), and the cost of the recording call alone (``HttpMetrics.observe``).

    .venv/bin/python benchmarks/metrics_overhead.py [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from cinerec.api.middleware import MetricsMiddleware, RequestIdMiddleware
from cinerec.observability.metrics import HttpMetrics


def make_app(with_metrics: bool) -> FastAPI:
    app = FastAPI()

    @app.get("/recs/{user_id}")
    async def recs(user_id: str) -> dict[str, list[str]]:
        return {"item_ids": [str(i) for i in range(10)]}

    app.add_middleware(RequestIdMiddleware)
    if with_metrics:
        app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(CollectorRegistry()))
    return app


async def drive(app: FastAPI, n: int) -> float:
    """Seconds per request over ``n`` requests to ``/recs/u{i % 50}``."""

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        return None

    t0 = time.perf_counter()
    for i in range(n):
        path = f"/recs/u{i % 50}"
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 5001),
        }
        await app(scope, receive, send)
    return (time.perf_counter() - t0) / n


async def main(n: int, rounds: int) -> None:
    apps = {"without": make_app(False), "with": make_app(True)}
    for app in apps.values():  # warm up: route compilation, threadpool, label children
        await drive(app, 500)
    times: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            times[name].append(await drive(app, n))
    med = {name: statistics.median(t) * 1e6 for name, t in times.items()}
    print(f"requests per round {n}, rounds {rounds} (median microseconds per request)")
    print(f"without metrics middleware: {med['without']:8.1f} us")
    print(f"with metrics middleware:    {med['with']:8.1f} us")
    print(f"middleware cost:            {med['with'] - med['without']:8.1f} us")
    http = HttpMetrics(CollectorRegistry())
    n_obs = 200_000
    t0 = time.perf_counter()
    for _ in range(n_obs):
        http.observe("GET", "/recs/{user_id}", 200, 0.004)
    print(f"HttpMetrics.observe alone:  {(time.perf_counter() - t0) / n_obs * 1e6:8.2f} us")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    asyncio.run(main(a.requests, a.rounds))
