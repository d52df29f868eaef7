"""The MLflow chart's in-cluster PostgreSQL and MinIO, the bucket Job and the gc CronJob, run for real:
the rendered commands, args and env on this machine (tests/support/podrun.py, tests/support/incluster.py)
against real PostgreSQL, moto (the S3 emulator) or MinIO, with the chart's MLflow."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
import sqlalchemy
from botocore.exceptions import ClientError
from mlflow.exceptions import MlflowException

from tests.support.charts import CHARTS, find, template
from tests.support.incluster import postgres_container
from tests.support.podrun import LocalPod
from tests.support.servers import free_port, minio_binary, moto_s3, serve, stop, wait_http

pytestmark = pytest.mark.real
CHART = CHARTS / "mlflow"
MINIO_VALUES = {
    "artifactStore": {"type": "minio", "minio": {"inCluster": True, "bucket": "mlflow-artifacts"}}
}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def _env(container: dict[str, Any], name: str) -> str:
    return str(next(e["value"] for e in container["env"] if e["name"] == name))


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        stop(p)


@pytest.mark.parametrize("store", ["s3", "pvc"])
def test_in_cluster_postgresql_and_the_gc_cronjob(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[subprocess.Popen[bytes]]
) -> None:
    """The StatefulSet's PostgreSQL from its rendered env, the install's migration Job and the server
    against it; then `mlflow gc` as the CronJob runs it deletes a deleted run's rows and artifacts and
    leaves the other run alone. Artifacts proxied to S3 (the emulator) or to a ReadWriteMany claim
    that the server and the CronJob both mount."""
    with contextlib.ExitStack() as stack:
        port = free_port()
        values: dict[str, Any] = {
            "server": {"port": port, "workers": 1},
            "service": {"port": port},
            "backendStore": {"type": "postgresql", "postgresql": {"inCluster": True}},
            "gc": {"enabled": True, "olderThan": "0s"},
        }
        data = tmp_path / "data-claim"  # the server's volume (pvc), shared with the CronJob's pod
        data.mkdir()
        if store == "s3":
            s3_url = stack.enter_context(moto_s3(tmp_path))
            s3 = boto3.client(
                "s3",
                endpoint_url=s3_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            s3.create_bucket(Bucket="ml-artifacts")
            values["artifactStore"] = {
                "type": "s3",
                "s3": {
                    "bucket": "ml-artifacts",
                    "prefix": "team-a",
                    "region": "us-east-1",
                    "endpointUrl": f"http://s3.storage.svc.cluster.local:{s3_url.rsplit(':', 1)[1]}",
                    "accessKeyId": "testing",
                    "secretAccessKey": "testing",
                },
            }

            def artifacts() -> list[str]:
                return [o["Key"] for o in s3.list_objects_v2(Bucket="ml-artifacts").get("Contents", [])]
        else:
            values["artifactStore"] = {"type": "pvc"}
            values["persistence"] = {"accessMode": "ReadWriteMany"}

            def artifacts() -> list[str]:
                return [str(f.relative_to(data)) for f in data.rglob("*") if f.is_file()]

        docs = template(CHART, values=values, tmp_dir=tmp_path)
        pg_spec = _spec(find(docs, "StatefulSet", "t-mlflow-postgresql"))
        pg_container = pg_spec["containers"][0]
        claim = tmp_path / "pg-claim"
        pg_pod = LocalPod(docs, tmp_path / "pg", mounts={"/var/lib/postgresql/data": claim})
        pg_port = free_port()
        with postgres_container(pg_pod, pg_spec, pg_container, pg_port) as pg_env:
            # The data directory is on the claim (a restarted pod finds its database).
            assert (claim / "pgdata" / "PG_VERSION").is_file()
            # The rendered probes, against it.
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                checked = subprocess.run(
                    pg_container[probe]["exec"]["command"],
                    env={**pg_env, "PGPORT": str(pg_port)},
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert checked.returncode == 0, (probe, checked.stdout + checked.stderr)

            # MLflow's containers reach it through the Service on the container's port (5432 there, a
            # free port here): the host is the Service, the port the container's.
            init_spec = _spec(
                next(
                    d
                    for d in docs
                    if d["kind"] == "Job" and d["metadata"]["name"].startswith("t-mlflow-migrate-")
                )
            )
            migrate = init_spec["containers"][0]
            assert _env(migrate, "MLFLOW_HELM_DB_HOST") == "t-mlflow-postgresql"
            assert find(docs, "Service", "t-mlflow-postgresql")["spec"]["ports"][0]["port"] == int(
                _env(migrate, "MLFLOW_HELM_DB_PORT")
            )
            assert pg_container["ports"][0]["containerPort"] == int(_env(migrate, "MLFLOW_HELM_DB_PORT"))
            hosts = {
                "t-mlflow-postgresql": "127.0.0.1",
                "s3.storage.svc.cluster.local": "127.0.0.1",
                "0.0.0.0": "127.0.0.1",
            }
            to_port = {"MLFLOW_HELM_DB_PORT": str(pg_port)}
            init = LocalPod(docs, tmp_path / "init", host_map=hosts, extra_env=to_port)
            created = init.run(init_spec, migrate)
            assert created.returncode == 0, created.stdout + created.stderr
            assert "creating the MLflow schema" in created.stdout

            spec = _spec(find(docs, "Deployment", "t-mlflow"))
            shared = {"/mlflow/data": data}
            server_pod = LocalPod(docs, tmp_path / "server", hosts, mounts=dict(shared), extra_env=to_port)
            log = tmp_path / "server.log"
            server = server_pod.start(spec, next(c for c in spec["containers"] if c["name"] == "mlflow"), log)
            started.append(server)
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/health", proc=server, log=log)

            monkeypatch.setenv("MLFLOW_TRACKING_URI", base)
            mlflow.set_tracking_uri(base)
            mlflow.set_experiment("gc")
            note = tmp_path / "note.txt"
            note.write_text("an artifact")
            run_ids = []
            for name in ("kept", "deleted"):
                with mlflow.start_run(run_name=name) as run:
                    mlflow.log_param("which", name)
                    mlflow.log_metric("loss", 0.5)
                    mlflow.log_artifact(str(note))
                run_ids.append(run.info.run_id)
            kept, deleted = run_ids
            client = mlflow.MlflowClient()
            client.delete_run(deleted)

            assert [k for k in artifacts() if k.endswith(f"/{deleted}/artifacts/note.txt")], artifacts()

            gc_obj = find(docs, "CronJob", "t-mlflow-gc")
            gc_spec = gc_obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            gc_pod = LocalPod(docs, tmp_path / "gc", hosts, mounts=dict(shared), extra_env=to_port)
            collected = gc_pod.run(gc_spec, gc_spec["containers"][0])
            output = collected.stdout + collected.stderr
            assert collected.returncode == 0, output
            assert f"Run with ID {deleted} has been permanently deleted" in output
            assert pg_env["POSTGRES_PASSWORD"] not in output

            # The deleted run's artifacts and rows are gone; the other run keeps both.
            remaining = artifacts()
            assert not [k for k in remaining if f"/{deleted}/" in k], remaining
            assert [k for k in remaining if k.endswith(f"/{kept}/artifacts/note.txt")], remaining
            engine = sqlalchemy.create_engine(
                sqlalchemy.engine.URL.create(
                    "postgresql+psycopg2",
                    username=pg_env["POSTGRES_USER"],
                    password=pg_env["POSTGRES_PASSWORD"],
                    host="127.0.0.1",
                    port=pg_port,
                    database=pg_env["POSTGRES_DB"],
                )
            )
            try:
                with engine.connect() as conn:
                    for table in ("runs", "params", "metrics", "latest_metrics", "tags"):
                        rows = conn.execute(
                            sqlalchemy.text(f"SELECT run_uuid FROM {table} WHERE run_uuid IN (:a, :b)"),
                            {"a": kept, "b": deleted},
                        ).fetchall()
                        assert deleted not in {r[0] for r in rows}, table
                        if table != "tags":
                            assert kept in {r[0] for r in rows}, table
            finally:
                engine.dispose()
            with pytest.raises(MlflowException, match=r"not found|RESOURCE_DOES_NOT_EXIST"):
                client.get_run(deleted)
            assert client.get_run(kept).data.params == {"which": "kept"}


@pytest.fixture
def minio_endpoint(tmp_path: Path) -> Iterator[tuple[str, list[dict[str, Any]], Path]]:
    """The chart's in-cluster MinIO StatefulSet, its rendered args and env run with a MinIO binary;
    yields its URL, the render and the claim's directory."""
    binary = str(minio_binary())
    docs = template(CHART, values=MINIO_VALUES, tmp_dir=tmp_path)
    spec = _spec(find(docs, "StatefulSet", "t-mlflow-minio"))
    container = spec["containers"][0]
    port, console = free_port(), free_port()
    claim = tmp_path / "minio-claim"
    pod = LocalPod(
        docs,
        tmp_path / "minio",
        host_map={":9000": f"127.0.0.1:{port}", ":9001": f"127.0.0.1:{console}"},
        mounts={"/data": claim},
    )
    argv, env = pod.command(spec, container)
    assert container.get("command") is None and argv[0] == "server"  # the image's entrypoint is minio
    ready = f"http://127.0.0.1:{port}{container['readinessProbe']['httpGet']['path']}"
    with serve([binary, *argv], tmp_path / "minio.log", ready, 120, env=env):
        live = f"http://127.0.0.1:{port}{container['livenessProbe']['httpGet']['path']}"
        wait_http(live, timeout=10)
        yield f"http://127.0.0.1:{port}", docs, claim


