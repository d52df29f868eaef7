"""Chart defects found by reviewing the charts against real clusters (issue 14), each with the behaviour
Kubernetes itself shows: PodDisruptionBudgets that block every node drain (item 9), and the in-cluster
PostgreSQL's password Secret deleted on uninstall while its data volume stays (item 8).

The disruption budget is judged by the cluster's own disruption controller and eviction API (the
controller-manager of the local cluster): an eviction of the only pod is allowed (HTTP 201), not refused
with 429 as `minAvailable: 1` against one pod does."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.charts import CHARTS, find, helm, template, template_error
from tests.support.cluster import Cluster
from tests.support.servers import free_port, runtime_server, wait_http

HELMS = ["helm4", "helm3"]
MLFLOW = CHARTS / "mlflow"
INFERENCE = CHARTS / "inference-service"
PVC_MODEL = {"model": {"trustModel": True, "source": {"type": "pvc", "pvc": {"claimName": "models"}}}}
SCALABLE = {  # MLflow values that allow several server pods
    "backendStore": {"type": "postgresql", "postgresql": {"inCluster": True}},
    "artifactStore": {"type": "minio", "minio": {"inCluster": True}},
}


def _pdb_spec(chart: Path, values: dict[str, Any], helm_name: str, tmp_path: Path) -> dict[str, Any]:
    docs = template(chart, values=values, helm_name=helm_name, tmp_dir=tmp_path)
    spec = dict(find(docs, "PodDisruptionBudget")["spec"])
    spec.pop("selector")
    return spec


# (chart, values, the budget the PodDisruptionBudget must carry)
BUDGETS = [
    # One pod: minAvailable 1 would allow no eviction at all.
    (MLFLOW, {}, {"maxUnavailable": 1}),
    (INFERENCE, PVC_MODEL, {"maxUnavailable": 1}),
    (MLFLOW, {"podDisruptionBudget": {"minAvailable": "100%"}}, {"maxUnavailable": 1}),
    (INFERENCE, {**PVC_MODEL, "autoscaling": {"enabled": True, "minReplicas": 1}}, {"maxUnavailable": 1}),
    # Several pods: the user's budget stands.
    (
        MLFLOW,
        {**SCALABLE, "replicaCount": 3, "podDisruptionBudget": {"minAvailable": 2}},
        {"minAvailable": 2},
    ),
    (
        MLFLOW,
        {**SCALABLE, "replicaCount": 3, "podDisruptionBudget": {"minAvailable": "50%"}},
        {"minAvailable": "50%"},
    ),
    (INFERENCE, {**PVC_MODEL, "autoscaling": {"enabled": True, "minReplicas": 2}}, {"minAvailable": 1}),
    # An explicit maxUnavailable wins.
    (INFERENCE, {**PVC_MODEL, "podDisruptionBudget": {"maxUnavailable": "25%"}}, {"maxUnavailable": "25%"}),
    (MLFLOW, {"podDisruptionBudget": {"maxUnavailable": 1, "minAvailable": 1}}, {"maxUnavailable": 1}),
]


@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize(("chart", "values", "budget"), BUDGETS)
def test_pdb_budget_never_blocks_a_single_pod(
    chart: Path, values: dict[str, Any], budget: dict[str, Any], helm_name: str, tmp_path: Path
) -> None:
    merged = {**values, "podDisruptionBudget": {"enabled": True, **values.get("podDisruptionBudget", {})}}
    assert _pdb_spec(chart, merged, helm_name, tmp_path) == budget


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        (
            MLFLOW,
            {**SCALABLE, "replicaCount": 3, "podDisruptionBudget": {"enabled": True, "minAvailable": 3}},
            "podDisruptionBudget.minAvailable=3 with 3 pods (replicaCount) leaves no pod evictable",
        ),
        (
            INFERENCE,
            {
                **PVC_MODEL,
                "autoscaling": {"enabled": True, "minReplicas": 2},
                "podDisruptionBudget": {"enabled": True, "minAvailable": "100%"},
            },
            "podDisruptionBudget.minAvailable=100% with 2 pods (autoscaling.minReplicas) leaves no pod"
            " evictable",
        ),
    ],
)
def test_pdb_that_blocks_several_pods_is_refused(
    chart: Path, values: dict[str, Any], message: str, tmp_path: Path
) -> None:
    error = template_error(chart, values, "helm4", tmp_path)
    assert message in error
    assert "Set podDisruptionBudget.minAvailable to at most" in error


def test_pdb_adaptation_is_said_in_notes(tmp_path: Path) -> None:
    args: list[str | Path] = [
        "install",
        "n",
        MLFLOW,
        "--dry-run",
        "--set",
        "podDisruptionBudget.enabled=true",
    ]
    adapted = helm("helm4", *args).stdout
    assert "podDisruptionBudget.minAvailable=1 would block every node drain with 1 pod" in adapted
    plain = helm("helm4", *args, "--set", "podDisruptionBudget.maxUnavailable=1").stdout
    assert "would block every node drain" not in plain


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = cluster.restricted_namespace("hard")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _evict(cluster: Cluster, ns: str, pod: str) -> str:
    """POST an Eviction for the pod, as `kubectl drain` does; the API server's answer."""
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": ns},
    }
    proc = cluster.kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{ns}/pods/{pod}/eviction",
        "-f",
        "-",
        input=json.dumps(eviction),
        check=False,
    )
    return proc.stdout + proc.stderr


