"""The MLflow chart's values: bad input fails with a message naming the key (schema and template
checks, on Helm 4 and Helm 3), and each value group renders what it promises."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.charts import CHARTS, find, template, template_error

CHART = CHARTS / "mlflow"
PG_S3 = {
    "backendStore": {"type": "postgresql", "postgresql": {"host": "db", "password": "pw"}},
    "artifactStore": {"type": "s3", "s3": {"bucket": "b"}},
}

BAD_VALUES = [
    ({"autoscaling": {"enabled": True}}, ["autoscaling.enabled=true", "backendStore.type=sqlite"]),
    ({"replicaCount": 3}, ["replicaCount=3", "allows one server pod"]),
    ({"auth": {"basic": {"enabled": True}, "appName": "oidc-auth"}}, ["two auth modes", "auth.appName"]),
    ({"artifactStore": {"type": "s3"}}, ["artifactStore.s3.bucket is required"]),
    ({"artifactStore": {"type": "gcs"}}, ["artifactStore.gcs.bucket is required"]),
    (
        {"artifactStore": {"type": "azure"}},
        ["artifactStore.azure.storageAccount", "artifactStore.azure.existingSecret"],
    ),
    (
        {"artifactStore": {"type": "minio", "minio": {"inCluster": False}}},
        ["artifactStore.minio.endpointUrl"],
    ),
    ({"artifactStore": {"proxied": False}}, ["artifactStore.proxied=false"]),
    (
        {"backendStore": {"type": "postgresql"}},
        ["backendStore.postgresql.host is required", "existingSecret"],
    ),
    ({"backendStore": {"type": "mysql"}}, ["backendStore.mysql.host is required"]),
    ({"ingress": {"enabled": True}}, ["ingress.host is required"]),
    ({"httpRoute": {"enabled": True}}, ["httpRoute.parentRefs"]),
    ({"metrics": {"serviceMonitor": {"enabled": True}}}, ["metrics.enabled=true"]),
    ({"gc": {"enabled": True}}, ["gc.enabled=true"]),
    ({**PG_S3, "image": {"flavor": "plain"}}, ["image.flavor=plain"]),
    ({**PG_S3, "image": {"tag": "v3.8.0"}}, ["image.tag=v3.8.0", "-full"]),
    (
        {**PG_S3, "autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 2}},
        ["autoscaling.maxReplicas"],
    ),
    # Schema-level rejections: types, enums, typos.
    ({"replicaCount": "two"}, ["replicaCount"]),
    ({"backendStore": {"type": "sqllite"}}, ["backendStore.type", "sqlite"]),
    ({"artifactStor": {"type": "s3"}}, ["artifactStor"]),
    ({"server": {"staticPrefix": "mlflow/"}}, ["staticPrefix"]),
    ({"resources": {"limits": {"memory": "2 GB"}}}, ["resources.limits.memory"]),
    ({"persistence": {"size": "ten"}}, ["persistence.size"]),
    ({"auth": {"basic": {"defaultPermission": "ALL"}}}, ["defaultPermission"]),
    ({"gc": {"olderThan": "thirty days"}}, ["gc.olderThan"]),
]


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
@pytest.mark.parametrize(("values", "expected"), BAD_VALUES, ids=[str(i) for i in range(len(BAD_VALUES))])
def test_bad_values_are_rejected_naming_the_key(
    helm_name: str, values: dict[str, Any], expected: list[str], tmp_path: Path
) -> None:
    # Helm 4 spells a key /a/b, Helm 3 a.b: both name it.
    message = template_error(CHART, values, helm_name, tmp_path).replace("/", ".")
    for text in expected:
        assert text in message, message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    message = template_error(
        CHART,
        {"replicaCount": 2, "ingress": {"enabled": True}, "artifactStore": {"type": "s3"}},
        "helm4",
        tmp_path,
    )
    assert "replicaCount=2" in message and "ingress.host" in message and "artifactStore.s3.bucket" in message


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _server(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    dep = find(docs, "Deployment")
    return dep, dep["spec"]["template"]["spec"]["containers"][0]


def test_default_is_sqlite_on_a_pvc_with_recreate(tmp_path: Path) -> None:
    docs = template(CHART, tmp_dir=tmp_path)
    dep, server = _server(docs)
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    assert dep["spec"]["replicas"] == 1
    env = _env(server)
    assert env["MLFLOW_HELM_DB_DIALECT"] == "sqlite" and env["MLFLOW_HELM_SQLITE_PATH"].startswith(
        "/mlflow/data/"
    )
    assert find(docs, "PersistentVolumeClaim")["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert (
        "--serve-artifacts" in server["args"]
        and "--artifacts-destination=/mlflow/data/artifacts" in server["args"]
    )
    init = dep["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["db-upgrade"]
    assert (
        server["image"]
        == "ghcr.io/mlflow/mlflow:v"
        + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
        + "-full"
    )


def test_database_backend_rolls_and_waits_for_schema(tmp_path: Path) -> None:
    docs = template(CHART, values={**PG_S3, "replicaCount": 3}, tmp_dir=tmp_path)
    dep, server = _server(docs)
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate" and dep["spec"]["replicas"] == 3
    assert [c["name"] for c in dep["spec"]["template"]["spec"]["initContainers"]] == ["wait-for-schema"]
    assert "--artifacts-destination=s3://b/mlflow" in server["args"]


def test_external_database_migrates_in_a_pre_install_hook_with_its_own_secret(tmp_path: Path) -> None:
    docs = template(CHART, values=PG_S3, tmp_dir=tmp_path)
    job = find(docs, "Job", "t-mlflow-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    hook_secret = find(docs, "Secret", "t-mlflow-migration")
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert base64.b64decode(hook_secret["data"]["db-password"]).decode() == "pw"
    env = _env(job["spec"]["template"]["spec"]["containers"][0])
    assert env["MLFLOW_HELM_DB_PASSWORD"]["secretKeyRef"]["name"] == "t-mlflow-migration"
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["entrypoint"]["configMap"]["name"] == "t-mlflow-migration"
    assert (
        find(docs, "ConfigMap", "t-mlflow-migration")["metadata"]["annotations"]["helm.sh/hook-weight"]
        == "-10"
    )


def test_incluster_postgres_migrates_in_a_job_named_by_its_spec(tmp_path: Path) -> None:
    """A plain Job of the release (the database is a release resource, so no pre-install hook can reach
    it), the same under install, upgrade and `helm template`; its name changes with what it runs."""
    values = {
        "backendStore": {"type": "postgresql", "postgresql": {"inCluster": True}},
        "artifactStore": {"type": "s3", "s3": {"bucket": "b"}},
    }
    install = template(CHART, values=values, tmp_dir=tmp_path)
    jobs = [d for d in install if d["kind"] == "Job"]
    assert len(jobs) == 1
    init_job = jobs[0]
    name = init_job["metadata"]["name"]
    assert re.fullmatch(r"t-mlflow-migrate-[0-9a-f]{8}", name), name
    assert "helm.sh/hook" not in init_job["metadata"].get("annotations", {})
    upgrade = template(CHART, values=values, tmp_dir=tmp_path, extra=["--is-upgrade"])
    assert find(upgrade, "Job", name) == init_job
    changed = template(CHART, values={**values, "migration": {"backoffLimit": 9}}, tmp_dir=tmp_path)
    assert [d["metadata"]["name"] for d in changed if d["kind"] == "Job"] != [name]
    sts = find(install, "StatefulSet", "t-mlflow-postgresql")
    pg_env = _env(sts["spec"]["template"]["spec"]["containers"][0])
    assert pg_env["POSTGRES_PASSWORD"]["secretKeyRef"] == {"name": "t-mlflow", "key": "db-password"}
    generated = base64.b64decode(find(install, "Secret", "t-mlflow")["data"]["db-password"]).decode()
    assert len(generated) == 32


def test_existing_secrets_replace_chart_secrets(tmp_path: Path) -> None:
    docs = template(
        CHART, values_files=[CHART / "ci" / "azure-existing-secrets-values.yaml"], tmp_dir=tmp_path
    )
    _, server = _server(docs)
    env = _env(server)
    assert env["MLFLOW_HELM_DB_PASSWORD"]["secretKeyRef"] == {"name": "mlflow-db", "key": "password"}
    assert env["AZURE_STORAGE_CONNECTION_STRING"]["secretKeyRef"] == {
        "name": "mlflow-azure",
        "key": "connection-string",
    }
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"]["secretKeyRef"] == {"name": "mlflow-admin", "key": "password"}
    chart_secret = find(docs, "Secret", "t-mlflow")
    # nothing the user already holds (the salt only keeps the checksum annotation from revealing secrets)
    assert set(chart_secret["data"]) == {"flask-secret-key", "checksum-salt"}
    assert not [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "t-mlflow-migration"]


def test_allowed_hosts_follow_ingress_and_route(tmp_path: Path) -> None:
    values = {
        **PG_S3,
        "ingress": {"enabled": True, "host": "ml.example.com"},
        "httpRoute": {"enabled": True, "parentRefs": [{"name": "gw"}], "hostnames": ["r.example.com"]},
        "server": {"allowedHosts": ["extra.example.com"]},
    }
    _, server = _server(template(CHART, values=values, tmp_dir=tmp_path))
    hosts = next(a for a in server["args"] if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    for host in (
        "ml.example.com",
        "r.example.com",
        "extra.example.com",
        "t-mlflow",
        "t-mlflow.ml.svc.cluster.local",
    ):
        assert host in hosts


def test_ui_off_routes_only_the_api(tmp_path: Path) -> None:
    values = {
        "ui": {"enabled": False},
        "server": {"staticPrefix": "/mlflow"},
        "ingress": {"enabled": True, "host": "h"},
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    paths = [p["path"] for p in find(docs, "Ingress")["spec"]["rules"][0]["http"]["paths"]]
    # MLflow 3 takes OpenTelemetry traces on /v1/traces under the static prefix (a real `mlflow server
    # --static-prefix /mlflow` answers POST /mlflow/v1/traces with 422 for an empty body, 404 elsewhere).
    assert paths == [
        "/mlflow/api",
        "/mlflow/ajax-api",
        "/mlflow/health",
        "/mlflow/metrics",
        "/mlflow/v1/traces",
    ]
    _, server = _server(docs)
    assert server["readinessProbe"]["httpGet"]["path"] == "/mlflow/health"


def test_config_change_rolls_pods(tmp_path: Path) -> None:
    def checksum(values: dict[str, Any]) -> str:
        dep, _ = _server(template(CHART, values=values, tmp_dir=tmp_path))
        return str(dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    # Credentials from existing Secrets: the chart renders no Secret and the checksum is stable (GitOps).
    external = {
        "backendStore": {"type": "postgresql", "postgresql": {"host": "db", "existingSecret": "db"}},
        "artifactStore": {"type": "s3", "s3": {"bucket": "b", "existingSecret": "s3"}},
    }
    assert checksum(external) == checksum(external)
    # The pod template changes with the scripts the chart ships (ConfigMap) and its own Secret.
    minio = {**external, "artifactStore": {"type": "minio", "minio": {"inCluster": True, "bucket": "b"}}}
    assert checksum(external) != checksum(minio)


def test_a_password_cannot_be_guessed_from_the_checksum(tmp_path: Path) -> None:
    """The attack: read checksum/config from a Deployment, render the public chart with each guess, compare.
    The Secret carries a random salt (kept across upgrades by lookup), so no guess reproduces it."""

    def annotation(password: str) -> str:
        values = {
            **PG_S3,
            "backendStore": {"type": "postgresql", "postgresql": {"host": "db", "password": password}},
        }
        dep, _ = _server(template(CHART, values=values, tmp_dir=tmp_path))
        return str(dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    seen = annotation("Summer2024!")
    guesses = ["password", "123456", "Winter2023!", "Summer2024!", "letmein"]
    assert all(annotation(guess) != seen for guess in guesses)
    docs = template(CHART, values=PG_S3, tmp_dir=tmp_path)
    salt = find(docs, "Secret", "t-mlflow")["data"]["checksum-salt"]
    assert len(base64.b64decode(salt)) == 32


def test_minio_in_cluster_bucket_hook_and_endpoint(tmp_path: Path) -> None:
    docs = template(
        CHART, values_files=[CHART / "ci" / "incluster-postgresql-minio-values.yaml"], tmp_dir=tmp_path
    )
    job = find(docs, "Job", "t-mlflow-create-bucket")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    _, server = _server(docs)
    assert _env(server)["MLFLOW_S3_ENDPOINT_URL"] == "http://t-mlflow-minio:9000"
    assert "--artifacts-destination=s3://mlflow-artifacts" in server["args"]
    secret = find(docs, "Secret", "t-mlflow")["data"]
    assert {"minio-access-key", "minio-secret-key", "db-password"} <= set(secret)
    policies = {d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert policies == {"t-mlflow", "t-mlflow-postgresql", "t-mlflow-minio"}
    assert (
        find(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
        == "--older-than=7d"
    )


def test_node_port_only_for_node_port_services(tmp_path: Path) -> None:
    fixed = {"service": {"type": "NodePort", "nodePort": 30500}}
    port = find(template(CHART, values=fixed, tmp_dir=tmp_path), "Service")["spec"]["ports"][0]
    assert port["nodePort"] == 30500
    cluster_ip = {"service": {"type": "ClusterIP", "nodePort": 30500}}
    assert (
        "nodePort"
        not in find(template(CHART, values=cluster_ip, tmp_dir=tmp_path), "Service")["spec"]["ports"][0]
    )
