"""The pure parts of install/upgrade: what a release needs from the cluster and what the cluster lacks
(preflight), what an install waits for and why it failed (progress), and the status fields read from
API objects. Objects are shaped as the API server returns them (kubectl get -o json)."""

from __future__ import annotations

from typing import Any

import pytest

from generator.kube import preflight as pf
from generator.kube import progress as pg
from generator.kube import status as st


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, **extra}


def _node(name: str, **allocatable: str) -> dict[str, Any]:
    return {"metadata": _meta(name), "status": {"allocatable": {"cpu": "16", **allocatable}}}


DEFAULT_SC = {
    "metadata": _meta("standard", annotations={"storageclass.kubernetes.io/is-default-class": "true"})
}
FAST_SC = {"metadata": _meta("fast")}
DEFAULT_IC = {"metadata": _meta("nginx", annotations={"ingressclass.kubernetes.io/is-default-class": "true"})}


def _facts(**changes: Any) -> pf.Facts:
    facts = pf.Facts(
        version="v1.34.1",
        namespace_exists=True,
        can_create_namespace=True,
        served=set(),
        nodes=[_node("cpu-0"), _node("gpu-0", **{"nvidia.com/gpu": "4"})],
        ingress_classes=[DEFAULT_IC],
        storage_classes=[DEFAULT_SC],
    )
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


def _deployment(gpus: int = 0) -> dict[str, Any]:
    limits = {"cpu": "1"} | ({"nvidia.com/gpu": str(gpus)} if gpus else {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("d"),
        "spec": {"template": {"spec": {"containers": [{"name": "c", "resources": {"limits": limits}}]}}},
    }


def test_needs_reads_kinds_gpus_and_classes_from_manifests() -> None:
    docs = [
        _deployment(gpus=2),
        {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": _meta("i")},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta("s")},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": _meta("a"), "spec": {}},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": _meta("b"),
            "spec": {"ingressClassName": "traefik"},
        },
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta("p"), "spec": {}},
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta("q"),
            "spec": {"storageClassName": ""},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta("db"),
            "spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": "fast"}}]},
        },
        {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "metadata": _meta("t"),
            "spec": {"trainer": {"resourcesPerNode": {"limits": {"nvidia.com/gpu": 8}}}},
        },
    ]
    need = pf.needs(docs, ">=1.29.0-0")
    assert need.api_kinds == {
        ("serving.kserve.io/v1beta1", "InferenceService"),
        ("trainer.kubeflow.org/v1alpha1", "TrainJob"),
    }
    assert need.gpus == {"nvidia.com/gpu": 8}
    assert need.ingress_classes == {"", "traefik"}
    assert need.storage_classes == {"", "fast"}  # "" asks for the default; an empty name for none


def test_a_ready_cluster_has_no_problems() -> None:
    need = pf.needs([_deployment(gpus=4)], ">=1.31.0-0")
    assert pf.problems(need, _facts(), "ml") == []


def test_every_problem_is_reported_with_its_fix() -> None:
    docs = [
        _deployment(gpus=8),
        {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": _meta("i")},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": _meta("a"),
            "spec": {"ingressClassName": "traefik"},
        },
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta("p"), "spec": {}},
    ]
    facts = _facts(
        version="v1.30.4",
        namespace_exists=False,
        can_create_namespace=False,
        storage_classes=[FAST_SC],
    )
    found = pf.problems(pf.needs(docs, ">=1.31.0-0"), facts, "ml")
    whats = [p.what for p in found]
    assert whats == [
        "the cluster runs Kubernetes v1.30.4; the charts need >=1.31.0-0",
        "namespace ml does not exist and your user may not create namespaces",
        "the cluster does not serve InferenceService (serving.kserve.io/v1beta1)",
        "8 nvidia.com/gpu requested per pod, but the most one node has is 4 (gpu-0)",
        "the IngressClass traefik does not exist (the cluster has: nginx)",
        "volumes are claimed without a storage class and the cluster has no default StorageClass: "
        "they would stay Pending",
    ]
    assert all(p.fix for p in found)
    assert "KServe" in found[2].fix


def test_gpus_no_node_has() -> None:
    assert pf.gpu_problems({"amd.com/gpu": 1}, [_node("gpu-0", **{"nvidia.com/gpu": "4"})])[0].what == (
        "1 amd.com/gpu requested per pod, but no node of the cluster has amd.com/gpu"
    )
    # train's check: the values' gpu section
    assert pf.gpu_problem({"gpu": {"count": 2}}, [_node("cpu-0")]) is not None
    assert pf.gpu_problem({"gpu": {"count": 2}}, [_node("g", **{"nvidia.com/gpu": "2"})]) is None
    assert pf.gpu_problem({"gpu": {"count": 0}}, []) is None


