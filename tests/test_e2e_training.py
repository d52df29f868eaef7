"""Training jobs end to end on the real API server (kwok fakes the nodes): `helm-mlops train` installs
into a namespace enforcing Pod Security "restricted", the Job controller creates the pods (one per
rank, one per sweep trial), `status` and `logs` read the Jobs and pods through the API, the GPU
preflight refuses what no node can run, and the operator custom resources pass the API server's
validation with the CRDs. Training objects are named by a hash of their spec: an upgrade that changes
nothing they run keeps them (same uid), a changed spec replaces them, and `train` again is a new run.

kwok runs no container: it marks every admitted training pod Succeeded with exit code 0 and serves the
same canned log for each (hack/kwok/pod.log). A Job's "Complete" here is the controller counting those
pods, and the log lines are kwok's, not the script's: that training really runs, logs and succeeds is
proven on the real node (tests/test_e2e_realnode.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.charts import CHARTS, template
from tests.support.cluster import Cluster

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).parent / "helm-mlops")
CHART = CHARTS / "training-job"
SIMULATED_LAST_LINE = "training finished"  # hack/kwok/pod.log: kwok's canned log, not the script's


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
    """Until the Job controller has counted the pods kwok completed."""
    cluster.kubectl("wait", "-n", ns, "--for=condition=complete", f"job/{job}", "--timeout=120s")


def _workload(cluster: Cluster, ns: str, release: str, kind: str = "job") -> dict[str, Any]:
    """The release's one training object, found by its label: its name ends in a hash of its spec."""
    label = f"helm-mlops.io/training-job={release}-training-job"
    items = cluster.get(kind, "-n", ns, "-l", label)["items"]
    assert len(items) == 1, [i["metadata"]["name"] for i in items]
    assert re.fullmatch(rf"{release}-training-job-[0-9a-f]{{10}}", items[0]["metadata"]["name"])
    return dict(items[0])


def _name_uid(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"]["name"], obj["metadata"]["uid"]


def test_train_then_status_and_logs_read_the_api_and_train_again_is_a_new_run(
    cluster: Cluster, ns: str, script: Path
) -> None:
    """`train` installs the script's ConfigMap and a Job; `status` shows the Job's phase and counts as the
    API has them, `logs` streams the pod's log (kwok's canned one) with rank prefixes; `train` again is a
    new run."""
    argv: list[str | Path] = ["train", "fit", "--script", script, "--cpu", "500m", "--memory", "1Gi"]
    first = _cli(cluster, *argv, ns=ns)
    assert first.returncode == 0, first.stderr
    assert "release fit: revision 1, deployed" in first.stdout and "a new run" not in first.stdout
    job, uid = _name_uid(_workload(cluster, ns, "fit"))
    _wait_complete(cluster, ns, job)
    cm = cluster.get("configmap", "fit-training-job-script", "-n", ns)
    assert cm["data"]["train.py"] == script.read_text()

    status = _cli(cluster, "status", "fit", ns=ns)
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith(job))
    assert row.split()[1:4] == ["Job", "Complete", "0"] and " 1/1 " in row

    logs = _cli(cluster, "logs", "fit", "training-job", ns=ns)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert lines and all(line.startswith(f"[{job}-") and " rank 0] " in line for line in lines)
    assert lines[-1].endswith(SIMULATED_LAST_LINE)

    # `train` again with the same script and options: a new run (rerun = the new revision), and the
    # upgrade deletes the finished Job.
    second = _cli(cluster, *argv, ns=ns)
    assert second.returncode == 0, second.stderr
    assert "a new run (rerun=2;" in second.stdout and "revision 2, deployed" in second.stdout
    cluster.kubectl("wait", "-n", ns, "--for=delete", f"job/{job}", "--timeout=60s")
    rerun = _name_uid(_workload(cluster, ns, "fit"))
    assert rerun[0] != job and rerun[1] != uid
    _wait_complete(cluster, ns, rerun[0])
    # A rerun of the user's own wins: the value revision 2 got leaves that run alone.
    third = _cli(cluster, *argv, "--set", "rerun=2", ns=ns)
    assert third.returncode == 0 and "a new run" not in third.stdout, third.stdout + third.stderr
    assert _name_uid(_workload(cluster, ns, "fit")) == rerun


