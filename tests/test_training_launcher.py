"""The training-job chart's launcher, run for real: the command and env the chart renders are executed
on this machine (mounts mapped to temp dirs, cluster hosts to 127.0.0.1) against a real
`mlflow server`, real pip, and real PyTorch (torchrun, gloo) from the separate torch venv."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from tests.support.charts import CHARTS, find, template
from tests.support.podrun import LocalPod
from tests.support.servers import free_port, mlflow_server

pytestmark = pytest.mark.real
CHART = CHARTS / "training-job"
MLFLOW_HOST = "mlflow.ml.svc:5000"
UID_FIELD = "metadata.labels['batch.kubernetes.io/controller-uid']"

SKLEARN_SCRIPT = """
import argparse
import mlflow
import mlflow.sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float, default=1.0)
parser.add_argument("--max_iter", type=int, default=300)
args, _ = parser.parse_known_args()
X, y = load_iris(return_X_y=True)
with mlflow.start_run():
    mlflow.log_param("C_used", args.C)
    model = LogisticRegression(C=args.C, max_iter=args.max_iter).fit(X, y)
    accuracy = model.score(X, y)
    mlflow.log_metric("accuracy", accuracy)
    mlflow.log_metric("val_loss", 1.0 - accuracy)
    mlflow.sklearn.log_model(model, name="model")