@pytest.mark.e2e
def test_single_mlflow_pod_can_be_drained(cluster: Cluster, namespace: str) -> None:
    cluster.helm(
        "helm4",
        "install",
        "drain",
        MLFLOW,
        "-n",
        namespace,
        "--wait",
        "--timeout",
        "120s",
        "--set",
        "podDisruptionBudget.enabled=true",
    )
    # The disruption controller has judged the budget once it reports the pods it expects.
    for _ in range(60):
        status = cluster.get("pdb", "drain-mlflow", "-n", namespace).get("status", {})
        if status.get("expectedPods") == 1 and status.get("observedGeneration"):
            break
        time.sleep(0.5)
    assert status.get("disruptionsAllowed") == 1, status
    pod = cluster.get(
        "pods", "-n", namespace, "-l", "app.kubernetes.io/instance=drain,app.kubernetes.io/component=server"
    )["items"][0]["metadata"]["name"]
    answer = _evict(cluster, namespace, pod)
    assert "Cannot evict pod" not in answer and "disruption budget" not in answer, answer


@pytest.mark.e2e
@pytest.mark.parametrize("helm_name", HELMS)
def test_reinstall_keeps_incluster_database_password(
    cluster: Cluster, namespace: str, helm_name: str
) -> None:
    values = MLFLOW / "ci" / "incluster-postgresql-minio-values.yaml"
    install: list[str | Path] = [
        "install",
        "pg",
        MLFLOW,
        "-n",
        namespace,
        "-f",
        values,
        "--wait",
        "--wait-for-jobs",
        "--timeout",
        "180s",
    ]
    cluster.helm(helm_name, *install)

    def password() -> str:
        data = cluster.get("secret", "pg-mlflow", "-n", namespace)["data"]
        return base64.b64decode(data["db-password"]).decode()

    first = password()
    cluster.helm(helm_name, "uninstall", "pg", "-n", namespace, "--wait")
    left = cluster.kubectl(
        "get", "secret,pvc", "-n", namespace, "-l", "app.kubernetes.io/instance=pg", "-o", "name"
    ).stdout.split()
    # The database's claim outlives the release (a StatefulSet's claims always do), and so does its password.
    assert "secret/pg-mlflow" in left
    assert any(name.startswith("persistentvolumeclaim/data-pg-mlflow-postgresql") for name in left), left
    assert password() == first

    cluster.helm(helm_name, *install)
    assert password() == first, "a reinstall must find the kept data's password, not generate a new one"
    assert (
        "Note: `helm uninstall` keeps the in-cluster database"
        in cluster.helm(helm_name, "status", "pg", "-n", namespace).stdout
    )


# --- smaller defects (item 13) and MLServer readiness (item 10) -------------------------------------


def test_incluster_minio_without_proxy_is_refused(tmp_path: Path) -> None:
    values = {**SCALABLE, "artifactStore": {"type": "minio", "proxied": False, "minio": {"inCluster": True}}}
    error = template_error(MLFLOW, values, "helm4", tmp_path)
    assert "artifactStore.proxied=false with the in-cluster MinIO" in error
    assert "Keep artifactStore.proxied=true" in error
    # An external MinIO that clients reach themselves may be unproxied.
    external = {
        "type": "minio",
        "proxied": False,
        "minio": {"inCluster": False, "endpointUrl": "http://m:9000", "existingSecret": "minio"},
    }
    template(MLFLOW, values={**SCALABLE, "artifactStore": external}, tmp_dir=tmp_path)


