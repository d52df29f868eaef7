"""What the charts render, checked against Kubernetes' own schemas (kubernetes-validate, strict),
the upstream CRDs, Pod Security "restricted" and our conventions, on Helm 4 and Helm 3 renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.charts import chart_dirs, ci_values, pod_specs, template
from tests.support.crds import load_crd_schemas, validate_custom_resource
from tests.support.policy import hardening_violations, missing_labels, restricted_violations

KUBE_VERSION = "1.34.0"
SCENARIOS = [(c, v) for c in chart_dirs() for v in ci_values(c)]
IDS = [f"{c.name}-{v.stem}" for c, v in SCENARIOS]
CUSTOM_GROUPS = (
    "monitoring.coreos.com/",
    "gateway.networking.k8s.io/",
    "serving.kserve.io/",
    "kubeflow.org/",
    "trainer.kubeflow.org/",
)


def _render(chart: Path, values: Path, helm_name: str) -> list[dict[str, Any]]:
    return template(chart, values_files=[values], helm_name=helm_name)


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_renders_pass_kubernetes_validate_strict(helm_name: str, chart: Path, values: Path) -> None:
    docs = _render(chart, values, helm_name)
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith(CUSTOM_GROUPS):
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_custom_resources_match_upstream_crds(chart: Path, values: Path, shared_crds: Path) -> None:
    schemas = load_crd_schemas(shared_crds)
    for doc in _render(chart, values, "helm4"):
        if doc["apiVersion"].startswith(CUSTOM_GROUPS):
            key = (doc["apiVersion"], doc["kind"])
            assert key in schemas, f"no upstream CRD serves {key}"
            assert validate_custom_resource(doc, schemas[key]) == [], doc["metadata"]["name"]


def test_crd_validation_catches_mistakes(shared_crds: Path) -> None:
    """The offline CRD check must reject what the API server would: unknown fields, wrong types."""
    schemas = load_crd_schemas(shared_crds)
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "intervall": "30s"}]},
    }
    assert any(
        "intervall" in p
        for p in validate_custom_resource(monitor, schemas[("monitoring.coreos.com/v1", "ServiceMonitor")])
    )
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "x"},
        "spec": {"rules": [{"backendRefs": [{"name": "svc", "port": "http"}]}]},
    }
    assert validate_custom_resource(route, schemas[("gateway.networking.k8s.io/v1", "HTTPRoute")])


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_pods_are_restricted_and_hardened(chart: Path, values: Path) -> None:
    docs = _render(chart, values, "helm4")
    specs = pod_specs(docs)
    assert specs
    for where, spec in specs:
        assert restricted_violations(spec) == [], where
        assert hardening_violations(spec) == [], where


def test_policy_check_catches_violations() -> None:
    bad = {
        "containers": [{"name": "c", "securityContext": {"privileged": True}}],
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
    }
    problems = restricted_violations(bad)
    assert any("privileged" in p for p in problems) and any("hostNetwork" in p for p in problems)
    assert any("hostPath" in p for p in problems) and any("runAsNonRoot" in p for p in problems)


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_no_null_metadata(chart: Path, values: Path) -> None:
    for doc in _render(chart, values, "helm4"):
        for key in ("labels", "annotations"):
            assert doc["metadata"].get(key, {}) is not None, (
                f"{doc['kind']}/{doc['metadata']['name']} has {key}: null"
            )


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_standard_labels_everywhere(chart: Path, values: Path) -> None:
    for doc in _render(chart, values, "helm4"):
        assert missing_labels(doc) == [], f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_helm3_and_helm4_render_the_same_objects(chart: Path, values: Path) -> None:
    def names(helm_name: str) -> list[tuple[str, str]]:
        return sorted((d["kind"], d["metadata"]["name"]) for d in _render(chart, values, helm_name))

    assert names("helm4") == names("helm3") == names("helm3.17")


def test_each_ci_scenario_is_distinct() -> None:
    for chart in chart_dirs():
        contents = [yaml.safe_load(v.read_text()) for v in ci_values(chart)]
        assert len({yaml.safe_dump(c) for c in contents}) == len(contents)


def _references(spec: dict[str, Any]) -> set[tuple[str, str]]:
    refs = {("ServiceAccount", spec.get("serviceAccountName", "default"))}
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            refs.add(("ConfigMap", volume["configMap"]["name"]))
        if "secret" in volume:
            refs.add(("Secret", volume["secret"]["secretName"]))
        if "persistentVolumeClaim" in volume:
            refs.add(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        for env in c.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add(("Secret", ref["name"]))
    return refs


@pytest.mark.parametrize(("chart", "values"), SCENARIOS, ids=IDS)
def test_pre_install_hooks_only_use_what_exists_before_install(chart: Path, values: Path) -> None:
    """A pre-install hook runs before the release's own objects exist: it may use objects of earlier
    pre-install hooks or objects the chart does not create, never the release's regular objects."""
    docs = _render(chart, values, "helm4")

    def phases(doc: dict[str, Any]) -> set[str]:
        return set((doc["metadata"].get("annotations") or {}).get("helm.sh/hook", "").split(",")) - {""}

    regular = {(d["kind"], d["metadata"]["name"]) for d in docs if not phases(d)}
    for doc in docs:
        if "pre-install" not in phases(doc):
            continue
        for where, spec in pod_specs([doc]):
            late = _references(spec) & regular
            assert not late, (
                f"{where} (pre-install hook) uses release objects created after it: {sorted(late)}"
            )