print("accuracy", accuracy)
"""


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


def _job_container(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    job = next(d for d in docs if d["kind"] == "Job")
    spec = job["spec"]["template"]["spec"]
    return spec, spec["containers"][0]


def _pod(docs: list[dict[str, Any]], root: Path, tracking: str | None = None, **env: str) -> LocalPod:
    root.mkdir(parents=True, exist_ok=True)
    host_map = {MLFLOW_HOST: tracking.removeprefix("http://")} if tracking else {}
    return LocalPod(
        docs,
        root,
        host_map=host_map,
        field_refs={"metadata.name": f"pod-{root.name}", UID_FIELD: env.pop("uid", "job-uid-1")},
        extra_env={"HELM_MLOPS_TERMINATION_LOG": str(root / "termination-log"), **env},
    )


def _runs(tracking: str, experiment: str) -> list[Any]:
    client = mlflow.MlflowClient(tracking)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"the launcher did not create experiment {experiment}"
    return list(client.search_runs([exp.experiment_id]))


def test_sklearn_script_logs_to_real_mlflow(tracking: str, tmp_path: Path) -> None:
    docs = template(
        CHART,
        values={
            "script": {"content": SKLEARN_SCRIPT, "args": ["--C", "0.5"]},
            "mlflow": {"trackingUri": f"http://{MLFLOW_HOST}", "experimentName": "launcher-sklearn"},
        },
        tmp_dir=tmp_path,
    )
    pod = _pod(docs, tmp_path / "pod", tracking)
    spec, container = _job_container(docs)
    result = pod.run(spec, container)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "accuracy" in result.stdout

    [run] = _runs(tracking, "launcher-sklearn")
    assert run.info.status == "FINISHED"
    assert run.data.params["C_used"] == "0.5"  # the chart's script.args reached the script
    assert run.data.metrics["accuracy"] > 0.9
    assert run.data.tags["helm-mlops.release"] == "t"
    assert run.data.tags["helm-mlops.training-job"] == "t-training-job"
    assert run.data.tags["mlflow.runName"] == "t-training-job"
    mlflow.set_tracking_uri(tracking)
    model = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    assert list(model.predict([[5.1, 3.5, 1.4, 0.2]])) == [0]  # a setosa, as logged by the pod
    # The termination message (what `helm-mlops status` reads) names the same run.
    message = json.loads((tmp_path / "pod" / "termination-log").read_text())
    assert message == {
        "exitCode": 0,
        "mlflowRunId": run.info.run_id,
        "mlflowExperimentId": run.info.experiment_id,
    }


def _run_tracked(
    script: str, experiment: str, tracking: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """Render a job logging to `experiment` and run its container."""
    values = {
        "script": {"content": script},
        "mlflow": {"trackingUri": f"http://{MLFLOW_HOST}", "experimentName": experiment},
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    spec, container = _job_container(docs)
    return _pod(docs, tmp_path / "pod", tracking).run(spec, container)


def test_failing_script_fails_the_pod_and_the_run(tracking: str, tmp_path: Path) -> None:
    script = "import mlflow, sys\nwith mlflow.start_run():\n    mlflow.log_metric('x', 1)\n    sys.exit(3)\n"
    result = _run_tracked(script, "launcher-fail", tracking, tmp_path)
    assert result.returncode == 3, result.stderr
    [run] = _runs(tracking, "launcher-fail")
    assert run.info.status == "FAILED"
    assert json.loads((tmp_path / "pod" / "termination-log").read_text())["exitCode"] == 3


def test_script_without_mlflow_calls_still_gets_a_finished_run(tracking: str, tmp_path: Path) -> None:
    """The launcher owns the run: a script that never touches MLflow still leaves a closed run."""
    result = _run_tracked(
        "import os\nprint('run id', os.environ['MLFLOW_RUN_ID'])\n", "launcher-plain", tracking, tmp_path
    )
    assert result.returncode == 0, result.stderr
    [run] = _runs(tracking, "launcher-plain")
    assert run.info.status == "FINISHED"
    assert f"run id {run.info.run_id}" in result.stdout


def test_sigterm_is_forwarded_and_the_script_exit_code_kept(tmp_path: Path) -> None:
    script = (
        "import os, signal, sys, time\n"
        "def stop(signum, frame):\n"
        "    open(os.environ['MARKER'], 'w').write('checkpoint saved')\n"
        "    sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "open(os.environ['MARKER'] + '.ready', 'w').close()\n"
        "time.sleep(120)\n"
    )
    docs = template(CHART, values={"script": {"content": script}}, tmp_dir=tmp_path)
    spec, container = _job_container(docs)
    marker = tmp_path / "marker"
    pod = _pod(docs, tmp_path / "pod", MARKER=str(marker))
    proc = pod.start(spec, container, tmp_path / "pod.log")
    deadline = time.monotonic() + 60
    while not Path(f"{marker}.ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "pod.log").read_text()
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGTERM)  # Kubernetes signals PID 1 only: the launcher
    assert proc.wait(timeout=30) == 7
    assert marker.read_text() == "checkpoint saved"
    assert "received SIGTERM" in (tmp_path / "pod.log").read_text()


def test_requirements_are_installed_into_the_writable_runtime_dir(tmp_path: Path) -> None:
    script = (
        "import os, humanize\n"
        "assert humanize.__file__.startswith(os.environ['HELM_MLOPS_STATE_DIR']), humanize.__file__\n"
        "print(humanize.naturalsize(3000000))\n"
    )
    docs = template(
        CHART, values={"script": {"content": script}, "requirements": ["humanize>=4,<5"]}, tmp_dir=tmp_path
    )
    spec, container = _job_container(docs)
    result = _pod(docs, tmp_path / "pod").run(spec, container)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3.0 MB" in result.stdout
    assert "requirements installed" in result.stderr


# Sweeps --------------------------------------------------------------------------------------------


def test_sweep_trials_log_to_mlflow_and_the_cli_ranks_them(tracking: str, tmp_path: Path) -> None:
    values: dict[str, Any] = {
        "script": {"content": SKLEARN_SCRIPT},
        "mlflow": {"trackingUri": f"http://{MLFLOW_HOST}", "experimentName": "launcher-sweep"},
        "sweep": {
            "enabled": True,
            "parameters": [
                {"name": "C", "type": "float", "values": [0.001, 0.05, 10.0]},
                {"name": "max_iter", "type": "int", "min": 200, "max": 300, "step": 100},
            ],
            "objective": {"metric": "val_loss", "goal": "minimize"},
        },
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    job = find(docs, "Job")
    assert job["spec"]["completions"] == 6
    spec, container = _job_container(docs)
    # The grid, every combination with the first parameter varying slowest, written out by hand.
    plan = [
        {"C": 0.001, "max_iter": 200},
        {"C": 0.001, "max_iter": 300},
        {"C": 0.05, "max_iter": 200},
        {"C": 0.05, "max_iter": 300},
        {"C": 10.0, "max_iter": 200},
        {"C": 10.0, "max_iter": 300},
    ]
    for index in range(6):
        pod = _pod(
            docs, tmp_path / f"trial-{index}", tracking, uid="sweep-uid-7", JOB_COMPLETION_INDEX=str(index)
        )
        result = pod.run(spec, container)
        assert result.returncode == 0, result.stderr
        assert f"trial {index}: {json.dumps(plan[index])}" in result.stderr

    runs = _runs(tracking, "launcher-sweep")
    assert len(runs) == 6
    by_trial = {int(r.data.tags["helm-mlops.trial"]): r for r in runs}
    assert sorted(by_trial) == [0, 1, 2, 3, 4, 5]
    for index, run in by_trial.items():
        assert run.data.tags["helm-mlops.sweep"] == "sweep-uid-7"
        assert float(run.data.params["C"]) == plan[index]["C"]  # the launcher logged the trial's params
        assert int(run.data.params["max_iter"]) == plan[index]["max_iter"]
        assert float(run.data.params["C_used"]) == plan[index]["C"]  # ... and passed them as --C
    expected = sorted(by_trial, key=lambda i: (by_trial[i].data.metrics["val_loss"], i))

    exe = Path(sys.executable).parent / "helm-mlops"
    argv = [str(exe), "sweep", "best", "--tracking-uri", tracking, "--experiment", "launcher-sweep"]
    argv += ["--sweep-id", "sweep-uid-7", "--metric", "val_loss", "--top", "6"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    ranked = [int(line.split()[0]) for line in out.stdout.splitlines()[1:]]
    assert ranked == expected


# Distributed PyTorch ---------------------------------------------------------------------------------

ALL_REDUCE = """
import os, sys
import torch
import torch.distributed as dist