@pytest.mark.parametrize("helm_name", HELMS)
def test_download_and_deps_volumes_have_size_limits(helm_name: str, tmp_path: Path) -> None:
    values = {
        "model": {
            "trustModel": True,
            "source": {"type": "s3", "s3": {"bucket": "b", "key": "m.joblib"}},
        },
        "fastapi": {"depsSizeLimit": "3Gi"},
    }
    docs = template(INFERENCE, values=values, helm_name=helm_name, tmp_dir=tmp_path)
    volumes = {v["name"]: v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["deps"]["emptyDir"] == {"sizeLimit": "3Gi"}
    assert volumes["model"]["emptyDir"] == {"sizeLimit": "20Gi"}


def test_mlserver_readiness_asks_for_the_model(tmp_path: Path) -> None:
    values = {"runtime": "mlserver", **PVC_MODEL, "model": {**PVC_MODEL["model"], "name": "fraud"}}
    docs = template(INFERENCE, values=values, tmp_dir=tmp_path)
    server = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/models/fraud/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


# --- GitOps: renders that do not change between syncs (item 7) ---------------------------------------

ADMIN_SECRETS = {"enabled": True, "existingSecret": "admin", "existingSecretFlaskKeyKey": "flask"}
EVERY_SECRET_SUPPLIED: dict[str, Any] = {
    "backendStore": {"type": "postgresql", "postgresql": {"inCluster": True, "existingSecret": "db"}},
    "artifactStore": {"type": "minio", "minio": {"inCluster": True, "existingSecret": "minio"}},
    "auth": {"basic": ADMIN_SECRETS},
    "metrics": {"enabled": True},
    "gc": {"enabled": True},
}


@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize(
    "values",
    [
        EVERY_SECRET_SUPPLIED,
        {
            "backendStore": {"type": "sqlite"},
            "auth": {"basic": ADMIN_SECRETS},
        },
    ],
    ids=["incluster-postgresql-minio", "sqlite"],
)
def test_renders_are_identical_when_every_secret_is_supplied(
    values: dict[str, Any], helm_name: str, tmp_path: Path
) -> None:
    """What Argo CD and Flux do on every sync: `helm template` again. Nothing may differ, or pods roll."""
    args: list[str | Path] = ["template", "g", MLFLOW, "-n", "ml", "-f", tmp_path / "v.yaml"]
    (tmp_path / "v.yaml").write_text(json.dumps(values))
    first = helm(helm_name, *args)
    second = helm(helm_name, *args)
    assert first.code == 0, first.stderr
    assert first.stdout == second.stdout
    docs = template(MLFLOW, values=values, helm_name=helm_name, tmp_dir=tmp_path)
    server = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in server["env"]}
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "admin",
        "key": "flask",
    }
    assert not [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "g-mlflow"]


def test_generated_flask_key_still_renders_without_existing_secret(tmp_path: Path) -> None:
    docs = template(MLFLOW, values={"auth": {"basic": {"enabled": True}}}, tmp_dir=tmp_path)
    assert "flask-secret-key" in find(docs, "Secret", "t-mlflow")["data"]


@pytest.mark.e2e
def test_upgrade_with_a_new_image_reruns_the_migration(cluster: Cluster, namespace: str) -> None:
    """A Job's pod template is immutable: an upgrade that changes the migration (here the MLflow image)
    must create a new Job, not patch the finished one ("field is immutable")."""
    values = MLFLOW / "ci" / "incluster-postgresql-minio-values.yaml"
    base: list[str | Path] = ["upgrade", "--install", "mig", MLFLOW, "-n", namespace, "-f", values]
    base += ["--wait", "--wait-for-jobs", "--timeout", "180s"]

    def migrations() -> list[str]:
        items = cluster.get(
            "jobs",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/instance=mig,app.kubernetes.io/component=migration",
        )["items"]
        return sorted(j["metadata"]["name"] for j in items)

    cluster.helm("helm4", *base)
    first = migrations()
    cluster.helm("helm4", *base, "--set", "image.tag=v3.16.0-full")
    second = migrations()
    assert len(first) == len(second) == 1 and first != second, (first, second)


