"""The image and the manifests, checked by the real tools: yamllint, kubernetes-validate against a
pinned Kubernetes version (the kustomize base and production overlay rendered by kustomize.py,
the examples and the HPA alternative as they are), checkov on the rendered manifests and the
Dockerfile with only the skips justified in deploy/checkov-skips.yaml, hadolint on the
Dockerfile, and `docker compose config` where a docker client with compose is installed.
Plus what the issue asks of the manifests that no tool checks: probes on the health listener,
resources, spreading, a PodDisruptionBudget and a rolling update that never drops below the
current replicas, for every Deployment; KEDA's maximum equal to CHAT_PARTITIONS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from tests.deploy.kustomize import load_all, pod_spec, render

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.31.0"  # the oldest Kubernetes release still supported upstream
BIN = Path(sys.executable).parent
# Custom resources of operators; kubernetes-validate has schemas for Kubernetes' own kinds only.
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication", "RabbitmqCluster", "MongoDBCommunity"}
RAW = [DEPLOY / "examples/rabbitmq-cluster.yaml", DEPLOY / "examples/mongodb-replicaset.yaml"]
RAW += [DEPLOY / "k8s/production/hpa-alternative.yaml"]

pytestmark = pytest.mark.timeout(120)


def rendered() -> dict[str, list[dict[str, Any]]]:
    targets = {name: render(DEPLOY / "k8s" / name) for name in ("base", "production")}
    targets["raw"] = [doc for path in RAW for doc in load_all(path)]
    return targets


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is a dev dependency and should be in {BIN}")
    return str(path)


def test_yamllint() -> None:
    # Relative paths: the ignore patterns in .yamllint.yaml are relative to the repository.
    files = [str(p.relative_to(ROOT)) for p in DEPLOY.rglob("*.y*ml")] + ["docker-compose.yml"]
    result = subprocess.run(
        [tool("yamllint"), "--strict", "-c", str(ROOT / ".yamllint.yaml"), *files],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_manifest_is_valid_for_the_pinned_kubernetes() -> None:
    skipped: set[str] = set()
    validated: set[str] = set()
    for target, docs in rendered().items():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                skipped.add(doc["kind"])
                continue
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{target}: {doc['kind']} {doc['metadata']['name']}: {exc.message} at {exc.path}")
            validated.add(doc["kind"])
    assert skipped == CUSTOM_KINDS
    assert validated >= {
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
    }


def checkov(target: Path, framework: str, skips: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [tool("checkov"), "--framework", framework, "--compact", "--quiet", "--skip-download"]
    args += ["-f" if target.is_file() else "-d", str(target)]
    if skips:
        args += ["--skip-check", ",".join(skips)]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=100)


def test_checkov_passes_with_only_the_justified_skips(tmp_path: Path) -> None:
    skips: dict[str, dict[str, str]] = yaml.safe_load((DEPLOY / "checkov-skips.yaml").read_text())
    for reasons in skips.values():
        assert all(isinstance(reason, str) and len(reason) > 20 for reason in reasons.values())
    targets = rendered()
    runs = {
        "kubernetes-base": (targets["base"], "kubernetes"),
        "kubernetes-production": (targets["production"] + targets["raw"], "kubernetes"),
    }
    for name, (docs, framework) in runs.items():
        directory = tmp_path / name
        directory.mkdir()
        (directory / "manifests.yaml").write_text(yaml.safe_dump_all(docs))
        result = checkov(directory, framework, skips.get(name, {}))
        assert result.returncode == 0, f"checkov {name}:\n{result.stdout[-4000:]}"
    result = checkov(ROOT / "Dockerfile", "dockerfile", skips["dockerfile"])
    assert result.returncode == 0, f"checkov Dockerfile:\n{result.stdout[-4000:]}"


def test_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_config() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode:
        pytest.skip("no docker client with compose here")
    env = {**os.environ, "SECRET_KEY": "x" * 44, "ADMIN_TOKEN": "t" * 32}
    result = subprocess.run(
        [docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr


def test_compose_checks_every_role_on_its_monitoring_listener() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("ingress", "dialog", "egress", "admin"):
        check = " ".join(services[name]["healthcheck"]["test"])
        # METRICS_PORT inside the container; the webhook port (8080) serves no /readyz.
        assert "http://127.0.0.1:9090/readyz" in check, (name, check)


@pytest.mark.parametrize("target", ["base", "production"])
def test_every_deployment_is_probed_sized_spread_and_budgeted(target: str) -> None:
    docs = rendered()[target]
    budgets = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "PodDisruptionBudget"}
    deployments = [doc for doc in docs if doc["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"ingress", "dialog", "egress", "admin"}
    for deployment in deployments:
        name, spec = deployment["metadata"]["name"], pod_spec(deployment)
        assert spec is not None
        container = spec["containers"][0]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports["metrics"] == 9090, name
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, (name, probe)
        assert set(container["resources"]) == {"requests", "limits"}, name
        rolling = deployment["spec"]["strategy"]["rollingUpdate"]
        assert (rolling["maxUnavailable"], rolling["maxSurge"]) == (0, 1), name
        # Longer than SHUTDOWN_TIMEOUT_S: a stopping pod finishes its work before SIGKILL.
        assert spec["terminationGracePeriodSeconds"] > 20, name
        if name != "admin":  # one replica is enough for the admin API
            assert spec["topologySpreadConstraints"], name
            assert name in budgets, name


def test_keda_scales_to_the_partitions_and_no_further() -> None:
    docs = rendered()["production"]
    partitions = int(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["CHAT_PARTITIONS"])
    scaled = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ScaledObject"}
    assert set(scaled) == {"dialog", "egress"}
    for name, stage in (("dialog", "inbound"), ("egress", "outbound")):
        assert scaled[name]["spec"]["maxReplicaCount"] == partitions
        trigger = scaled[name]["spec"]["triggers"][0]
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["queueName"] == rf"^chat\.{stage}\.p[0-9]+$"