dist.init_process_group(os.environ["HELM_MLOPS_DIST_BACKEND"])
rank, world = dist.get_rank(), dist.get_world_size()
if rank == int(os.environ.get("FAIL_RANK", "-1")):
    sys.exit(3)
t = torch.tensor([rank + 1.0])
dist.all_reduce(t)
print(f"rank {rank}/{world} sum {t.item()}", flush=True)
assert t.item() == world * (world + 1) / 2
dist.destroy_process_group()
"""


def _torchrun_pods(
    tmp_path: Path, torch_python: str, env: list[dict[str, str]]
) -> list[subprocess.Popen[bytes]]:
    port = free_port()
    values = {
        "script": {"content": ALL_REDUCE},
        "distributed": {"enabled": True, "nodes": 2, "nprocPerNode": 1, "port": port},
        "env": env,
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    assert find(docs, "Service")["spec"]["clusterIP"] == "None"
    spec, container = _job_container(docs)
    master = next(e["value"] for e in container["env"] if e["name"] == "HELM_MLOPS_MASTER_ADDR")
    assert master == f"{find(docs, 'Job')['metadata']['name']}-0.t-training-job.ml.svc"
    procs = []
    for index in (0, 1):
        pod = _pod(docs, tmp_path / f"node-{index}", JOB_COMPLETION_INDEX=str(index))
        pod.host_map[master] = "127.0.0.1"
        pod.python = torch_python
        procs.append(pod.start(spec, container, tmp_path / f"node-{index}.log"))
    return procs


def _wait_all(procs: list[subprocess.Popen[bytes]], timeout: float = 240) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            raise
    return codes


def test_torchrun_two_indexed_pods_all_reduce(tmp_path: Path, torch_python: str) -> None:
    procs = _torchrun_pods(tmp_path, torch_python, [])
    codes = _wait_all(procs)
    logs = [(tmp_path / f"node-{i}.log").read_text() for i in (0, 1)]
    assert codes == [0, 0], "\n----\n".join(logs)
    assert "rank 0/2 sum 3.0" in logs[0] and "rank 1/2 sum 3.0" in logs[1]
    assert "--node-rank=0" in logs[0] and "--node-rank=1" in logs[1]


def test_a_failing_rank_fails_the_job_with_its_exit_code(tmp_path: Path, torch_python: str) -> None:
    procs = _torchrun_pods(tmp_path, torch_python, [{"name": "FAIL_RANK", "value": "1"}])
    codes = _wait_all(procs)
    logs = "\n----\n".join((tmp_path / f"node-{i}.log").read_text() for i in (0, 1))
    assert codes[1] == 3, logs  # torchrun itself would exit 1: the launcher keeps the rank's code
    assert codes[0] != 0, logs  # the other node fails too, so the Job fails


def test_helm_test_pod_checks_script_sweep_and_mlflow(tracking: str, tmp_path: Path) -> None:
    values: dict[str, Any] = {
        "script": {"content": SKLEARN_SCRIPT},
        "mlflow": {"trackingUri": f"http://{MLFLOW_HOST}"},
        "sweep": {"enabled": True, "parameters": [{"name": "C", "type": "float", "values": [0.1, 1.0]}]},
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    test_pod = find(docs, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = test_pod["spec"]
    result = _pod(docs, tmp_path / "ok", tracking).run(spec, spec["containers"][0])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compiles" in result.stdout and "sweep of 2 trials" in result.stdout and "answers" in result.stdout

    values["script"] = {"content": "def broken(:\n"}
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    spec = find(docs, "Pod")["spec"]
    result = _pod(docs, tmp_path / "bad", tracking).run(spec, spec["containers"][0])
    assert result.returncode == 1 and "does not compile" in result.stdout


SIGTERM_SCRIPT = """
import os, signal, sys, time
import torch.distributed as dist