# --- storage changes Kubernetes refuses on upgrade (item 12) ------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("helm_name", HELMS)
def test_upgrades_that_kubernetes_would_refuse_are_refused_first(
    cluster: Cluster, namespace: str, helm_name: str
) -> None:
    """The API server refuses these upgrades half-way ("spec: Forbidden: updates to statefulset spec for
    fields other than ...", "spec is immutable after creation"); the chart refuses them before anything is
    applied, naming the value, what the cluster holds and how to change it for real."""
    pg = MLFLOW / "ci" / "incluster-postgresql-minio-values.yaml"
    cluster.helm(helm_name, "install", "st", MLFLOW, "-n", namespace, "-f", pg, "--wait", "--timeout", "180s")
    cluster.helm(helm_name, "install", "pv", MLFLOW, "-n", namespace, "--wait", "--timeout", "180s")

    def refused(release: str, *args: str) -> str:
        proc = cluster.helm(helm_name, "upgrade", release, MLFLOW, "-n", namespace, *args, check=False)
        assert proc.returncode != 0, proc.stdout
        return proc.stderr

    error = refused("st", "-f", str(pg), "--set", "postgresql.persistence.size=20Gi")
    assert (
        "postgresql.persistence.size=20Gi: the StatefulSet st-mlflow-postgresql was created with 2Gi" in error
    )
    assert f"kubectl -n {namespace} patch pvc data-st-mlflow-postgresql-0" in error
    assert "--cascade=orphan" in error
    error = refused("st", "-f", str(pg), "--set", "artifactStore.minio.persistence.storageClass=fast")
    assert 'artifactStore.minio.persistence.storageClass="fast": the StatefulSet st-mlflow-minio' in error
    error = refused("pv", "--set", "persistence.accessMode=ReadWriteMany")
    assert "persistence.accessMode=ReadWriteMany: the claim pv-mlflow-data exists with ReadWriteOnce" in error
    error = refused("pv", "--set", "persistence.size=1Gi")
    assert "persistence.size=1Gi: the claim pv-mlflow-data has 10Gi, and a claim cannot shrink" in error
    # Equal quantities written differently are not a change; nothing above reached the cluster.
    cluster.helm(
        helm_name,
        "upgrade",
        "st",
        MLFLOW,
        "-n",
        namespace,
        "-f",
        pg,
        "--set",
        "postgresql.persistence.size=2048Mi",
    )
    history = json.loads(cluster.helm(helm_name, "history", "pv", "-n", namespace, "-o", "json").stdout)
    assert [r["revision"] for r in history] == [1]


# --- TrainJob and PyTorchJob: strict validation of every value, upgrades by name (items 3, 6) ---------

TRAINING = CHARTS / "training-job"
# Every value the chart passes to an operator's pods, at once (what the chart refuses with a TrainJob,
# envFrom, priorityClassName, runtimeClassName and topologySpreadConstraints, is left to PyTorchJob).
EVERY_TRAINING_VALUE: dict[str, Any] = {
    "script": {"content": "print('x')\n", "args": ["--epochs", "3"]},
    "requirements": ["numpy==2.1.3"],
    "pip": {
        "existingSecret": "pip-index",
        "trustedHosts": ["pypi.internal"],
        "extraArgs": ["--no-cache-dir"],
    },
    "gpu": {"count": 2},
    "nodeSelector": {"pool": "gpu"},
    "tolerations": [{"key": "team", "operator": "Equal", "value": "vision", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    },
    "shm": {"enabled": True, "sizeLimit": "2Gi"},
    "volumes": [
        {"name": "dataset", "mountPath": "/data", "readOnly": True, "pvc": {"claimName": "datasets"}},
        {"name": "scratch", "mountPath": "/scratch", "emptyDir": {"sizeLimit": "5Gi"}},
        {"name": "creds", "mountPath": "/creds", "secret": {"secretName": "creds"}},
        {"name": "cfg", "mountPath": "/cfg", "subPath": "a", "configMap": {"name": "cfg"}},
    ],
    "extraVolumes": [{"name": "ca", "configMap": {"name": "company-ca", "optional": True}}],
    "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/company", "readOnly": True}],
    "env": [
        {"name": "A", "value": "1"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}},
    ],
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/train"}},
    "mlflow": {
        "trackingUri": "http://mlflow:5000",
        "experimentName": "e",
        "runName": "r",
        "existingSecret": "mlflow-user",
        "s3": {"endpointUrl": "http://minio:9000", "existingSecret": "s3"},
    },
    "job": {
        "backoffLimit": 4,
        "activeDeadlineSeconds": 3600,
        "terminationGracePeriodSeconds": 30,
        "annotations": {"example.com/a": "b"},
    },
    "imagePullSecrets": [{"name": "registry"}],
    "podLabels": {"team": "vision"},
    "podAnnotations": {"example.com/owner": "vision"},
    "commonLabels": {"cost-center": "ml"},
    "commonAnnotations": {"example.com/c": "d"},
    "kueue": {"queueName": "team-a"},
}
PYTORCHJOB_ONLY: dict[str, Any] = {
    "envFrom": [{"secretRef": {"name": "extra"}}],
    "initContainers": [
        {
            "name": "prepare",
            "image": "busybox:1.37",
            "command": ["true"],
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }
    ],
    "schedulerName": "volcano",
    "sidecars": [{"name": "shipper", "image": "busybox:1.37", "command": ["sleep", "1"]}],
    "priorityClassName": "training",
    "runtimeClassName": "nvidia",
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {}}
    ],
}