def _bucket_job(docs: list[dict[str, Any]], root: Path, endpoint: str, **extra: str) -> Any:
    spec = _spec(find(docs, "Job", "t-mlflow-create-bucket"))
    container = spec["containers"][0]
    assert _env(container, "MLFLOW_S3_ENDPOINT_URL") == "http://t-mlflow-minio:9000"
    pod = LocalPod(docs, root, host_map={"http://t-mlflow-minio:9000": endpoint}, extra_env=extra)
    return pod.run(spec, container, timeout=120)


def _check_create_bucket(docs: list[dict[str, Any]], tmp_path: Path, endpoint: str) -> Any:
    # The script retries any S3 error for 300 s (MinIO starting): refused credentials fail in 30 here.
    first = _bucket_job(docs, tmp_path / "job1", endpoint, MLFLOW_HELM_WAIT_SECONDS="30")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "created bucket mlflow-artifacts" in first.stdout
    again = _bucket_job(docs, tmp_path / "job2", endpoint)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "bucket mlflow-artifacts exists" in again.stdout and "created" not in again.stdout
    pod = LocalPod(docs, tmp_path / "creds")
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=pod.secret_value("t-mlflow", "minio-access-key"),
        aws_secret_access_key=pod.secret_value("t-mlflow", "minio-secret-key"),
    )
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["mlflow-artifacts"]
    return s3