@pytest.mark.parametrize("helm_name", ["helm4", "helm3"])
def test_upgrade_keeps_an_unchanged_job_and_replaces_a_changed_one(
    cluster: Cluster, ns: str, tmp_path: Path, helm_name: str
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"script": {"content": "print('one')\n"}}))
    cluster.helm(helm_name, "install", "up", CHART, "-n", ns, "-f", values)
    first = _name_uid(_workload(cluster, ns, "up"))
    # What reaches no training pod (the test pod's resources), or nothing at all (an umbrella's
    # upgrade for another subchart): the same Job, not a new run.
    for change in (["--set", "tests.resources.limits.cpu=1"], []):
        cluster.helm(helm_name, "upgrade", "up", CHART, "-n", ns, "--reuse-values", *change)
        assert _name_uid(_workload(cluster, ns, "up")) == first, change
    # A changed script: a new Job, and the upgrade deletes the old one.
    cluster.helm(
        helm_name, "upgrade", "up", CHART, "-n", ns, "--reuse-values", "--set", "script.content=print(2)"
    )
    cluster.kubectl("wait", "-n", ns, "--for=delete", f"job/{first[0]}", "--timeout=60s")
    name, uid = _name_uid(_workload(cluster, ns, "up"))
    assert name != first[0] and uid != first[1]


def test_train_does_not_wait_for_the_training(cluster: Cluster, ns: str, script: Path) -> None:
    """The install waits for the release's objects, not for the Job to finish: a pod that no node
    takes leaves the Job running, and `train` still returns at once."""
    result = _cli(cluster, "train", "idle", "--script", script, "--set", "nodeSelector.pool=none", ns=ns)
    assert result.returncode == 0 and "revision 1, deployed" in result.stdout, result.stderr
    job = _workload(cluster, ns, "idle")
    assert job["status"].get("active") == 1 and not job["status"].get("succeeded")


def test_distributed_logs_follow_every_rank(cluster: Cluster, ns: str, script: Path) -> None:
    """`logs -f --all-pods` follows each rank's pod of an Indexed Job to its end (kwok's canned log per
    pod) and the pods get the stable hostnames the rendezvous uses (torchrun itself: the real node)."""
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
    job = _workload(cluster, ns, "dist")["metadata"]["name"]
    assert sorted(p["spec"]["hostname"] for p in pods) == [f"{job}-{i}" for i in range(3)]


def test_gpu_job_lands_on_the_gpu_node(cluster: Cluster, ns: str, script: Path) -> None:
    result = _cli(cluster, "train", "gpu", "--script", script, "--gpus", "2", ns=ns)
    assert result.returncode == 0, result.stderr
    _wait_complete(cluster, ns, _workload(cluster, ns, "gpu")["metadata"]["name"])
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


def test_sweep_makes_one_pod_per_trial_and_status_counts_them(
    cluster: Cluster, ns: str, script: Path, tmp_path: Path
) -> None:
    """A 4-trial sweep is an Indexed Job of 4 completions: the controller runs an index per trial
    (kwok completes each pod), `status` counts 4/4 and shows the sweep id, and `helm test` creates the
    chart's test pod (admitted; its check is not run by kwok)."""
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
    name = _workload(cluster, ns, "sw")["metadata"]["name"]
    _wait_complete(cluster, ns, name)
    job = cluster.get("job", name, "-n", ns)
    assert job["status"]["completedIndexes"] == "0-3"
    status = _cli(cluster, "status", "sw", ns=ns).stdout
    assert " 4/4 " in status and f"sweep id: {job['metadata']['uid']}" in status
    test = cluster.helm("helm4", "test", "sw", "-n", ns)
    assert re.search(r"TEST SUITE:\s+sw-training-job-test\n", test.stdout), test.stdout


@pytest.mark.parametrize("scenario", ["pytorchjob-values", "trainjob-values"])
def test_operator_resources_pass_the_api_server(cluster: Cluster, ns: str, scenario: str) -> None:
    """The API server validates the custom resources with the upstream CRDs' schemas (no operator
    runs here, so nothing reconciles them)."""
    cluster.helm("helm4", "install", "op", CHART, "-n", ns, "-f", CHART / "ci" / f"{scenario}.yaml")
    kind = "pytorchjob" if scenario.startswith("pytorch") else "trainjob"
    obj = _workload(cluster, ns, "op", kind)
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