@pytest.mark.e2e
@pytest.mark.parametrize("operator", ["trainjob", "pytorchjob"])
def test_every_operator_value_passes_strict_server_validation(
    cluster: Cluster, namespace: str, operator: str, tmp_path: Path
) -> None:
    """The API server with the upstream CRDs, `--validate=strict`: a field the CRD does not define (what
    Trainer's runtime patch silently prunes) is an error, not a warning."""
    values = {
        **EVERY_TRAINING_VALUE,
        **(PYTORCHJOB_ONLY if operator == "pytorchjob" else {}),
        "distributed": {"enabled": True, "operator": operator, "nodes": 3, "nprocPerNode": 2},
    }
    docs = template(TRAINING, values=values, namespace=namespace, tmp_dir=tmp_path)
    kinds = {"trainjob": "TrainJob", "pytorchjob": "PyTorchJob"}
    for doc in docs:
        check = cluster.kubectl(
            "create", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(doc), check=False
        )
        assert check.returncode == 0 and "Warning" not in check.stderr, (doc["kind"], check.stderr)
    workload = find(docs, kinds[operator])
    text = json.dumps(workload)
    # Each value reached the operator's object, not just the chart's other objects.
    for needle in ("datasets", "company-ca", "registry", "pool", "TOKEN", "2Gi", "vision", "zone"):
        assert needle in text, needle


@pytest.mark.e2e
@pytest.mark.parametrize("scenario", ["pytorchjob-values", "trainjob-values"])
def test_operator_job_upgrade_replaces_a_changed_object_and_keeps_an_unchanged_one(
    cluster: Cluster, namespace: str, scenario: str
) -> None:
    """TrainJob's trainer and runtimeRef are immutable (CEL `self == oldSelf`), and a PyTorchJob edited in
    place reruns nothing: an upgrade that changes the job creates a new object under a new name."""
    kind = "pytorchjob" if scenario.startswith("pytorch") else "trainjob"
    values = TRAINING / "ci" / f"{scenario}.yaml"
    base: list[str | Path] = ["upgrade", "--install", "op", TRAINING, "-n", namespace, "-f", values]

    def objects() -> list[tuple[str, str]]:
        items = cluster.get(kind, "-n", namespace, "-l", "app.kubernetes.io/instance=op")["items"]
        return sorted((o["metadata"]["name"], o["metadata"]["uid"]) for o in items)

    cluster.helm("helm4", *base)
    first = objects()
    cluster.helm("helm4", *base, "--set", "tests.resources.limits.cpu=1")
    assert objects() == first, "an upgrade that does not touch the job must leave it alone"
    upgrade = cluster.helm("helm4", *base, "--set", "image.tag=2.9.0-cuda12.8-cudnn9-runtime", check=False)
    assert upgrade.returncode == 0, upgrade.stderr
    after = objects()
    assert len(first) == len(after) == 1 and after[0][0] != first[0][0], (first, after)


# --- KServe: helm test that can pass, settings that reach KServe (items 4, 5) -------------------------

KSERVE_S3: dict[str, Any] = {
    "runtime": "kserve",
    "model": {
        "name": "iris",
        "trustModel": True,
        "source": {"type": "s3", "s3": {"bucket": "models", "key": "iris/model.joblib"}},
    },
}


def _test_pod_argv(docs: list[dict[str, Any]]) -> list[str]:
    pod = next(d for d in docs if d["kind"] == "Pod" and d["metadata"]["name"].endswith("-test"))
    return list(pod["spec"]["containers"][0]["command"])


def _run_test_pod(argv: list[str], base: str) -> subprocess.CompletedProcess[str]:
    """The rendered test pod's script, run here against a real server instead of the Service URL."""
    assert argv[:2] == ["python3", "-c"]
    return subprocess.run(
        [sys.executable, "-c", argv[2], base, *argv[4:]], capture_output=True, text=True, timeout=120
    )


