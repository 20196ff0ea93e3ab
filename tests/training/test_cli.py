"""`cinerec train` and `cinerec worker` as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cinerec.ingest import generate
from cinerec.store import open_store

CLI = [sys.executable, "-m", "cinerec.cli"]


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CINEREC_DATABASE_URL": url,
        "CINEREC_DATA_DIR": str(tmp_path),
        "CINEREC_MODELS": '["als"]',
        "OPENBLAS_NUM_THREADS": "1",
    }


def test_train_full_and_incremental_from_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    generate(open_store(url), 200, 150, 4000, progress=False)
    env = _env(tmp_path, url)
    full = subprocess.run(
        [*CLI, "train", "--full"], env=env, capture_output=True, text=True, timeout=120
    )
    assert full.returncode == 0, full.stderr
    assert "serving" in full.stdout and "als-" in full.stdout
    inc = subprocess.run(
        [*CLI, "train", "--incremental"], env=env, capture_output=True, text=True, timeout=120
    )
    assert inc.returncode == 0, inc.stderr
    records = open_store(url).list_models()
    assert [r.mode for r in records if r.kind != "ranker"] == ["incremental", "full"]


def test_worker_trains_when_events_arrive(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    store = open_store(url)
    generate(store, 200, 150, 4000, progress=False)
    env = {**_env(tmp_path, url), "CINEREC_MIN_EVENTS_TO_TRAIN": "10"}
    # The worker starts with everything loaded as "already trained on"; new events arrive
    # from "another process" before its first check.
    proc = subprocess.Popen(
        [*CLI, "worker", "--tick", "0.2", "--cycles", "15"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    import time

    time.sleep(3)
    generate(store, 200, 150, 500, seed=1, progress=False)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "full" in out
    assert sorted(m.kind for m in store.serving_models()) == ["als", "ranker"]
