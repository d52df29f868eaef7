"""An MLflow upgrade, for real: a PostgreSQL database created and filled by the previous minor release
of MLflow (MLFLOW_PREVIOUS_VERSION, a venv under the cache: hack/mlflow-prev-env.sh) through the
chart's own containers, then migrated by the chart's migration Job with the chart's MLflow and read
back through the chart's server. The rendered command, args and env run on this machine
(tests/support/podrun.py); the old release's containers run the same rendered commands with the old
MLflow standing in for the old image."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml

from tests.support.charts import CHARTS, REPO, find, template
from tests.support.podrun import LocalPod
from tests.support.servers import free_port, postgres, stop, wait_http

pytestmark = pytest.mark.real
CHART = CHARTS / "mlflow"
PASSWORD = "up/grade:%pw"
HOSTS = {"postgres.databases.svc.cluster.local": "127.0.0.1", "0.0.0.0": "127.0.0.1"}

# Run by the previous MLflow: a run with a param, a metric history, a tag and a file, a registered
# scikit-learn model with an alias. Prints what it made as JSON.
OLD_CLIENT = """
import json, sys
import mlflow
from sklearn.linear_model import LogisticRegression

uri, name, note = sys.argv[1:4]
mlflow.set_tracking_uri(uri)
mlflow.set_experiment("made-before-the-upgrade")
model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
with mlflow.start_run(run_name="old-run") as run:
    mlflow.log_param("C", "1.0")
    for step, value in enumerate([0.5, 0.625, 0.75]):
        mlflow.log_metric("accuracy", value, step=step)
    mlflow.set_tag("logged-by", "mlflow " + mlflow.__version__)
    mlflow.log_artifact(note)
    # Requirements given, so MLflow does not infer them in a subprocess.
    mlflow.sklearn.log_model(
        model, name="model", registered_model_name=name, pip_requirements=["scikit-learn"]
    )
client = mlflow.MlflowClient()
client.set_registered_model_alias(name, "champion", "1")
print(json.dumps({"run_id": run.info.run_id, "mlflow": mlflow.__version__}))
"""


def _versions() -> dict[str, str]:
    lines = (REPO / "hack" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_the_previous_version_is_the_previous_minor_of_the_chart() -> None:
    """The pin follows the chart: bumping appVersion's minor without it fails here."""
    current = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"].split(".")
    previous = _versions()["MLFLOW_PREVIOUS_VERSION"].split(".")
    assert previous[0] == current[0] and int(previous[1]) == int(current[1]) - 1, (previous, current)