def test_kserve_predictor_runs_under_the_chart_account_with_the_s3_secret(tmp_path: Path) -> None:
    values = _merge_values(
        KSERVE_S3,
        {
            "model": {
                "allowInsecureHttp": True,
                "source": {"s3": {"existingSecret": "s3-keys", "endpointUrl": "http://minio.data:9000"}},
            },
            "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/serve"}},
        },
    )
    docs = template(INFERENCE, values=values, tmp_dir=tmp_path)
    isvc = find(docs, "InferenceService")
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "t-inference-service"
    assert isvc["spec"]["predictor"]["model"]["protocolVersion"] == "v2"
    account = find(docs, "ServiceAccount", "t-inference-service")
    assert account["secrets"] == [{"name": "s3-keys"}]
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/serve",
        "serving.kserve.io/s3-endpoint": "minio.data:9000",
        "serving.kserve.io/s3-usehttps": "0",
        "serving.kserve.io/s3-region": "us-east-1",
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"kserve": {"scaleMetric": "concurrency"}},
            "kserve.scaleMetric=concurrency needs kserve.deploymentMode=Serverless",
        ),
        (
            {"model": {"source": {"type": "mlflow", "mlflow": {"uri": "models:/iris/1"}}}},
            "KServe's storage initializer cannot fetch MLflow URIs",
        ),
        (
            {"model": {"source": {"s3": {"existingSecret": "k", "accessKeyIdKey": "id"}}}},
            "reads the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
        (
            {"model": {"source": {"s3": {"stsEndpointUrl": "https://sts.internal"}}}},
            "model.source.s3.stsEndpointUrl does not apply to runtime=kserve",
        ),
        (
            {"model": {"source": {"s3": {"existingSecret": "k"}}}, "kserve": {"serviceAccountName": "mine"}},
            "the chart attaches the S3 Secret to its own ServiceAccount only",
        ),
    ],
)
def test_kserve_settings_it_cannot_honour_are_refused(
    extra: dict[str, Any], message: str, tmp_path: Path
) -> None:
    assert message in template_error(INFERENCE, _merge_values(KSERVE_S3, extra), "helm4", tmp_path)


def _merge_values(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge_values(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(scope="module")
def iris_joblib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    path = tmp_path_factory.mktemp("iris") / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=300).fit(x, y), path)
    return path