def test_create_bucket_creates_once_and_waits_for_the_endpoint(tmp_path: Path) -> None:
    """create_bucket.py as the post-install Job runs it, against the S3 emulator standing in for the
    MinIO Service: the bucket is created, a second run leaves it; with no endpoint it waits, then fails."""
    docs = template(CHART, values=MINIO_VALUES, tmp_dir=tmp_path)
    closed = f"http://127.0.0.1:{free_port()}"
    gave_up = _bucket_job(docs, tmp_path / "wait", closed, MLFLOW_HELM_WAIT_SECONDS="2")
    assert gave_up.returncode == 1, gave_up.stdout + gave_up.stderr
    assert "waiting for MinIO" in gave_up.stdout and "gave up waiting for MinIO" in gave_up.stdout
    with moto_s3(tmp_path) as s3_url:
        _check_create_bucket(docs, tmp_path, s3_url)


def test_in_cluster_minio_and_the_bucket_job(
    minio_endpoint: tuple[str, list[dict[str, Any]], Path], tmp_path: Path
) -> None:
    """The MinIO StatefulSet's rendered args and env with a real MinIO, which checks signatures: the
    bucket Job's credentials are the ones MinIO was started with, the bucket lands on the claim."""
    endpoint, docs, claim = minio_endpoint
    s3 = _check_create_bucket(docs, tmp_path, endpoint)
    assert (claim / "mlflow-artifacts").is_dir()
    s3.put_object(Bucket="mlflow-artifacts", Key="a/b.txt", Body=b"x")
    wrong = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="not-the-key",
        aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(ClientError):
        wrong.list_objects_v2(Bucket="mlflow-artifacts")
    # Credentials MinIO refuses end the Job at once with the values to check (it used to call them
    # "waiting for MinIO" until its deadline): pod.run's 120 s timeout is far below the 600 s given here.
    for key, value, code in (
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret", "SignatureDoesNotMatch"),
        ("AWS_ACCESS_KEY_ID", "nobody", "InvalidAccessKeyId"),
    ):
        refused = _bucket_job(docs, tmp_path / f"refused-{code}", endpoint, MLFLOW_HELM_WAIT_SECONDS="600",
                              **{key: value})  # fmt: skip
        assert refused.returncode == 1, refused.stdout + refused.stderr
        last = refused.stdout.strip().splitlines()[-1]
        assert last.startswith(f"MinIO refuses the credentials ({code})"), refused.stdout
        assert "existingSecretAccessKeyKey" in last and value not in refused.stdout
