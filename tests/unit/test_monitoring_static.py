"""The monitoring files (deploy/monitoring/: Prometheus scrape config, alert
rules, Grafana provisioning and dashboard), checked offline with Prometheus'
own promtool (`make tools` fetches it) and against the metrics the code
really defines: a query naming a metric nobody exports is a blank panel."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "percept.json"
BUILTIN = {"up"}  # what Prometheus itself records per target
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


@pytest.fixture(scope="module")
def promtool() -> str:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import ensure_tools
    finally:
        sys.path.pop(0)
    return ensure_tools.promtool()


def run(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every sample name the gateway and the services export."""
    from prometheus_client import REGISTRY

    import gateway.metrics  # noqa: F401 - registers the gateway's metrics
    import percept_runtime.metrics  # noqa: F401 - and the services'

    names = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("percept_"):
            continue
        names.add(family.name)
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
        }.get(family.type, ())
        names.update(family.name + s for s in suffixes)
    return names


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def rule_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(percept_[a-z0-9_]+)\b", expr))
    names |= {n for n in re.findall(r"\b([a-z_]+)\s*[{\[]", expr) if n in BUILTIN}
    return names


def test_prometheus_config_and_its_rule_files_are_valid(promtool, tmp_path):
    """Checked as Prometheus would load it, with the files it names in place (the
    gateway's key is a secret the operator writes: a stand-in here)."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    shutil.copytree(MONITORING, tmp_path / "monitoring")
    for job in config["scrape_configs"]:
        secret = job.get("authorization", {}).get("credentials_file")
        if secret:
            assert secret.startswith("secrets/"), "secrets live in the git-ignored secrets/"
            (tmp_path / "monitoring" / secret).write_text("an-admin-key\n")
    result = run(promtool, "check", "config", "prometheus.yml", cwd=tmp_path / "monitoring")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_alert_rules_fire_on_what_they_are_for(promtool):
    """promtool's rule unit tests: a replica down, 3% failures (not 0.1%), a
    queue whose oldest task waits past 2 minutes, a replica with no worker."""
    result = run(promtool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (MONITORING / "alerts_test.yml").read_text()))
    assert tested >= {a for a, _ in rule_exprs()} - {"PerceptGatewayDown"}


def test_promtool_rejects_a_broken_rule(promtool, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n- name: x\n  rules:\n  - alert: X\n    expr: sum(rate(percept_gateway_tasks_finished_total[5m])\n"
    )
    result = run(promtool, "check", "rules", str(broken))
    assert result.returncode != 0


def test_every_dashboard_query_is_valid_promql(promtool, tmp_path):
    """Each panel's query, Grafana's variables filled in, as a recording rule
    that promtool parses."""
    rules = []
    for i, (_title, expr) in enumerate(dashboard_exprs()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"percept:dashboard_query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_metric_queried_is_one_the_code_exports(source, exported):
    exprs = dashboard_exprs() if source == "dashboard" else rule_exprs()
    assert exprs
    for name, expr in exprs:
        names = metric_names(expr)
        assert names, f"{name}: no metric in {expr!r}"
        unknown = names - exported - BUILTIN
        assert not unknown, f"{source} {name!r} queries metrics nobody exports: {unknown}"


def test_the_metric_check_catches_a_misspelt_name(exported):
    names = metric_names('sum(rate(percept_gateway_task_finished_total{status="failed"}[5m]))')
    assert names - exported == {"percept_gateway_task_finished_total"}


def test_dashboard_panels_use_the_provisioned_data_source():
    datasources = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    uids = {d["uid"] for d in datasources}
    assert datasources[0]["url"] == "http://prometheus:9090"
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dash["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']} has no unit"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids


def test_compose_monitoring_profile_mounts_these_files_and_scrapes_every_service():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"
    provider = yaml.safe_load(
        (MONITORING / "grafana/provisioning/dashboards/percept.yml").read_text()
    )["providers"][0]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert mounts["./deploy/monitoring/grafana/dashboards"] == provider["options"]["path"]
    scrape = yaml.safe_load((MONITORING / "prometheus.yml").read_text())["scrape_configs"]
    jobs = {job["job_name"]: job for job in scrape}
    gateway_port = services["gateway"]["environment"]["GATEWAY_PORT"]
    assert jobs["percept-gateway"]["static_configs"][0]["targets"] == [f"gateway:{gateway_port}"]
    for backend in ("face", "object"):
        env = services[backend]["environment"]
        port = int(env[f"{backend.upper()}_METRICS_PORT"])
        sd = jobs[f"percept-{backend}"]["dns_sd_configs"][0]
        assert sd["names"] == [backend] and sd["port"] == port, backend
        assert str(port) in [str(p) for p in services[backend]["expose"]]
