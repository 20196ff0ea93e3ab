"""What a running experiment costs on the lock-free read path, in process (no HTTP).

A service on an in-memory SQLite store gets a synthetic catalogue and users with a few likes
each (so every user has a plan of their own). Then, interleaved in rounds, the same number of
default lists is served through ``RecService.try_recommend`` (the event loop's fast path)
with no experiment, and with an A/A experiment running (two variants of the default setting,
so the plans served are the same kind and the difference is the assignment: hashing the user
id, picking the variant, logging it). Prints the median microseconds per list of each and
their ratio, then the cost of the assignment alone. Lists the fast path could not serve (a
plan to make) are counted apart and left out of the timing.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/experiment_overhead.py \
        [--lists 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

from cinerec.config import load_settings
from cinerec.domain import Event, EventKind, Movie, Variant
from cinerec.service import RecService


def build(n_movies: int, n_users: int) -> RecService:
    settings = load_settings(database_url="sqlite:///:memory:", scheduler=False)
    svc = RecService(settings)
    svc.load()
    genres = ["Drama", "Comedy", "Action", "Horror", "Romance"]
    svc.add_movies([Movie(f"m{i}", f"Movie {i}", genres=[genres[i % 5]]) for i in range(n_movies)])
    events = [
        Event(f"u{u}", f"m{(u * 7 + j * 13) % n_movies}", EventKind.LIKE)
        for u in range(n_users)
        for j in range(5)
    ]
    svc.record_events(events)
    svc.engine.refresh([f"u{u}" for u in range(n_users)])
    # One list on the locked path fills the catalogue caches the fast path reads.
    svc.recommend("warm-up")
    return svc


def serve(svc: RecService, users: list[str]) -> tuple[float, int]:
    """Seconds per list served on the fast path, and how many lists it declined."""
    declined = 0
    t0 = time.perf_counter()
    for u in users:
        if svc.try_recommend(u) is None:
            declined += 1
    elapsed = time.perf_counter() - t0
    return elapsed / max(len(users) - declined, 1), declined


def main(n_lists: int, rounds: int) -> None:
    n_users = n_lists * 2 * rounds // 4  # each user is asked about four times in all
    svc = build(n_movies=5000, n_users=n_users)
    users = [f"u{u}" for u in range(n_users)]
    serve(svc, users[: n_lists // 4])  # warm up
    times: dict[str, list[float]] = {"no experiment": [], "A/A experiment": []}
    declined = dict.fromkeys(times, 0)
    cursor = 0
    for _ in range(rounds):
        for mode in times:
            batch = [users[(cursor + i) % n_users] for i in range(n_lists)]
            cursor += n_lists
            if mode == "A/A experiment":
                exp = svc.create_experiment("A/A", [Variant("a", 0.5), Variant("b", 0.5)])
            t, d = serve(svc, batch)
            if mode == "A/A experiment":
                svc.stop_experiment(exp.id)
            times[mode].append(t)
            declined[mode] += d
            svc.rec_log.flush()
    med = {mode: statistics.median(t) * 1e6 for mode, t in times.items()}
    print(f"lists per round {n_lists}, rounds {rounds} (median microseconds per list)")
    for mode, us in med.items():
        print(f"{mode:16s} {us:8.1f} us   (declined by the fast path: {declined[mode]})")
    print(f"ratio            {med['A/A experiment'] / med['no experiment']:8.3f}")
    exp = svc.create_experiment("A/A", [Variant("a", 0.5), Variant("b", 0.5)])
    n = 200_000
    t0 = time.perf_counter()
    for i in range(n):
        svc.experiments.assign(users[i % n_users])
    print(f"assignment alone {(time.perf_counter() - t0) / n * 1e6:8.2f} us")
    svc.stop_experiment(exp.id)
    svc.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lists", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args()
    main(a.lists, a.rounds)
