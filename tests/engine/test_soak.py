"""Anonymous traffic stays small: 100,000 lists for 100,000 unknown user ids (as from
``GET /recs/{any id}``) keep resident memory within 100 MB of where it started, and none of
those users is ever shown a movie twice."""

from __future__ import annotations

import ctypes
import gc
import os
import random
from pathlib import Path

from cinerec.config import load_settings
from cinerec.ingest import synthetic_catalog
from cinerec.service import RecService

REQUESTS = 100_000
SAMPLE = 500
BUDGET_MB = 100
#: lists served before the test waits for the log writer (at most this many unstored)
IN_FLIGHT = 100


def rss_mb() -> float:
    """Resident memory after glibc hands freed heap back (RSS counts freed-but-kept pages)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_100k_unknown_users_stay_within_100_mb_and_never_see_a_repeat(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'soak.db'}", data_dir=tmp_path, scheduler=False
    )
    svc = RecService(settings)
    svc.add_movies(synthetic_catalog(2_000, 10, seed=1).movies)
    rng = random.Random(0)

    def serve(user: str) -> list[str]:
        result = svc.try_recommend(user) or svc.recommend(user)
        return [i.movie_id for i in result.items]

    for n in range(2_000):  # warm-up: caches, the log writer, allocator pools
        serve(f"warm-{n}")
    svc.rec_log.flush()
    gc.collect()
    before = rss_mb()
    first: dict[str, list[str]] = {}
    for n in range(REQUESTS):
        user = f"anon-{rng.getrandbits(64):016x}"
        got = serve(user)
        if n % (REQUESTS // SAMPLE) == 0:
            first[user] = got
        if n % IN_FLIGHT == 0:
            # As over HTTP, where an answer waits for its list's commit: the lists not yet
            # stored stay bounded (by the connections). Unbounded, a faster machine queues
            # ten thousand lists ahead of the writer, and the heap they leave behind is
            # counted as if the users had grown it.
            svc.rec_log.flush()
    svc.rec_log.flush()
    assert svc.engine.stats()["users"] >= REQUESTS  # folds in what the fast path served
    gc.collect()
    grown = rss_mb() - before
    assert grown < BUDGET_MB, f"resident memory grew {grown:.0f} MB for {REQUESTS} lists"
    for user, shown in first.items():  # they come back: nothing shown again
        assert not set(serve(user)) & set(shown), user
    svc.close()