dist.init_process_group(os.environ["HELM_MLOPS_DIST_BACKEND"])
def stop(signum, frame):
    print(f"rank {dist.get_rank()} checkpoint", flush=True)
    sys.exit(7)
signal.signal(signal.SIGTERM, stop)
open(os.path.join(os.environ["READY_DIR"], f"rank-{dist.get_rank()}"), "w").close()
time.sleep(120)
"""


def test_sigterm_keeps_the_scripts_own_exit_code_on_every_node(tmp_path: Path, torch_python: str) -> None:
    """Both ranks handle SIGTERM with sys.exit(7): both pods exit 7 as a single-node job does, not
    torchrun's 1 (issue 20, item 5)."""
    ready = tmp_path / "ready"
    ready.mkdir()
    port = free_port()
    values = {
        "script": {"content": SIGTERM_SCRIPT},
        "distributed": {"enabled": True, "nodes": 2, "nprocPerNode": 1, "port": port},
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    spec, container = _job_container(docs)
    master = next(e["value"] for e in container["env"] if e["name"] == "HELM_MLOPS_MASTER_ADDR")
    procs = []
    for index in (0, 1):
        pod = _pod(docs, tmp_path / f"node-{index}", JOB_COMPLETION_INDEX=str(index), READY_DIR=str(ready))
        pod.host_map[master] = "127.0.0.1"
        pod.python = torch_python
        procs.append(pod.start(spec, container, tmp_path / f"node-{index}.log"))
    deadline = time.monotonic() + 180
    while len(list(ready.iterdir())) < 2:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            _wait_all(procs, timeout=1)
            raise AssertionError("\n----\n".join((tmp_path / f"node-{i}.log").read_text() for i in (0, 1)))
        time.sleep(0.2)
    for proc in procs:
        os.kill(proc.pid, signal.SIGTERM)  # the kubelet signals each pod's PID 1: the launcher
    codes = _wait_all(procs, timeout=90)
    logs = "\n----\n".join((tmp_path / f"node-{i}.log").read_text() for i in (0, 1))
    assert codes == [7, 7], logs
    assert "rank 0 checkpoint" in logs and "rank 1 checkpoint" in logs


def test_rdzv_timeout_reaches_torchrun(tmp_path: Path, torch_python: str) -> None:
    """distributed.rdzvTimeout: node 0 alone gives up after it, not after torchrun's 600 s."""
    values = {
        "script": {"content": ALL_REDUCE},
        "distributed": {
            "enabled": True,
            "nodes": 2,
            "nprocPerNode": 1,
            "port": free_port(),
            "rdzvTimeout": 5,
        },
    }
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    spec, container = _job_container(docs)
    master = next(e["value"] for e in container["env"] if e["name"] == "HELM_MLOPS_MASTER_ADDR")
    pod = _pod(docs, tmp_path / "node-0", JOB_COMPLETION_INDEX="0")
    pod.host_map[master] = "127.0.0.1"
    pod.python = torch_python
    started = time.monotonic()
    result = pod.run(spec, container, timeout=120)
    assert result.returncode != 0, result.stdout + result.stderr
    assert time.monotonic() - started < 90
    assert "--rdzv-conf=timeout=5,join_timeout=5" in result.stderr
