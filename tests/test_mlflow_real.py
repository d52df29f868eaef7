"""The MLflow chart's containers, run for real: the command, args and env the chart renders are
executed on this machine (mount paths mapped to temp dirs, cluster hosts to 127.0.0.1) against a
real PostgreSQL, a real S3 endpoint (moto_server) and the same MLflow version as the chart's
appVersion; then the real MLflow client logs a run and registers a model."""

from __future__ import annotations

import base64
import http.client
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from tests.support.charts import CHARTS, find, template
from tests.support.podrun import LocalPod
from tests.support.servers import free_port, moto_s3, postgres, stop, wait_http

pytestmark = pytest.mark.real
CHART = CHARTS / "mlflow"
PASSWORD = "p@ss/w:rd%?#&x"  # every character that breaks a naive database URI


def test_tested_mlflow_is_the_charts_app_version() -> None:
    assert mlflow.__version__ == yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


def _pod(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    obj = find(docs, kind, name)
    spec: dict[str, Any] = obj["spec"] if kind == "Pod" else obj["spec"]["template"]["spec"]
    return spec


def _container(spec: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    return next(c for c in spec["initContainers" if init else "containers"] if c["name"] == name)


def _log_and_register(
    tracking_uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_name: str
) -> str:
    """Log params, a metric, a file and a scikit-learn model; register it. Returns the run id."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("chart-real-test")
    note = tmp_path / "note.txt"
    note.write_text("artifact through the proxy")
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("accuracy", 1.0)
        mlflow.log_artifact(str(note))
        mlflow.sklearn.log_model(model, name="model", registered_model_name=model_name)
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name='{model_name}'")
    assert [v.version for v in versions] == ["1"]
    assert client.get_run(run.info.run_id).data.metrics["accuracy"] == 1.0
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="note.txt", dst_path=str(tmp_path / "dl")
    )
    assert Path(downloaded).read_text() == "artifact through the proxy"
    loaded = mlflow.pyfunc.load_model(f"models:/{model_name}/1")
    assert list(loaded.predict([[0.0], [3.0]])) == [0, 1]
    return str(run.info.run_id)


@pytest.fixture
def started() -> Iterator[list[Any]]:
    procs: list[Any] = []
    yield procs
    for p in procs:
        stop(p)


def test_sqlite_pvc_with_basic_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Any]
) -> None:
    port = free_port()
    values = {
        "server": {"port": port},
        "service": {"port": port},
        "auth": {"basic": {"enabled": True}},
        "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    spec = _pod(docs, "Deployment", "t-mlflow")
    local = LocalPod(docs, tmp_path / "pod", host_map={"0.0.0.0": "127.0.0.1"})

    upgrade = local.run(spec, _container(spec, "db-upgrade", init=True))
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert "creating the MLflow schema" in upgrade.stdout

    log = tmp_path / "server.log"
    server = local.start(spec, _container(spec, "mlflow"), log)
    started.append(server)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health", proc=server, log=log)

    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(base + "/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
    assert denied.value.code == 401

    user = local.secret_value("t-mlflow", "admin-username")
    password = local.secret_value("t-mlflow", "admin-password")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    run_id = _log_and_register(base, monkeypatch, tmp_path, "sqlite-model")

    # Host validation with the rendered --allowed-hosts: a private pod IP (Prometheus scrapes /metrics,
    # kubelets probe, at the pod IP) is accepted; a foreign host name still is not.
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    for host, expected in (("10.244.3.7:5000", 200), ("172.20.0.9", 200), ("evil.example.com", 403)):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics", headers={"Host": host, "Authorization": f"Basic {token}"})
        assert conn.getresponse().status == expected, host
        conn.close()

    data = local.mounts["/mlflow/data"]
    assert (data / "mlflow.db").is_file() and (data / "basic_auth.db").is_file()
    assert list(data.glob(f"artifacts/*/{run_id}/artifacts/note.txt"))

    # MLflow's basic auth keeps /metrics to admins: the metrics-proxy sidecar scrapes it in the pod as the
    # admin and serves it on its own port. Prometheus scrapes that port as the ServiceMonitor says, with
    # no credential at all.
    endpoint = find(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics" and "basicAuth" not in endpoint
    metrics_port = free_port()
    proxy = local.start(
        spec,
        {**_container(spec, "metrics-proxy"), "env": [
            *[e for e in _container(spec, "metrics-proxy")["env"] if e["name"] != "METRICS_PORT"],
            {"name": "METRICS_PORT", "value": str(metrics_port)},
        ]},
        tmp_path / "proxy.log",
    )  # fmt: skip
    started.append(proxy)
    wait_http(f"http://127.0.0.1:{metrics_port}/healthz", proc=proxy, log=tmp_path / "proxy.log")
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}{endpoint['path']}", timeout=10) as resp:
        metrics = resp.read().decode()
    assert "# TYPE" in metrics and "mlflow" in metrics
    with pytest.raises(urllib.error.HTTPError) as api:  # the proxy serves metrics, nothing of the API
        urllib.request.urlopen(
            f"http://127.0.0.1:{metrics_port}/api/2.0/mlflow/experiments/search", timeout=10
        )
    assert api.value.code == 404

    # The helm test hook's container, against the running server.
    test_spec = _pod(docs, "Pod", "t-mlflow-test-api")
    tester = LocalPod(docs, tmp_path / "test-pod", host_map={"http://t-mlflow:": "http://127.0.0.1:"})
    result = tester.run(test_spec, test_spec["containers"][0])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   UI page" in result.stdout and "deleted it" in result.stdout
    assert password not in log.read_text()


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_postgresql_and_s3(
    driver: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[Any]
) -> None:
    with postgres(tmp_path / "pg", PASSWORD) as pg, moto_s3(tmp_path) as s3_url:
        s3_port = s3_url.rsplit(":", 1)[1]
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="ml-artifacts")
        port = free_port()
        values = {
            "server": {"port": port, "workers": 2},
            "service": {"port": port},
            "backendStore": {
                "type": "postgresql",
                "postgresql": {
                    "host": "postgres.databases.svc.cluster.local",
                    "port": pg.port,
                    "password": PASSWORD,
                    "driver": driver,
                },
            },
            "artifactStore": {
                "type": "s3",
                "s3": {
                    "bucket": "ml-artifacts",
                    "prefix": "team-a",
                    "region": "us-east-1",
                    "endpointUrl": f"http://s3.storage.svc.cluster.local:{s3_port}",
                    "accessKeyId": "testing",
                    "secretAccessKey": "testing",
                },
            },
            "migration": {"waitTimeoutSeconds": 10},
        }
        docs = template(CHART, values=values, tmp_dir=tmp_path)
        hosts = {
            "postgres.databases.svc.cluster.local": "127.0.0.1",
            "s3.storage.svc.cluster.local": "127.0.0.1",
            "0.0.0.0": "127.0.0.1",
        }
        spec = _pod(docs, "Deployment", "t-mlflow")
        local = LocalPod(docs, tmp_path / "pod", host_map=hosts)

        # Before the migration, server pods must wait (and give up after the configured time).
        waiting = local.run(spec, _container(spec, "wait-for-schema", init=True), timeout=120)
        assert waiting.returncode != 0 and "gave up waiting for the schema migration" in waiting.stderr

        hook_spec = _pod(docs, "Job", "t-mlflow-migrate")
        hook = LocalPod(docs, tmp_path / "hook", host_map=hosts)
        first = hook.run(hook_spec, hook_spec["containers"][0])
        assert first.returncode == 0, first.stdout + first.stderr
        assert "creating the MLflow schema" in first.stdout
        again = hook.run(hook_spec, hook_spec["containers"][0])
        assert again.returncode == 0 and "schema already at" in again.stdout

        ready = local.run(spec, _container(spec, "wait-for-schema", init=True))
        assert ready.returncode == 0, ready.stdout + ready.stderr

        log = tmp_path / "server.log"
        server = local.start(spec, _container(spec, "mlflow"), log)
        started.append(server)
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/health", proc=server, log=log)
        # No process (the server, its workers) carries the database password on its command line.
        leaks = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if PASSWORD.encode() in cmdline.read_bytes():
                    leaks.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass  # a process that ended meanwhile
        assert not leaks, leaks
        run_id = _log_and_register(base, monkeypatch, tmp_path, f"pg-model-{driver}")

        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="ml-artifacts").get("Contents", [])]
        assert any(k.startswith("team-a/") and k.endswith(f"{run_id}/artifacts/note.txt") for k in keys), keys
        assert any(k.startswith("team-a/") and k.endswith("/MLmodel") for k in keys), keys
        assert PASSWORD not in log.read_text()
        assert PASSWORD not in first.stdout + first.stderr

        tester = LocalPod(docs, tmp_path / "test-pod", host_map={"http://t-mlflow:": "http://127.0.0.1:"})
        test_spec = _pod(docs, "Pod", "t-mlflow-test-api")
        result = tester.run(test_spec, test_spec["containers"][0])
        assert result.returncode == 0, result.stdout + result.stderr