def _spec(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    obj = find(docs, kind, name)
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def _container(spec: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    return next(c for c in spec["initContainers" if init else "containers"] if c["name"] == name)


def _head(python: str) -> str:
    """The schema revision an MLflow expects, asked of that MLflow."""
    code = "from mlflow.store.db.utils import _get_latest_schema_revision as h; print(h())"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        stop(p)


def test_a_database_of_the_previous_mlflow_is_migrated_and_read_back(
    mlflow_previous_python: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    started: list[subprocess.Popen[bytes]],
) -> None:
    """`helm upgrade` from a release on the previous MLflow image to this chart: the server pods wait
    while the schema is old, the migration Job migrates it, and nothing stored before is lost."""
    old_version = _versions()["MLFLOW_PREVIOUS_VERSION"]
    old_head, new_head = _head(mlflow_previous_python), _head(sys.executable)
    # Otherwise there is nothing to migrate: pin an older release.
    assert old_head != new_head, f"MLflow {old_version} has the schema of {mlflow.__version__}"
    with postgres(tmp_path / "pg", PASSWORD) as pg:
        port = free_port()
        values = {
            "server": {"port": port, "workers": 1},
            "service": {"port": port},
            "backendStore": {
                "type": "postgresql",
                "postgresql": {
                    "host": "postgres.databases.svc.cluster.local",
                    "port": pg.port,
                    "password": PASSWORD,
                },
            },
            "migration": {"waitTimeoutSeconds": 10},
        }
        docs = template(CHART, values=values, tmp_dir=tmp_path)
        spec = _spec(docs, "Deployment", "t-mlflow")
        hook_spec = _spec(docs, "Job", "t-mlflow-migrate")
        # One pod root for both releases: the artifact volume (the PVC) keeps its files across the upgrade.
        server_pod = LocalPod(docs, tmp_path / "pod", host_map=HOSTS, python=mlflow_previous_python)
        hook = LocalPod(docs, tmp_path / "hook", host_map=HOSTS, python=mlflow_previous_python)
        base = f"http://127.0.0.1:{port}"

        # The release as it was: the previous MLflow's migration Job creates its schema, its server
        # takes a run and a registered model from its own client.
        created = hook.run(hook_spec, hook_spec["containers"][0])
        assert created.returncode == 0, created.stdout + created.stderr
        assert f"creating the MLflow schema at revision {old_head}" in created.stdout
        old_log = tmp_path / "old-server.log"
        old_server = server_pod.start(spec, _container(spec, "mlflow"), old_log)
        started.append(old_server)
        wait_http(base + "/health", proc=old_server, log=old_log)
        note = tmp_path / "note.txt"
        note.write_text("written by the previous MLflow")
        made = subprocess.run(
            [mlflow_previous_python, "-c", OLD_CLIENT, base, "old-model", str(note)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        old = json.loads(made.stdout.strip().splitlines()[-1])
        assert old["mlflow"] == old_version
        stop(old_server)

        # The upgrade: new server pods wait for the migration (and give up while the schema is old) ...
        server_pod.python = hook.python = sys.executable
        waiting = server_pod.run(spec, _container(spec, "wait-for-schema", init=True), timeout=120)
        assert waiting.returncode != 0, waiting.stdout + waiting.stderr
        assert f"schema at {old_head}, expected {new_head}" in waiting.stderr

        # ... the chart's migration Job, with the chart's MLflow, migrates the old schema ...
        migrated = hook.run(hook_spec, hook_spec["containers"][0])
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert f"migrating the MLflow schema from {old_head} to {new_head}" in migrated.stdout
        ready = server_pod.run(spec, _container(spec, "wait-for-schema", init=True))
        assert ready.returncode == 0, ready.stdout + ready.stderr

        # ... and the new server serves what the old one stored.
        new_log = tmp_path / "new-server.log"
        new_server = server_pod.start(spec, _container(spec, "mlflow"), new_log)
        started.append(new_server)
        wait_http(base + "/health", proc=new_server, log=new_log)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", base)
        mlflow.set_tracking_uri(base)
        client = mlflow.MlflowClient()
        run = client.get_run(old["run_id"])
        assert run.info.run_name == "old-run" and run.info.status == "FINISHED"
        assert run.data.params == {"C": "1.0"}
        assert run.data.tags["logged-by"] == f"mlflow {old_version}"
        history = client.get_metric_history(old["run_id"], "accuracy")
        assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.625), (2, 0.75)]
        downloaded = mlflow.artifacts.download_artifacts(
            run_id=old["run_id"], artifact_path="note.txt", dst_path=str(tmp_path / "dl")
        )
        assert Path(downloaded).read_text() == "written by the previous MLflow"
        version = client.get_model_version_by_alias("old-model", "champion")
        assert version.version == "1" and version.run_id == old["run_id"]
        loaded = mlflow.pyfunc.load_model("models:/old-model@champion")
        assert list(loaded.predict([[0.0], [3.0]])) == [0, 1]

        # The upgraded store takes new writes beside the old ones.
        with mlflow.start_run(experiment_id=run.info.experiment_id) as new_run:
            mlflow.log_metric("accuracy", 0.875)
        runs = client.search_runs([run.info.experiment_id], order_by=["attributes.start_time ASC"])
        assert [r.info.run_id for r in runs] == [old["run_id"], new_run.info.run_id]
