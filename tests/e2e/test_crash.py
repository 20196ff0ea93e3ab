"""``kill -9`` of the server under load: after a restart no acknowledged event is lost and no
movie a client received is shown to the same user again."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx

from cinerec.store import open_store

from .test_http import GENRES, start_server

USERS = 24
CATALOGUE = 400


def test_kill_9_under_load_loses_no_acknowledged_event_and_reshows_nothing(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path, env={"CINEREC_SCHEDULER": "false"})
    run = uuid.uuid4().hex[:6]
    catalogue = [f"{run}-{i}" for i in range(CATALOGUE)]
    r = server.main.post(
        "/add_items",
        json={"item_ids": catalogue, "genres": [[GENRES[i % 6]] for i in range(CATALOGUE)]},
    )
    assert r.status_code == 200
    main_url, collector_url = str(server.main.base_url), str(server.collector.base_url)
    received: dict[str, set[str]] = {f"u{n}-{run}": set() for n in range(USERS)}
    acked: dict[str, set[str]] = {u: set() for u in received}
    stop = threading.Event()
    lock = threading.Lock()

    def user_loop(user: str, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.get(f"{main_url}/recs/{user}")
                    if r.status_code == 200:
                        with lock:
                            received[user].update(r.json()["item_ids"])
                        liked = rng.choice(r.json()["item_ids"])
                        r = c.post(
                            f"{collector_url}/interact",
                            json={"user_id": user, "item_ids": [liked], "actions": ["like"]},
                        )
                        if r.status_code == 200:
                            with lock:
                                acked[user].add(liked)
                except httpx.TransportError:
                    return  # the server is gone

    threads = [
        threading.Thread(target=user_loop, args=(u, n), daemon=True) for n, u in enumerate(received)
    ]
    for t in threads:
        t.start()
    time.sleep(2.5)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    server.main.close()
    server.collector.close()
    assert sum(len(v) for v in acked.values()) > 20, "too little load to mean anything"

    store = open_store(server.database_url)
    try:
        for user, movies in acked.items():
            stored = {e.movie_id for e in store.user_events(user)}
            assert movies <= stored, f"acknowledged likes of {user} were lost"
    finally:
        store.close()

    again = start_server(tmp_path, env={"CINEREC_SCHEDULER": "false"})
    try:
        for user, movies in received.items():
            for _ in range(2):
                r = again.main.get(f"/recs/{user}")
                assert r.status_code == 200
                back = set(r.json()["item_ids"]) & movies
                assert not back, f"{user} was shown {sorted(back)} again after the crash"
                movies = movies | set(r.json()["item_ids"])
    finally:
        again.stop()