@pytest.mark.parametrize(
    ("version", "constraint", "ok"),
    [
        ("v1.34.1", ">=1.31.0-0", True),
        ("v1.31.0", ">=1.31.0-0", True),
        ("v1.30.9-gke.1200", ">=1.31.0-0", False),
        ("v1.29.0", ">=1.27.0 <1.30.0", True),
        ("v1.30.0", ">=1.27.0 <1.30.0", False),
        ("v1.25.3", "<1.26.0 || >=1.30.0", True),
        ("v1.28.3", "<1.26.0 || >=1.30.0", False),
        ("v1.33.2", "~1.33.0", True),
        ("v1.34.0", "~1.33.0", False),
        ("v1.34.0", "^1.20.0", True),
    ],
)
def test_kubernetes_version_constraints(version: str, constraint: str, ok: bool) -> None:
    assert pf.version_satisfies(version, constraint) is ok


# progress ----------------------------------------------------------------------------------------------


def _pod(
    name: str,
    phase: str,
    *,
    ready: bool = False,
    waiting: str = "",
    exit_code: int | None = None,
    owner: str = "rs-1",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}}
    if waiting:
        state = {"waiting": {"reason": waiting, "message": f"{waiting} message"}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed"}}
    return {
        "metadata": _meta(name, labels=labels or {}, ownerReferences=[{"kind": "ReplicaSet", "name": owner}]),
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "main", "state": state}],
        },
    }


def _event(
    kind: str, name: str, reason: str, message: str, type_: str = "Warning", count: int = 1
) -> dict[str, Any]:
    return {
        "involvedObject": {"kind": kind, "name": name},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "lastTimestamp": "2026-11-24T10:00:00Z",
    }


def test_waiting_names_each_object_with_the_cluster_reason() -> None:
    pods = [
        _pod("web-1", "Running", ready=True),
        _pod("web-2", "Pending"),
        _pod("web-3", "Pending", waiting="ImagePullBackOff"),
        _pod("train-0", "Pending", labels={"helm-mlops.io/training-job": "t"}),  # a run: not waited for
    ]
    jobs = [
        {"metadata": _meta("migrate", annotations={"helm.sh/hook": "pre-upgrade"}), "status": {}},
        {"metadata": _meta("done"), "status": {"conditions": [{"type": "Complete", "status": "True"}]}},
    ]
    events = [
        _event("Pod", "web-2", "FailedScheduling", "0/4 nodes are available: 4 Insufficient cpu.", count=3),
        _event("Pod", "web-1", "Pulled", "pulled", type_="Normal"),
    ]
    assert pg.waiting(pods, jobs, events) == [
        "hook job migrate (pre-upgrade): running",
        "pod web-2: FailedScheduling (x3): 0/4 nodes are available: 4 Insufficient cpu.",
        "pod web-3: main: ImagePullBackOff (ImagePullBackOff message)",
    ]


def test_failing_pods_are_grouped_by_owner_with_the_one_helm_named_first() -> None:
    pods = [_pod(f"srv-{i}", "Failed", exit_code=1, owner="srv-rs") for i in range(30)]
    pods.append(_pod("bucket-x", "Failed", exit_code=1, owner="bucket"))
    pods.append(_pod("ok-1", "Running", ready=True, owner="ok-rs"))
    reports = pg.failing(pods, [])
    assert len(reports) == 31 and {r.owner for r in reports} == {"srv-rs", "bucket"}
    next(r for r in reports if r.pod == "bucket-x").logs = ["boom"]
    lines = pg.summarize_reports(reports, mentioned="hooks failed: resource Job/ns/bucket not ready")
    assert lines[0] == "pod bucket-x: main: exited 1 (Error)"
    assert lines[1] == "  last 1 log lines:" and lines[2] == "    boom"
    assert lines[3].startswith("pod srv-") and lines[3].endswith("(and 29 more pods of srv-rs like it)")


# status ------------------------------------------------------------------------------------------------


def _workload(kind: str, name: str, **labels: str) -> dict[str, Any]:
    return {"kind": kind, "metadata": _meta(name, labels=labels), "spec": {}}


def test_components_are_matched_by_name_then_alias_then_component() -> None:
    objs = [
        _workload("Deployment", "s-mlflow", **{st.NAME_LABEL: "mlflow", st.COMPONENT_LABEL: "server"}),
        _workload("StatefulSet", "s-mlflow-minio", **{st.NAME_LABEL: "mlflow", st.COMPONENT_LABEL: "minio"}),
        _workload(
            "Deployment",
            "s-iris",
            **{st.NAME_LABEL: "iris", st.COMPONENT_LABEL: "server", st.SERVICE_LABEL: "s-iris"},
        ),
    ]

    def names(query: str) -> list[str]:
        return [o["metadata"]["name"] for o in st.match_workloads(objs, query)]

    assert names("s-mlflow-minio") == ["s-mlflow-minio"]
    assert names("mlflow") == ["s-mlflow"]  # the alias means its server, not its database
    assert names("iris") == ["s-iris"]
    assert names("minio") == ["s-mlflow-minio"]
    assert names("mlflow-minio") == ["s-mlflow-minio"]
    assert names("nope") == []


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("ghcr.io/mlflow/mlflow:v3.17.2-full", "3.17.2"),
        ("registry:5000/mlflow/mlflow:v3.16.0", "3.16.0"),
        ("ghcr.io/mlflow/mlflow:v3.17.2-full@sha256:" + "a" * 64, "3.17.2"),
        ("mine/mlflow:custom", "custom"),
        ("registry:5000/mlflow", "unknown"),
    ],
)
def test_mlflow_version_from_the_running_image(image: str, version: str) -> None:
    assert st.image_version(image) == version


