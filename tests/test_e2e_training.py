"""Training jobs end to end on the real API server (kwok fakes the nodes and serves simulated
container logs): `helm-mlops train` installs into a namespace enforcing Pod Security "restricted",
the Jobs complete, `status` and `logs` read them through the API, the GPU preflight refuses what no
node can run, and the operator custom resources pass the API server's validation with the CRDs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.charts import CHARTS, template
from tests.support.cluster import Cluster

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).parent / "helm-mlops")
CHART = CHARTS / "training-job"
SIMULATED_LAST_LINE = "training finished"  # hack/kwok/pod.log


@pytest.fixture
def ns(cluster: Cluster) -> Iterator[str]:
    name = cluster.restricted_namespace("train")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text("print('hello from the pod')\n")
    return path


def _cli(cluster: Cluster, *args: str | Path, ns: str) -> subprocess.CompletedProcess[str]:
    argv = [EXE, *map(str, args), "-n", ns, "--kubeconfig", str(cluster.kubeconfig)]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)


def _wait_complete(cluster: Cluster, ns: str, job: str) -> None:
    cluster.kubectl("wait", "-n", ns, "--for=condition=complete", f"job/{job}", "--timeout=120s")


def test_train_status_logs_and_retrain(cluster: Cluster, ns: str, script: Path) -> None:
    first = _cli(cluster, "train", "fit", "--script", script, "--cpu", "500m", "--memory", "1Gi", ns=ns)
    assert first.returncode == 0, first.stderr
    assert "release fit: revision 1, deployed" in first.stdout
    _wait_complete(cluster, ns, "fit-training-job-r1")
    cm = cluster.get("configmap", "fit-training-job-script", "-n", ns)
    assert cm["data"]["train.py"] == script.read_text()

    status = _cli(cluster, "status", "fit", ns=ns)
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith("fit-training-job-r1"))
    assert row.split()[1:4] == ["Job", "Complete", "0"] and " 1/1 " in row

    logs = _cli(cluster, "logs", "fit", "training-job", ns=ns)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert lines and all(line.startswith("[fit-training-job-r1-") and " rank 0] " in line for line in lines)
    assert lines[-1].endswith(SIMULATED_LAST_LINE)

    # `train` again = helm upgrade: a new Job for the new revision replaces the finished one.
    second = _cli(cluster, "train", "fit", "--script", script, "--arg", "--epochs=5", ns=ns)
    assert second.returncode == 0, second.stderr
    _wait_complete(cluster, ns, "fit-training-job-r2")
    jobs = cluster.kubectl("get", "jobs", "-n", ns, "-o", "name").stdout.split()
    assert jobs == ["job.batch/fit-training-job-r2"]


def test_distributed_logs_follow_every_rank(cluster: Cluster, ns: str, script: Path) -> None:
    result = _cli(cluster, "train", "dist", "--script", script, "--nodes", "3", ns=ns)
    assert result.returncode == 0, result.stderr
    follow = _cli(cluster, "logs", "dist", "training-job", "-f", "--all-pods", ns=ns)
    assert follow.returncode == 0, follow.stderr
    ranks = {line.split(" rank ")[1].split("]")[0] for line in follow.stdout.splitlines()}
    assert ranks == {"0", "1", "2"}
    assert follow.stdout.count(SIMULATED_LAST_LINE) == 3
    service = cluster.get("service", "dist-training-job", "-n", ns)
    assert service["spec"]["clusterIP"] == "None"
    pods = cluster.get("pods", "-n", ns, "-l", "helm-mlops.io/training-job=dist-training-job")["items"]
    assert sorted(p["spec"]["hostname"] for p in pods) == [f"dist-training-job-r1-{i}" for i in range(3)]


def test_gpu_job_lands_on_the_gpu_node(cluster: Cluster, ns: str, script: Path) -> None:
    result = _cli(cluster, "train", "gpu", "--script", script, "--gpus", "2", ns=ns)
    assert result.returncode == 0, result.stderr
    _wait_complete(cluster, ns, "gpu-training-job-r1")
    [pod] = cluster.get("pods", "-n", ns)["items"]
    node = cluster.get("node", pod["spec"]["nodeName"])
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"


def test_gpu_preflight_refuses_and_installs_nothing(cluster: Cluster, ns: str, script: Path) -> None:
    result = _cli(
        cluster,
        "train",
        "amd",
        "--script",
        script,
        "--gpus",
        "1",
        "--set",
        "gpu.resourceName=amd.com/gpu",
        ns=ns,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--gpus (gpu.count)" in result.stderr and "no node of the cluster has amd.com/gpu" in result.stderr
    assert "--skip-preflight" in result.stderr and "Traceback" not in result.stderr
    assert cluster.helm("helm4", "list", "-n", ns, "-q").stdout.strip() == ""


def test_sweep_runs_every_trial(cluster: Cluster, ns: str, script: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "parallelism": 2,
                "parameters": [
                    {"name": "lr", "type": "float", "values": [0.1, 0.01]},
                    {"name": "depth", "type": "int", "min": 2, "max": 4, "step": 2},
                ],
            }
        )
    )
    result = _cli(cluster, "train", "sw", "--script", script, "--sweep", sweep, ns=ns)
    assert result.returncode == 0, result.stderr
    assert "sweep: 4 trials (grid)" in result.stdout
    _wait_complete(cluster, ns, "sw-training-job-r1")
    job = cluster.get("job", "sw-training-job-r1", "-n", ns)
    assert job["status"]["completedIndexes"] == "0-3"
    status = _cli(cluster, "status", "sw", ns=ns).stdout
    assert " 4/4 " in status and f"sweep id: {job['metadata']['uid']}" in status
    test = cluster.helm("helm4", "test", "sw", "-n", ns)
    assert "Phase:          Succeeded" in test.stdout


@pytest.mark.parametrize("scenario", ["pytorchjob-values", "trainjob-values"])
def test_operator_resources_pass_the_api_server(cluster: Cluster, ns: str, scenario: str) -> None:
    """The API server validates the custom resources with the upstream CRDs' schemas (no operator
    runs here, so nothing reconciles them)."""
    cluster.helm("helm4", "install", "op", CHART, "-n", ns, "-f", CHART / "ci" / f"{scenario}.yaml")
    kind = "pytorchjob" if scenario.startswith("pytorch") else "trainjob"
    obj = cluster.get(kind, "op-training-job", "-n", ns)
    assert obj["metadata"]["labels"]["helm-mlops.io/training-job"] == "op-training-job"
    # Strict server-side validation: the rendered resource has no field the CRD does not define,
    # and the same check refuses one that has.
    rendered = next(
        d
        for d in template(CHART, values_files=[CHART / "ci" / f"{scenario}.yaml"], namespace=ns)
        if d["kind"].lower() == kind
    )
    rendered["metadata"]["name"] = "op-dry"
    ok = cluster.kubectl(
        "create", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(rendered), check=False
    )
    assert ok.returncode == 0 and "Warning" not in ok.stderr, ok.stderr
    rendered["spec"]["unknownField"] = 1
    bad = cluster.kubectl(
        "create", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(rendered), check=False
    )
    assert bad.returncode != 0 and "unknownField" in bad.stderr, bad.stdout + bad.stderr


def test_inference_service_status_on_the_cluster(cluster: Cluster, ns: str) -> None:
    """The inference chart installs (restricted namespace, --wait) and `status` shows its replicas."""
    values = CHARTS / "inference-service" / "ci" / "fastapi-https-onnx-values.yaml"
    cluster.helm(
        "helm4",
        "install",
        "srv",
        CHARTS / "inference-service",
        "-n",
        ns,
        "-f",
        values,
        "--wait",
        "--timeout",
        "120s",
    )
    status = _cli(cluster, "status", "srv", ns=ns)
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith("srv-inference-service"))
    assert row.split()[1:4] == ["fastapi", "2/2", "Running"]
