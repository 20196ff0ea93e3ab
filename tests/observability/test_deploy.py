"""deploy/: Prometheus config, alert rules and their unit tests checked by promtool; every
query of the Grafana dashboard and of the rules parses and names a metric the service exports.

promtool comes from Debian's ``prometheus`` package: found on PATH or where ``.ci/run``
unpacks it (``$CINEREC_TOOLS_DIR``, default ``~/.cache/cinerec-tools``). Without it these tests
skip, except under ``CINEREC_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import promql_parser
import pytest
import yaml
from fastapi.testclient import TestClient
from tests.observability.conftest import names, scrape
from tests.training.test_training import train_job

from cinerec.api.main import create_app, create_collector_app
from cinerec.config import load_settings
from cinerec.domain import Variant
from cinerec.ingest import synthetic_catalog, synthetic_events
from cinerec.service import RecService

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "recommendation-service.json"
#: series Prometheus makes itself rather than scraping
SYNTHETIC = {"up"}

OBS_ADMIN_TOKEN = "observability-admin-token"
OBS_ADMIN = {"Authorization": f"Bearer {OBS_ADMIN_TOKEN}"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cinerec-tools"
    tools = Path(os.environ.get("CINEREC_TOOLS_DIR") or cache)
    candidate = tools / "prometheus" / "usr" / "bin" / "promtool"
    if candidate.is_file():
        return str(candidate)
    if os.environ.get("CINEREC_REQUIRE_SERVICES") == "1":
        pytest.fail("promtool not found on PATH nor in $CINEREC_TOOLS_DIR (.ci/run installs it)")
    pytest.skip("promtool not installed (Debian package prometheus; .ci/run installs it)")


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=PROM, capture_output=True, text=True, timeout=120
    )


def test_promtool_check_config() -> None:
    r = run_promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 rule files found" in r.stdout


def test_promtool_check_rules() -> None:
    r = run_promtool("check", "rules", "rules.yml")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_promtool_rule_unit_tests_cover_every_alert() -> None:
    rules = yaml.safe_load((PROM / "rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROM / "rules_test.yml").read_text())
    tested = {
        case["alertname"]
        for t in tests["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == tested  # each alert has a case where it fires
    r = run_promtool("test", "rules", "rules_test.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def metric_names(expr: str) -> set[str]:
    """Names of the series a PromQL expression selects (raises ValueError if it does not
    parse)."""
    found: set[str] = set()

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    rules = yaml.safe_load((PROM / "rules.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_metric_names_are_read_from_queries() -> None:
    assert metric_names('sum(rate(a_total{x="1"}[5m])) / on() b offset 1m') == {"a_total", "b"}
    with pytest.raises(ValueError):
        metric_names("sum(rate(a_total[5m])")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Every sample name the api and collector roles export after traffic and a training run."""
    tmp = tmp_path_factory.mktemp("deploy")
    settings = load_settings(
        database_url=f"sqlite:///{tmp / 'db.sqlite'}",
        data_dir=tmp,
        models=["als"],
        min_events_to_train=10,
        admin_token=OBS_ADMIN_TOKEN,
    )
    svc = RecService(settings)
    data = synthetic_catalog(300, 200, seed=5)
    svc.add_movies(data.movies)
    for chunk in synthetic_events(data, 3000, seed=5, batch=1500):
        svc.record_events(chunk)
    api = TestClient(create_app(svc), headers=OBS_ADMIN)
    collector = TestClient(create_collector_app(svc))
    train_job(api, "full")
    exp = svc.create_experiment(
        "deploy", [Variant("ranker", 0.5), Variant("popular", 0.5, "popular", False)]
    )
    for u in range(5):
        ids = api.get(f"/recs/new-{u}").json()["item_ids"]
        body = {"user_id": f"new-{u}", "item_ids": ids[:2], "actions": ["like", "dislike"]}
        assert collector.post("/interact", json=body).status_code == 200
    assert api.get("/api/recommend/v1/recommendations/new-0?model=als").status_code == 200
    assert api.get("/api/v1/recommendations/new-1?source=popular").status_code == 200
    assert api.get("/no/such/page").status_code == 404
    svc.rec_log.flush()
    svc.experiment_report(exp.id)  # the experiment series, as a scrape would refresh them
    api.app.state.metrics.online.refresh()  # type: ignore[attr-defined]
    api.app.state.metrics.probe.check()  # type: ignore[attr-defined]
    yield names(scrape(api)) | names(scrape(collector))
    svc.close()


def test_every_dashboard_query_parses_and_names_an_exported_metric(exported: set[str]) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    missing = {(e, n) for e in exprs for n in metric_names(e) if n not in exported | SYNTHETIC}
    assert not missing
    # each query selects something
    assert all(metric_names(e) for e in exprs)


def test_every_alert_names_an_exported_metric(exported: set[str]) -> None:
    missing = {
        (e, n) for e in rule_exprs() for n in metric_names(e) if n not in exported | SYNTHETIC
    }
    assert not missing


def test_dashboard_covers_the_issue_and_uses_the_provisioned_source() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] == "Recommendation Service Metrics"
    text = " ".join(dashboard_exprs())
    for needed in (
        "http_requests_total",
        "http_request_latency_seconds_bucket",
        'status=~"5.."',
        "cinerec_source_likes_total",
        "cinerec_online_precision",
        "cinerec_online_recall",
        "model_train_duration_seconds_count",
        "cinerec_rec_log_pending",
    ):
        assert needed in text
    source = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = source["datasources"][0]["uid"]
    assert {p["datasource"]["uid"] for p in dash["panels"]} == {uid}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