def test_store_descriptions_never_show_credentials() -> None:
    values = {
        "backendStore": {
            "type": "postgresql",
            "postgresql": {"host": "db", "port": 5432, "database": "ml", "password": "hunter2"},
        },
        "artifactStore": {
            "type": "s3",
            "proxied": True,
            "s3": {"bucket": "b", "prefix": "p", "secretAccessKey": "hunter3"},
        },
    }
    assert st.describe_backend(values) == "postgresql (db:5432/ml)"
    assert st.describe_artifacts(values) == "s3 (s3://b/p) (proxied by the server)"
    assert "hunter" not in st.describe_backend(values) + st.describe_artifacts(values)
    assert st.describe_backend({}) == "sqlite (mlflow.db on the data volume)"


def test_external_url_from_ingress_or_httproute() -> None:
    ingress = {
        "kind": "Ingress",
        "spec": {
            "tls": [{"hosts": ["ml.example.com"]}],
            "rules": [
                {
                    "host": "ml.example.com",
                    "http": {"paths": [{"path": "/", "backend": {"service": {"name": "s-mlflow"}}}]},
                }
            ],
        },
    }
    route = {
        "kind": "HTTPRoute",
        "spec": {
            "hostnames": ["iris.example.com"],
            "rules": [{"matches": [{"path": {"value": "/v1"}}], "backendRefs": [{"name": "s-iris"}]}],
        },
    }
    assert st.external_url([ingress, route], "s-mlflow") == "https://ml.example.com/"
    assert st.external_url([ingress, route], "s-iris") == "http://iris.example.com/v1"
    assert st.external_url([ingress, route], "other") == ""


def test_secrets_and_claims_the_release_reads_but_does_not_create() -> None:
    pod_spec = {
        "containers": [
            {
                "name": "c",
                "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {
                        "name": "B",
                        "valueFrom": {"secretKeyRef": {"name": "maybe", "key": "k", "optional": True}},
                    },
                    {"name": "C", "valueFrom": {"secretKeyRef": {"name": "generated", "key": "k"}}},
                ],
                "envFrom": [{"secretRef": {"name": "s3"}}],
            }
        ],
        "volumes": [
            {"name": "m", "persistentVolumeClaim": {"claimName": "models"}},
            {"name": "d", "persistentVolumeClaim": {"claimName": "own-data"}},
            {"name": "t", "secret": {"secretName": "tls"}},
        ],
    }
    docs = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta("d"),
            "spec": {"template": {"spec": pod_spec}},
        },
        {"apiVersion": "v1", "kind": "Secret", "metadata": _meta("generated")},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta("own-data"), "spec": {}},
    ]
    need = pf.needs(docs)
    assert need.secrets == {"db", "s3", "tls"}
    assert need.claims == {"models"}
    found = pf.problems(need, _facts(missing_secrets={"db"}, missing_claims={"models"}), "ml")
    assert [p.what for p in found] == [
        "the Secret db that the stack reads does not exist in namespace ml",
        "the PersistentVolumeClaim models that the stack mounts does not exist in namespace ml "
        "(its pods would stay Pending)",
    ]


def test_upgrade_warns_when_mlflow_stores_change_or_its_version_goes_down() -> None:
    from generator.lifecycle import upgrade_warnings

    def stack(artifacts: str, tag: str) -> dict[str, Any]:
        mlflow = {
            "backendStore": {"type": "sqlite"},
            "artifactStore": {"type": artifacts},
            "image": {"tag": tag},
        }
        return {"mlflow": mlflow, "iris": {"replicaCount": 1}}

    assert upgrade_warnings(stack("pvc", "v3.17.2-full"), stack("pvc", "v3.17.2-full")) == []
    assert upgrade_warnings(stack("pvc", "v3.16.0-full"), stack("pvc", "v3.17.2-full")) == []
    warned = upgrade_warnings(stack("pvc", "v3.17.2-full"), stack("minio", "v3.15.0-full"))
    assert len(warned) == 2
    assert warned[0].startswith("mlflow: artifactStore.type changes from pvc to minio")
    assert warned[1].startswith("mlflow: MLflow goes down from 3.17.2 to 3.15.0")
    # a plain mlflow chart release: its values at the top level
    plain = stack("s3", "v3.17.2-full")["mlflow"]
    assert upgrade_warnings(plain, {**plain, "backendStore": {"type": "postgresql"}})[0].startswith(
        "mlflow: backendStore.type changes from sqlite to postgresql"
    )
