"""deploy/kubernetes: valid against the Kubernetes schemas, the PodMonitor against the
Prometheus Operator's CRD, and wired together (names, labels, ports, shard count), offline."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from probes.sharding import Shard

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
SCHEMA_CHECK = ROOT / "deploy" / "schema-check"
# The oldest Kubernetes the manifests promise to fit, and the newest schemas shipped.
VERSIONS = ("1.28.0", kubernetes_validate.utils.latest_version())
# The PodMonitor fields these manifests may use (Prometheus Operator v1 API): the CRD
# prunes unknown fields silently, so a typo would validate and scrape nothing.
PODMONITOR_SPEC = {"jobLabel", "selector", "podMetricsEndpoints", "namespaceSelector",
                   "podTargetLabels", "sampleLimit"}
PODMONITOR_ENDPOINT = {"port", "path", "interval", "scrapeTimeout", "honorLabels",
                       "honorTimestamps", "scheme", "relabelings", "metricRelabelings"}


def documents() -> list[dict[str, Any]]:
    """Every resource the kustomization applies, in its order."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d)
    return docs


def one(kind: str, docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    found = [d for d in (docs or documents()) if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def podmonitor_problems(doc: dict[str, Any]) -> list[str]:
    """The hand-written structural check of a PodMonitor (what the CRD cannot catch)."""
    problems = []
    if doc.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append(f"apiVersion {doc.get('apiVersion')!r}")
    spec = doc.get("spec", {})
    problems += [f"spec.{key}: not a PodMonitor field" for key in set(spec) - PODMONITOR_SPEC]
    endpoints = spec.get("podMetricsEndpoints")
    if not isinstance(endpoints, list) or not endpoints:
        problems.append("spec.podMetricsEndpoints: missing")
        return problems
    for i, endpoint in enumerate(endpoints):
        problems += [f"spec.podMetricsEndpoints[{i}].{key}: not an endpoint field"
                     for key in set(endpoint) - PODMONITOR_ENDPOINT]
    if not isinstance(spec.get("selector"), dict):
        problems.append("spec.selector: missing")
    return problems


def crd_validate(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate with the CRD-generated validators of @kubernetes-models/prometheus-operator."""
    node = shutil.which("node")
    if node is None or not (SCHEMA_CHECK / "node_modules").is_dir():
        why = ("the Prometheus Operator CRD validators are not installed: "
               "npm ci --prefix deploy/schema-check (node 20+; `make test` does it)")
        if os.environ.get("CI"):  # CI installs them: nothing is silently skipped there
            pytest.fail(why)
        pytest.skip(why)
    out = subprocess.run([node, "validate-crd.mjs"], input=json.dumps(docs),
                         capture_output=True, text=True, timeout=60, cwd=SCHEMA_CHECK)
    assert out.returncode == 0, out.stderr
    result: list[dict[str, Any]] = json.loads(out.stdout)
    return result


def test_the_kustomization_applies_every_manifest_in_the_directory() -> None:
    listed = set(yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    kinds = sorted(d["kind"] for d in documents())
    assert kinds == ["ConfigMap", "PodMonitor", "Service", "StatefulSet"]


@pytest.mark.parametrize("version", VERSIONS)
def test_core_resources_are_valid_against_the_kubernetes_schemas_strictly(version: str
                                                                          ) -> None:
    for doc in documents():
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_is_not_vacuous() -> None:
    statefulset = copy.deepcopy(one("StatefulSet"))
    statefulset["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, VERSIONS[0], strict=True)
    typo = copy.deepcopy(one("StatefulSet"))
    typo["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, VERSIONS[0], strict=True)


def test_the_podmonitor_passes_the_structural_check_and_a_typo_does_not() -> None:
    monitor = one("PodMonitor")
    assert podmonitor_problems(monitor) == []
    typo = copy.deepcopy(monitor)
    typo["spec"]["podMetricEndpoints"] = typo["spec"].pop("podMetricsEndpoints")
    assert "spec.podMetricEndpoints: not a PodMonitor field" in podmonitor_problems(typo)


def test_the_podmonitor_is_valid_against_the_prometheus_operator_crd_schema() -> None:
    monitor = one("PodMonitor")
    wrong = copy.deepcopy(monitor)
    wrong["metadata"]["name"] = "wrong"
    endpoint = wrong["spec"]["podMetricsEndpoints"][0]
    endpoint.update(port=9116, interval="30 seconds", honorLabels="yes")
    results = crd_validate([monitor, wrong])
    assert results[0] == {"kind": "PodMonitor", "name": "readygate-probes", "error": None}
    error = results[1]["error"]
    assert error is not None
    for problem in ("honorLabels must be boolean", "interval must match pattern",
                    "port must be string"):
        assert problem in error


def test_the_pieces_refer_to_each_other() -> None:
    docs = documents()
    configmap, service = one("ConfigMap", docs), one("Service", docs)
    statefulset, monitor = one("StatefulSet", docs), one("PodMonitor", docs)
    pod = statefulset["spec"]["template"]
    labels = pod["metadata"]["labels"]
    container = pod["spec"]["containers"][0]
    # the headless Service governs the StatefulSet and selects its pods
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # the PodMonitor selects the pods and names a port they have
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports
    assert monitor["spec"]["podMetricsEndpoints"][0]["honorLabels"] is True
    # the ConfigMap is mounted where --config points
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mount = next(m for m in container["volumeMounts"]
                 if volumes[m["name"]].get("configMap", {}).get("name")
                 == configmap["metadata"]["name"])
    args = container["args"]
    assert args[args.index("--config") + 1] == f"{mount['mountPath']}/readygate.yaml"
    assert args[args.index("--listen") + 1].endswith(f":{ports['metrics']}")


def test_each_pod_ordinal_is_its_shard_and_the_shard_count_is_the_replica_count() -> None:
    statefulset = one("StatefulSet")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    shard_arg = container["args"][container["args"].index("--shard") + 1]
    replicas = statefulset["spec"]["replicas"]
    name = statefulset["metadata"]["name"]
    for ordinal in range(replicas):
        # what Kubernetes substitutes for $(POD_NAME) in pod `name-ordinal`
        pod_arg = shard_arg.replace("$(POD_NAME)", f"{name}-{ordinal}")
        assert Shard.parse(pod_arg) == Shard(ordinal, replicas)
    workers = int(container["args"][container["args"].index("--workers") + 1])
    assert float(container["resources"]["requests"]["cpu"]) == workers


def test_the_configmap_holds_a_config_readygate_loads_with_its_journeys(
        tmp_path: Path) -> None:
    from probes.journeys import build_catalog, resolve
    from readygate.config import load_config

    data = one("ConfigMap")["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    config = load_config(tmp_path / "readygate.yaml")
    catalog = build_catalog([tmp_path / f for f in config.probes.files()])
    journeys = resolve([], catalog, base_url=config.probes.base_url(config.target.services),
                       interval_s=config.probes.interval_s)
    assert {j.name for j in journeys} == {"health", "home", "search"}
