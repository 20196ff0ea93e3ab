"""``cinerec report`` and ``cinerec worker --metrics-port`` as an operator runs them."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from cinerec.cli import app
from cinerec.domain import Event, EventKind, RecLogEntry
from cinerec.ingest import generate
from cinerec.store import open_store

CLI = [sys.executable, "-m", "cinerec.cli"]


def test_report_prints_the_table_and_draws_the_chart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = open_store(url)
    now = time.time()
    store.log_recommendations(
        [
            RecLogEntry("s1", "u1", ["a", "b", "c", "d"], ["als"] * 4, "als", ts=now - 7200),
            RecLogEntry("s2", "u2", ["a", "b", "c", "d"], ["als"] * 4, "als", ts=now - 600),
            RecLogEntry("s3", "u3", ["a", "b", "c"], ["popular"] * 3, "popular", ts=now - 300),
        ]
    )
    store.add_events(
        [
            Event("u1", "a", EventKind.LIKE, ts=now - 7100),
            Event("u1", "b", EventKind.LIKE, ts=now - 7000),
            Event("u2", "c", EventKind.LIKE, ts=now - 500),
            Event("u2", "z", EventKind.RATING, 5.0, ts=now - 400),
        ]
    )
    store.close()
    png, js = tmp_path / "q.png", tmp_path / "q.json"
    r = CliRunner().invoke(
        app,
        [
            "report",
            "--database-url",
            url,
            "--window",
            "86400",
            "--png",
            str(png),
            "--json",
            str(js),
        ],
    )
    assert r.exit_code == 0, r.output
    rows = {
        cells[0]: cells[1:]
        for line in r.output.splitlines()
        if line.startswith("| ") and not line.startswith("| source")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    # als: s1 has 2 hits in its top 3 (of 2 likes), s2 one (of 2 likes: c and z)
    assert rows["als"][:4] == ["2", "2", f"{(2 / 3 + 1 / 3) / 2:.4f}", f"{(1 + 0.5) / 2:.4f}"]
    assert rows["popular"][:3] == ["1", "0", "0.0000"] and rows["popular"][3] == "-"
    assert rows["all"][0] == "3"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert '"als"' in js.read_text()


def test_report_rejects_a_non_positive_window(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    r = CliRunner().invoke(app, ["report", "--database-url", url, "--bucket", "-5"])
    assert r.exit_code == 2 and "--bucket must be positive" in r.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_serves_its_training_metrics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    generate(open_store(url), 200, 150, 4000, progress=False)
    port = free_port()
    env = {
        **os.environ,
        "CINEREC_DATABASE_URL": url,
        "CINEREC_DATA_DIR": str(tmp_path),
        "CINEREC_MODELS": '["als"]',
        "OPENBLAS_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(
        [*CLI, "worker", "--tick", "0.2", "--metrics-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # The model serves a moment before the run is counted (listeners run after it ends).
        ran = re.compile(
            r'^cinerec_training_runs_total\{mode="full",outcome="trained"\} 1\.0$', re.M
        )
        deadline = time.time() + 120
        body = ""
        while time.time() < deadline:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                body = ""
            if ran.search(body):
                break
            time.sleep(0.5)
        assert ran.search(body), body[-2000:]
        assert re.search(r'^model_loaded_status\{model="als"\} 1\.0$', body, re.M)
        assert re.search(r'^model_train_duration_seconds_count\{type="full"\} 1\.0$', body, re.M)
        assert "http_requests_total" not in body  # the worker serves no API
    finally:
        proc.terminate()
        proc.wait(timeout=15)
