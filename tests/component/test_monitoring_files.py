"""The monitoring files in deploy/: valid for the real tools, consistent with each other."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/omnibot-rules.yml"

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs Debian's prometheus")


@needs_promtool
def test_promtool_accepts_the_rules_and_the_compose_config() -> None:
    for args in (
        ["check", "rules", str(RULES)],
        ["check", "config", str(ROOT / "deploy/prometheus/prometheus.yml")],
    ):
        result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_says_what_is_wrong_and_what_to_do() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {
        "OmnibotDeadLettersGrowing",
        "OmnibotPartitionWithoutConsumer",
        "OmnibotReplyLatencyHigh",
        "OmnibotOmnideskErrors",
        "OmnibotOmnideskRateLimited",
        "OmnibotWebhooksRefusedInBulk",
        "OmnibotLeaseFlapping",
    }
    for rule in rules:
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["action"].split()) >= 8, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_the_prometheus_rule_for_kubernetes_holds_the_same_rules() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/monitoring/prometheusrule.yaml").read_text()))
    rule = next(d for d in docs if d and d["kind"] == "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    monitor = yaml.safe_load((ROOT / "deploy/k8s/monitoring/podmonitor.yaml").read_text())
    assert monitor["kind"] == "PodMonitor"
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"


def test_compose_provisions_prometheus_and_grafana_from_files_that_exist() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in ("prometheus", "grafana"):
        for volume in compose["services"][service]["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{service} mounts {source}, which is missing"
    targets = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"][0]
    hosts = {t.split(":")[0] for t in targets["static_configs"][0]["targets"]}
    assert hosts == {"ingress", "dialog", "egress", "admin"} <= set(compose["services"])
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/omnibot.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs and all("omnibot_" in e or "process_" in e for e in exprs)