def test_helm_test_passes_against_kserve_builtin_model_server(
    iris_joblib: Path, kserve_python: str, tmp_path: Path
) -> None:
    """KServe's sklearn server is KServe's Python ModelServer with the model named after the
    InferenceService (`--model_name={{.Name}}` in its ServingRuntime). The rendered test pod must pass
    against it, and a test that polls a name KServe does not serve must not."""
    docs = template(INFERENCE, values=KSERVE_S3, release="fraud", tmp_dir=tmp_path)
    argv = _test_pod_argv(docs)
    server = tmp_path / "server.py"
    server.write_text(
        "import sys, joblib, numpy as np, kserve\n"
        "class SKLearn(kserve.Model):\n"
        "    def __init__(self, name, path):\n"
        "        super().__init__(name)\n"
        "        self.path = path\n"
        "    def load(self):\n"
        "        self.model = joblib.load(self.path)\n"
        "        self.ready = True\n"
        "        return True\n"
        "    def predict(self, payload, headers=None):\n"
        "        return {'predictions': self.model.predict(np.asarray(payload['instances'])).tolist()}\n"
        "m = SKLearn(sys.argv[1], sys.argv[2])\n"
        "m.load()\n"
        "kserve.ModelServer(http_port=int(sys.argv[3]), grpc_port=int(sys.argv[4]), enable_grpc=False,"
        " workers=1).start([m])\n"
    )
    port = free_port()
    log = tmp_path / "kserve.log"
    proc = subprocess.Popen(
        [
            kserve_python,
            str(server),
            "fraud-inference-service",
            str(iris_joblib),
            str(port),
            str(free_port()),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/v2/health/live", timeout=120, proc=proc, log=log)
        passed = _run_test_pod(argv, base)
        assert passed.returncode == 0 and "ok" in passed.stdout, passed.stdout + passed.stderr
        # The name the old test polled (the chart's model.name, on v1 or v2) is not served: the test pod
        # would have waited for it until its deadline.
        for path in ("/v1/models/iris", "/v2/models/iris/ready"):
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(base + path, timeout=10)
            assert missing.value.code == 404, path
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("runtime", ["kserve", "fastapi"])
def test_helm_test_passes_against_the_helm_mlops_runtime(
    runtime: str, iris_joblib: Path, tmp_path: Path
) -> None:
    """The helm-mlops runtime, as the fastapi server and as KServe's custom predictor (torch models):
    v2 readiness and metadata under model.name."""
    values: dict[str, Any] = {
        "runtime": runtime,
        "model": {
            "name": "iris",
            "format": "torch" if runtime == "kserve" else "joblib",
            "trustModel": True,
            "source": {"type": "s3", "s3": {"bucket": "models", "key": "iris/model.pt"}},
        },
        "fastapi": {"prebuilt": True},
    }
    docs = template(INFERENCE, values=values, tmp_dir=tmp_path)
    argv = _test_pod_argv(docs)
    assert "/v2/models/iris/ready" in argv
    with runtime_server(iris_joblib, "--trust-model", name="iris") as base:
        passed = _run_test_pod(argv, base)
    assert passed.returncode == 0 and "ok" in passed.stdout, passed.stdout + passed.stderr


# --- extension points, the same in all three charts ----------------------------------------------------

EXTENSION_SCENARIOS = {
    "mlflow": (MLFLOW / "ci" / "extensions-values.yaml", "Deployment", "t-mlflow-extra"),
    "inference-service": (
        INFERENCE / "ci" / "fastapi-extensions-values.yaml",
        "Deployment",
        "t-inference-service-extra",
    ),
    "training-job": (TRAINING / "ci" / "extensions-values.yaml", "Job", "t-training-job-extra"),
}


@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize("chart", sorted(EXTENSION_SCENARIOS))
def test_extension_points_reach_the_pods(chart: str, helm_name: str, tmp_path: Path) -> None:
    values, kind, extra = EXTENSION_SCENARIOS[chart]
    docs = template(CHARTS / chart, values_files=[values], helm_name=helm_name, tmp_dir=tmp_path)
    workload = find(docs, kind)
    pod = workload["spec"]["template"]
    spec = pod["spec"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["initContainers"][-1]["name"] == "prepare"  # after the chart's own
    assert {"name": "shared", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"]
    names = [c["name"] for c in spec["containers"]]
    if chart == "training-job":
        assert workload["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
        assert "log-shipper" not in names
    else:
        assert names[-1] == "log-shipper"
    if chart == "mlflow":
        assert workload["spec"]["strategy"] == {"type": "Recreate"}
        assert spec["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    if chart == "inference-service":
        assert workload["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    # extraObjects are templated: the object's name comes from the chart's own helper.
    assert find(docs, "ConfigMap", extra)["data"] == {"release": "t"}


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        (
            INFERENCE,
            {**KSERVE_S3, "sidecars": [{"name": "s", "image": "busybox"}]},
            "initContainers and sidecars do not apply to runtime=kserve",
        ),
        (
            TRAINING,
            {
                "script": {"content": "print(1)\n"},
                "distributed": {"enabled": True, "operator": "trainjob"},
                "schedulerName": "volcano",
            },
            "schedulerName, initContainers and sidecars cannot be patched into a TrainJob",
        ),
        (
            MLFLOW,
            {"strategy": {"type": "RollingUpdate"}},
            "strategy.type=RollingUpdate: backendStore.type=sqlite",
        ),
    ],
)
def test_extension_points_a_workload_cannot_take_are_refused(
    chart: Path, values: dict[str, Any], message: str, tmp_path: Path
) -> None:
    assert message in template_error(chart, values, "helm4", tmp_path)


# --- fastapi.device: what the runtime would stop at start with, refused at install (issue 18 review) ---


def _device_values(path: str, device: str, gpus: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "model": {"trustModel": True, "source": {"type": "pvc", "pvc": {"claimName": "m", "path": path}}},
        "fastapi": {"device": device},
        "gpu": {"count": gpus},
        **extra,
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (_device_values("m.pt", "cuda"), "fastapi.device=cuda needs a GPU in the pod: set gpu.count"),
        (_device_values("m.pt", "cuda:1", 1), "fastapi.device=cuda:1 is out of range with gpu.count=1"),
        (_device_values("m.joblib", "cuda", 1), "joblib models predict on the CPU only"),
        (_device_values("m.onnx", "cuda", 1), "install-deps installs the CPU onnxruntime"),
        (
            _device_values("m.joblib", "cpu", runtime="mlserver"),
            "only the helm-mlops runtime takes a device",
        ),
    ],
)
def test_device_the_runtime_would_refuse_is_refused_at_install(
    values: dict[str, Any], message: str, tmp_path: Path
) -> None:
    assert message in template_error(INFERENCE, values, "helm4", tmp_path)


def test_device_that_works_renders_and_reaches_kserve_as_an_argument(tmp_path: Path) -> None:
    template(INFERENCE, values=_device_values("m.pt", "cuda:1", 2), tmp_dir=tmp_path)
    onnx = _device_values("m.onnx", "cuda", 1)
    onnx["fastapi"].update(prebuilt=True, image={"repository": "r/runtime-gpu", "tag": "1"})
    template(INFERENCE, values=onnx, tmp_dir=tmp_path)
    kserve = _device_values("m.pt", "cuda", 1, runtime="kserve")
    kserve["fastapi"].update(prebuilt=True, image={"repository": "r/runtime", "tag": "1"})
    [container] = find(template(INFERENCE, values=kserve, tmp_dir=tmp_path), "InferenceService")["spec"][
        "predictor"
    ]["containers"]
    # An older runtime image refuses the argument rather than serving on the CPU.
    assert container["args"] == ["--device", "cuda"]


# --- Ingress with several hosts and a path type (extension points) -------------------------------------


@pytest.mark.parametrize("helm_name", HELMS)
@pytest.mark.parametrize("chart", [MLFLOW, INFERENCE])
def test_ingress_serves_every_host_with_its_path_type(chart: Path, helm_name: str, tmp_path: Path) -> None:
    ingress = {
        "enabled": True,
        "host": "ml.example.com",
        "extraHosts": ["ml.internal.example.com"],
        "pathType": "ImplementationSpecific",
        "tls": {"enabled": True},
    }
    values: dict[str, Any] = {"ingress": ingress, **(PVC_MODEL if chart == INFERENCE else {})}
    docs = template(chart, values=values, helm_name=helm_name, tmp_dir=tmp_path)
    spec = find(docs, "Ingress")["spec"]
    hosts = ["ml.example.com", "ml.internal.example.com"]
    assert [rule["host"] for rule in spec["rules"]] == hosts
    assert spec["tls"][0]["hosts"] == hosts
    assert {p["pathType"] for rule in spec["rules"] for p in rule["http"]["paths"]} == {
        "ImplementationSpecific"
    }
    if chart == MLFLOW:
        # MLflow answers 403 to a Host it does not allow: every Ingress host is allowed.
        args = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        allowed = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
        assert set(hosts) <= set(allowed)


@pytest.mark.parametrize(
    ("ingress", "field"),
    [({"extraHosts": ["Not A Host"]}, "extraHosts"), ({"pathType": "Regex"}, "pathType")],
)
def test_ingress_host_and_path_type_are_checked(ingress: dict[str, Any], field: str, tmp_path: Path) -> None:
    values = {"ingress": {"enabled": True, "host": "ml.example.com", **ingress}}
    assert field in template_error(MLFLOW, values, "helm4", tmp_path)


# --- MLflow behind a proxy sidecar: bind host, Service target, probes (extension points) ---------------


@pytest.mark.parametrize("helm_name", HELMS)
def test_mlflow_behind_an_oidc_proxy_sidecar(helm_name: str, tmp_path: Path) -> None:
    docs = template(
        MLFLOW, values_files=[MLFLOW / "ci" / "oidc-proxy-values.yaml"], helm_name=helm_name, tmp_dir=tmp_path
    )
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    mlflow, proxy = pod["containers"][0], pod["containers"][-1]
    assert "--host=127.0.0.1" in mlflow["args"] and proxy["name"] == "oauth2-proxy"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert mlflow[probe]["httpGet"] == {"path": "/ping", "port": "proxy"}, probe
    assert find(docs, "Service", "t-mlflow")["spec"]["ports"][0]["targetPort"] == "proxy"
    policy = find(docs, "NetworkPolicy", "t-mlflow")
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "proxy", "protocol": "TCP"}]


def test_inference_probe_overrides(tmp_path: Path) -> None:
    values = {**PVC_MODEL, "probes": {"timeoutSeconds": 9, "failureThreshold": 6}}
    server = find(template(INFERENCE, values=values, tmp_dir=tmp_path), "Deployment")["spec"]["template"][
        "spec"
    ]["containers"][0]
    for probe in ("livenessProbe", "readinessProbe"):
        assert server[probe]["timeoutSeconds"] == 9 and server[probe]["failureThreshold"] == 6


def test_mlflow_probe_overrides(tmp_path: Path) -> None:
    values = {"probes": {"timeoutSeconds": 9, "failureThreshold": 6, "path": "/custom"}}
    mlflow = find(template(MLFLOW, values=values, tmp_dir=tmp_path), "Deployment")["spec"]["template"][
        "spec"
    ]["containers"][0]
    for probe in ("livenessProbe", "readinessProbe"):
        assert mlflow[probe]["timeoutSeconds"] == 9 and mlflow[probe]["failureThreshold"] == 6
        assert mlflow[probe]["httpGet"] == {"path": "/custom", "port": "http"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"server": {"host": "127.0.0.1"}, "probes": {"port": "proxy"}},
            "so the Service would reach nothing",
        ),
        (
            {"server": {"host": "127.0.0.1"}, "service": {"targetPort": "proxy"}},
            "the kubelet probes the pod's IP",
        ),
    ],
)
def test_loopback_mlflow_without_a_way_in_is_refused(
    values: dict[str, Any], message: str, tmp_path: Path
) -> None:
    assert message in template_error(MLFLOW, values, "helm4", tmp_path)
