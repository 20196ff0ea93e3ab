"""``cinerec experiments`` against a real ``cinerec serve`` over sockets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .test_http import ADMIN_TOKEN, cinerec_command, get_recs, start_server


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CINEREC_ADMIN_TOKEN": ADMIN_TOKEN, "CINEREC_URL": url}
    return subprocess.run(
        [*cinerec_command(), "experiments", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_create_show_stop_and_promote_from_the_cli(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        url = str(server.main.base_url)
        ids = [f"m{i}" for i in range(40)]
        r = server.main.post("/add_items", json={"item_ids": ids, "genres": [["Drama"]] * 40})
        assert r.status_code == 200
        bad = cli(url, "create", "bad", "--variant", "a=0.5", "--variant", "b=0.4")
        assert bad.returncode == 1 and "shares must sum to 1" in bad.stderr
        made = cli(
            url, "create", "ranker vs popular", "--variant", "ranker=0.5",
            "--variant", "pop=0.5:popular:noexplore",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        exp_id = made.stdout.split()[0]
        assert exp_id.startswith("exp-") and "running" in made.stdout
        for u in range(6):
            get_recs(server.main, f"user{u}")
        shown = cli(url, "show", exp_id)
        assert shown.returncode == 0, shown.stderr
        assert "| ranker | ranker |" in shown.stdout and "| pop | popular, no exploration |" in (
            shown.stdout
        )
        assert "verdict (like_rate)" in shown.stdout
        assert cli(url, "stop", exp_id).returncode == 0
        again = cli(url, "stop", exp_id)
        assert again.returncode == 1 and "already stopped" in again.stderr
        promoted = cli(url, "promote", exp_id, "pop")
        assert promoted.returncode == 0 and "winner pop" in promoted.stdout
        listed = cli(url, "list")
        assert listed.stdout.startswith(exp_id) and "promoted" in listed.stdout
        # Everyone now gets popularity alone, outside any experiment.
        for user, liked in (("fan1", ["m7", "m9"]), ("fan2", ["m7"]), ("fan3", ["m7"])):
            body = {"user_id": user, "item_ids": liked, "actions": ["like"] * len(liked)}
            assert server.collector.post("/interact", json=body).status_code == 200
        r = server.main.get("/api/v1/recommendations/newcomer")
        items = [(i["movie_id"], i["source"]) for i in r.json()["items"]]
        assert items[:2] == [("m7", "popular"), ("m9", "popular")]
    finally:
        server.stop()
