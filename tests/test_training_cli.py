"""`helm-mlops train`, `logs`, `status` and `sweep plan` without a cluster: bad input is refused with
exit code 2 and nothing written; status and logs are checked against API objects recorded from the
test cluster (tests/fixtures/recorded/) and a scripted sequence of pod lists and log chunks."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator import sweep as sweep_space
from generator.errors import ToolError
from generator.helm.adapter import Completed, Helm
from generator.helm.binary import HelmBinary
from generator.kube.logs import LogFollower, format_lines, pod_rank, select_pods
from generator.kube.status import (
    RUN_LINE_BYTES,
    format_summaries,
    job_phase,
    mlflow_links,
    running_logs,
    summarize_custom,
    summarize_job,
)
from generator.training import rerun_nonce
from tests.support.charts import REPO
from tests.support.incli import run_cli

EXE = str(Path(sys.executable).parent / "helm-mlops")


def _cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, check=False, cwd=cwd)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text("print('train')\n")
    return path


def _sweep_file(tmp_path: Path, body: dict[str, Any]) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


BAD_INPUT = [
    (["--script", "missing.py"], "--script: missing.py does not exist"),
    (["--script", "{script}", "--cpu", "two"], "--cpu: 'two' is not a Kubernetes quantity"),
    (["--script", "{script}", "--memory", "4GB"], "--memory: '4GB' is not a Kubernetes quantity"),
    (["--script", "{script}", "--set", "resources.limits.cpu=1.5cores"], "resources.limits.cpu"),
    (["--script", "{script}", "--gpus", "1", "--nodes", "2", "--nproc-per-node", "2"], "--nproc-per-node"),
    (["--script", "{script}", "--sweep", "{sweep0}"], "sweep: sweep.trials must be at least 1"),
    (["--script", "{script}", "--sweep", "{sweep_huge}"], "more than 10000 trials"),
    (
        ["--script", "{script}", "--set", "job.restartPolicy=Always"],
        "job.restartPolicy: 'Always' is not one of",
    ),
    (["--script", "{script}", "--command", "python"], "script.content and command are both set"),
    (["--requirements-file", "nope.txt", "--script", "{script}"], "--requirements-file"),
    # Credentials in URLs would be written into values.yaml and the pods: refused with the fix.
    (["--script", "{script}", "--index-url", "http://bob:pw@pypi.internal/simple"], "pip.existingSecret"),
    (["--script", "{script}", "--tracking-uri", "http://bob:pw@mlflow:5000"], "mlflow.existingSecret"),
    (["--script", "{script}", "-r", "numpy", "-r", "--index-url=http://x/simple"], "is a pip option"),
    (["--script", "{script}", "-r", "-r /etc/passwd"], "requirements[0] (-r /etc/passwd) is a pip option"),
]


@pytest.mark.parametrize(("args", "words"), BAD_INPUT, ids=[w[:30] for _, w in BAD_INPUT])
def test_bad_input_exits_2_names_the_field_and_writes_nothing(
    args: list[str], words: str, tmp_path: Path, script: Path
) -> None:
    sweep0 = _sweep_file(
        tmp_path,
        {"strategy": "random", "trials": 0, "parameters": [{"name": "a", "type": "int", "min": 1, "max": 2}]},
    )
    huge = {
        "parameters": [
            {"name": "a", "type": "int", "min": 0, "max": 100},
            {"name": "b", "type": "int", "min": 0, "max": 100},
        ]
    }
    sweep_huge = tmp_path / "huge.yaml"
    sweep_huge.write_text(yaml.safe_dump(huge))
    out = tmp_path / "out"
    argv = [a.format(script=script, sweep0=sweep0, sweep_huge=sweep_huge) for a in args]
    result = _cli("train", "r1", *argv, "--render-to", out, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in tmp_path.iterdir() if not p.name.startswith(".helm-mlops-")
    )


ROBUSTNESS = [
    # Values of the wrong type: the schema names them before any Python check uses them.
    (["--set", "gpu.count=two"], "gpu.count: 'two' is not of type 'integer'"),
    (["--set", "gpu=5"], "gpu: 5 is not of type 'object'"),
    (["--set", "resources=5"], "resources: 5 is not of type 'object'"),
    (["--set", "resources.requests=5"], "resources.requests: 5 is not of type 'object'"),
    (["--set", "distributed=true"], "distributed: True is not of type 'object'"),
    (["--set", "sweep=1"], "sweep: 1 is not of type 'object'"),
    (["--set", "distributed.nprocPerNode=x", "--gpus", "1"], "distributed.nprocPerNode: 'x' is not of type"),
    (["--script", "{binary}"], "--script: {binary} is not UTF-8 text"),
    (["-f", "{latin1}"], "--values: {latin1} is not UTF-8 text"),
    (["-f", "{broken}"], "--values ({broken}): not valid YAML (line 2, column 2"),
    (["--sweep", "{sweep_null}"], "`sweep` must be a mapping"),
    (["--sweep", "{sweep_map}"], "sweep.parameters: {{'lr': 1}} is not of type 'array'"),
    (["--sweep", "{sweep_many}"], "sweep.trials: 'many' is not of type 'integer'"),
    (["--sweep", "{sweep_int}"], "sweep.parameters[0] (a): values[0] must be a whole number"),
    # Requests above limits, compared as quantities (the chart's defaults: requests 1/2Gi, limits 2/4Gi).
    (["--cpu", "1", "--set", "resources.requests.cpu=4"], "resources.requests.cpu: the request 4 is above"),
    (["--set", "resources.requests.cpu=2100m"], "the request 2100m is above the limit 2"),
    (
        ["--memory", "1Gi", "--set", "resources.limits.memory=1000Mi"],
        "the request 1Gi is above the limit 1000Mi",
    ),
    (["--schedule", "not a cron"], "cronJob.schedule (--schedule): 'not a cron' is not a cron schedule"),
    (["--schedule", "99 99 * * *"], "minute: 99 is outside 0-59"),
    (["--schedule", "0 3 * * 8"], "day of week: 8 is outside 0-6"),
    (["--schedule", "@often"], "@often is not one of @yearly"),
    (["--set", "image.tag="], "image.tag (--image): the image tag is empty"),
    (["--image", "python:"], "image.tag (--image): the image tag is empty"),
    (["--set-string", "image.tag=3 11"], "'3 11' is not an image tag"),
    (["--script", "{tmp}"], "is a directory, not a file"),
    # The chart's limit (900,000 bytes), named as such: the message said 1 MiB.
    (
        ["--script", "{big}"],
        "--script: big.py is 950,001 bytes: a script travels in a ConfigMap and the chart",
    ),
    (["--set-file", "script.content={big}"], "the script is 950,001 bytes"),
]


@pytest.mark.parametrize(("args", "words"), ROBUSTNESS, ids=[w[:40] for _, w in ROBUSTNESS])
def test_train_refuses_malformed_values_with_exit_2_before_writing(
    args: list[str], words: str, tmp_path: Path, script: Path
) -> None:
    """Issue 15 (9, 13): each of these was a traceback (exit 1), a raw helm error (exit 3) or a
    rendered job Kubernetes refuses. In-process (tests/support/incli.py) to keep it fast."""
    files = {
        "binary": ("train.bin.py", b"\x00\xff\xfe\x00"),
        "latin1": ("latin1.yaml", "a: caf\xe9\n".encode("latin-1")),
        "broken": ("broken.yaml", b"a: [1\nb: 2\n"),
        "sweep_null": ("s1.yaml", b"sweep:\n"),
        "sweep_map": ("s2.yaml", b"parameters: {lr: 1}\n"),
        "sweep_many": (
            "s3.yaml",
            b"strategy: random\ntrials: many\nparameters: [{name: a, type: int, min: 1, max: 3}]\n",
        ),
        "sweep_int": ("s4.yaml", b"parameters: [{name: a, type: int, values: [x, y]}]\n"),
        "big": ("big.py", b"#" * 950_000 + b"\n"),
    }
    names = {"tmp": str(tmp_path)}
    for key, (name, data) in files.items():
        (tmp_path / name).write_bytes(data)
        names[key] = name
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.format(**names) for a in args]
    if "--script" not in argv:
        argv = ["--script", str(script), *argv]
    result = run_cli("train", "r1", *argv, "--render-to", "out", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert words.format(**names) in result.stderr
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no staging left


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "resources.requests.cpu=500m", "--set", "resources.limits.cpu=1"],
        ["--memory", "1Gi", "--set", "resources.limits.memory=1024Mi"],
        ["--schedule", "*/15 0-6,22 1-31/2 jan-mar MON-fri"],
        ["--schedule", "@hourly"],
        ["--schedule", "0 3 ? * 0"],
        ["--image", "registry.local:5000/team/train:1.0_rc-1"],
    ],
)
def test_train_accepts_what_kubernetes_accepts(args: list[str], tmp_path: Path, script: Path) -> None:
    result = run_cli("train", "r1", "--script", script, *args, "--render-to", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "values.yaml").is_file()


def test_render_to_writes_values_and_every_manifest(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "out"
    result = _cli(
        "train", "r1", "--script", script, "--nodes", "2", "--cpu", "2", "--memory", "4Gi", "--render-to", out
    )
    assert result.returncode == 0, result.stderr
    values = yaml.safe_load((out / "values.yaml").read_text())
    assert values["script"]["content"] == "print('train')\n" and values["distributed"]["nodes"] == 2
    kinds = sorted(yaml.safe_load(p.read_text())["kind"] for p in out.glob("[0-9]*.yaml"))
    assert kinds == ["ConfigMap", "ConfigMap", "Job", "NetworkPolicy", "Pod", "Service", "ServiceAccount"]
    docs = [yaml.safe_load(p.read_text()) for p in out.glob("[0-9]*.yaml")]
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "2",
        "memory": "4Gi",
    }
    # A second run does not overwrite a result; rendered elsewhere, it is the same (no rerun nonce).
    again = _cli("train", "r1", "--script", script, "--render-to", out)
    assert again.returncode == 2 and "--render-to" in again.stderr
    out2 = tmp_path / "out2"
    argv: list[str | Path] = ["--nodes", "2", "--cpu", "2", "--memory", "4Gi", "--render-to", out2]
    assert _cli("train", "r1", "--script", script, *argv).returncode == 0
    assert {p.name: p.read_text() for p in out2.iterdir()} == {p.name: p.read_text() for p in out.iterdir()}


def test_sweep_plan_prints_what_the_pods_get(tmp_path: Path) -> None:
    spec = {
        "strategy": "random",
        "trials": 4,
        "seed": 3,
        "parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.1, "scale": "log"}],
    }
    result = _cli("sweep", "plan", "-f", _sweep_file(tmp_path, {"sweep": spec}))
    assert result.returncode == 0, result.stderr
    # Seed 3's four log-uniform draws in [0.001, 0.1], written down once: the pods' launcher draws the
    # same for the same index (test_training_launcher's sweep test runs it), so a change here changes
    # the trials of every seeded sweep and must be deliberate.
    assert result.stdout.splitlines() == [
        "    0  lr=0.008021323526601634",
        "    1  lr=0.027816721594558825",
        "    2  lr=0.06098750237570225",
        "    3  lr=0.018730127791295396",
    ]
    grid = {
        "parameters": [
            {"name": "C", "type": "float", "values": [0.001, 0.05]},
            {"name": "depth", "type": "int", "min": 1, "max": 5, "step": 2},
        ]
    }
    result = _cli("sweep", "plan", "-f", _sweep_file(tmp_path, {"sweep": grid}))
    assert result.returncode == 0, result.stderr
    # Every combination, the first parameter varying slowest.
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["0", "C=0.001", "depth=1"],
        ["1", "C=0.001", "depth=3"],
        ["2", "C=0.001", "depth=5"],
        ["3", "C=0.05", "depth=1"],
        ["4", "C=0.05", "depth=3"],
        ["5", "C=0.05", "depth=5"],
    ]


SWEEP_FILES = [
    ("sweep:\n", "`sweep` must be a mapping"),
    ("sweep: [1, 2]\n", "`sweep` must be a mapping"),
    ("parameters: [lr]\n", "sweep.parameters.0: 'lr' is not of type 'object'"),
    ("parameters: {lr: 1}\n", "sweep.parameters: {'lr': 1} is not of type 'array'"),
    ("strategy: random\ntrials: many\nparameters: [{name: a, type: int, min: 1, max: 3}]\n", "sweep.trials"),
    ("parameters: [{name: a, type: int, min: 1, max: 3, step: two}]\n", "sweep.parameters.0.step"),
    ("parameters: [{name: a, type: categorical, values: 5}]\n", "sweep.parameters.0.values: 5 is not"),
    ("parameters: [{name: a, type: categorical, values: abc}]\n", "sweep.parameters.0.values: 'abc' is not"),
    ("parameters: [{name: a, type: int, values: [x, y]}]\n", "values[0] must be a whole number"),
    ("parameters: [{type: int, min: 1, max: 3}]\n", "'name' is a required property"),
    ("strategy: bayes\nparameters: [{name: a, type: int, min: 1, max: 3}]\n", "'bayes' is not one of"),
    ("parameters: [{name: a, type: int, min: 0, max: 20000000}]\n", "more than 10000 values"),
    ("parameters: [{name: a, type: int, min: 0, max: 1.0e+300}]\n", "more than 10000 values"),
]


@pytest.mark.parametrize(("text", "words"), SWEEP_FILES, ids=[t[:40] for t, _ in SWEEP_FILES])
def test_sweep_plan_and_train_judge_a_sweep_file_alike(
    text: str, words: str, tmp_path: Path, script: Path
) -> None:
    """Issue 15 (10): one judge (the chart's schema, then the pods' sweep code) for `sweep plan -f`,
    `train --sweep` and a values file's `sweep:`; these were tracebacks, or silently read (`bayes` as
    grid, `abc` as three trials), or built 20 million values before counting them."""
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(text)
    plan = run_cli("sweep", "plan", "-f", sweep_file, cwd=tmp_path)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert words in plan.stderr and "Traceback" not in plan.stderr and "Error:" not in plan.stderr
    assert plan.stdout == ""
    train = run_cli(
        "train", "r1", "--script", script, "--sweep", sweep_file, "--render-to", "out", cwd=tmp_path
    )
    assert train.returncode == 2, train.stdout + train.stderr
    assert words in train.stderr
    assert not (tmp_path / "out").exists()


def test_sweep_plan_help_describes_the_format() -> None:
    """The errors' hint sends the user to `sweep plan --help`: it must describe every key."""
    shown = run_cli("sweep", "plan", "--help")
    assert shown.returncode == 0
    for key in ("strategy", "trials", "seed", "parameters", "name", "type", "values", "min, max", "step"):
        assert f"\n    {key}" in shown.stdout or f"\n      {key}" in shown.stdout, key
    for key in ("count", "scale", "objective", "passAsArgs", "10,000 trials", "[min, max]"):
        assert key in shown.stdout
    assert "sweep plan --help" in sweep_space.FORMAT_HINT


# Status from recorded objects -----------------------------------------------------------------------

# Jobs and pods the training-job chart made on the local test cluster, as `kubectl get -o json` printed
# them (tests/fixtures/recorded/README.md names the commands; hack/record-training-objects.sh re-records):
# a 3-trial sweep that completed, a Job whose pod failed, a suspended Job, and a Job whose pod cannot be
# scheduled (active). kwok runs no container, so the pods carry no termination message and never stay
# Running: where a test needs those, it writes them into a recorded pod and says so.
RECORDED = json.loads((REPO / "tests" / "fixtures" / "recorded" / "training-jobs.json").read_text())
NOW = datetime(2026, 11, 23, 12, 10, 0, tzinfo=UTC)


def _recorded_job(case: str) -> dict[str, Any]:
    job: dict[str, Any] = copy.deepcopy(RECORDED[case]["job"])
    return job


def _recorded_pods(case: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = copy.deepcopy(RECORDED[case]["pods"])
    index = "batch.kubernetes.io/job-completion-index"  # Indexed Jobs' pods only
    return sorted(pods, key=lambda p: p["metadata"]["annotations"].get(index, ""))


def _pod(
    name: str, index: str, phase: str, message: str | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """The recorded sweep pod of completion index `index`, renamed, created at 12:0<index>, in `phase`,
    its container terminated with `message` (what the launcher writes) or running."""
    pod = _recorded_pods("sweep")[int(index)]
    pod["metadata"]["name"] = name
    pod["metadata"]["creationTimestamp"] = f"2026-11-23T12:0{index}:00Z"
    pod["metadata"]["labels"].update(labels or {})
    [status] = pod["status"]["containerStatuses"]
    status["state"] = {"terminated": {"exitCode": 0, "message": message}} if message else {"running": {}}
    pod["status"]["phase"] = phase
    return pod


def test_the_recordings_are_what_they_stand_for() -> None:
    sweep, pods = _recorded_job("sweep"), _recorded_pods("sweep")
    assert sweep["spec"]["completions"] == 3 and sweep["status"]["succeeded"] == 3
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"] * 3
    assert [p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods] == [
        "0",
        "1",
        "2",
    ]
    [failed] = _recorded_pods("failing")
    assert failed["status"]["phase"] == "Failed"
    assert _recorded_job("suspended")["spec"]["suspend"] is True
    assert _recorded_job("waiting")["status"]["active"] == 1


def test_job_phases() -> None:
    assert job_phase(_recorded_job("sweep")) == "Complete"
    assert job_phase(_recorded_job("failing")) == "Failed"
    assert job_phase(_recorded_job("waiting")) == "Running"
    assert job_phase(_recorded_job("suspended")) == "Suspended"
    # Between the Job controller's two writes: FailureTarget set while the pods terminate, Failed not yet.
    failing = _recorded_job("failing")
    failing["status"]["conditions"] = [c for c in failing["status"]["conditions"] if c["type"] != "Failed"]
    assert job_phase(failing) == "Failing"
    # Before the controller has written any status.
    created = _recorded_job("waiting")
    del created["status"]
    assert job_phase(created) == "Pending"


def test_status_summary_with_mlflow_runs_and_sweep_id() -> None:
    job, pods = _recorded_job("sweep"), _recorded_pods("sweep")
    job["status"].update(startTime="2026-11-23T12:00:00Z", completionTime="2026-11-23T12:04:05Z")
    message = json.dumps({"exitCode": 0, "trial": 1, "mlflowRunId": "abc", "mlflowExperimentId": "7"})
    # What the launcher writes to /dev/termination-log; kwok's pods have none.
    pods[1]["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = message
    pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = "not json"
    summary = summarize_job(job, pods, NOW)
    assert (summary.phase, summary.succeeded, summary.completions, summary.duration) == (
        "Complete",
        3,
        3,
        "4m05s",
    )
    assert summary.runs == ["http://mlflow:5000/#/experiments/7/runs/abc (trial 1)"]
    assert summary.sweep_id == job["metadata"]["uid"]
    text = "\n".join(format_summaries([summary]))
    assert "3/3" in text and f"sweep id: {job['metadata']['uid']}" in text and "runs/abc" in text
    waiting = _recorded_job("waiting")
    waiting["status"]["startTime"] = "2026-11-23T11:00:00Z"
    running = summarize_job(waiting, _recorded_pods("waiting"), NOW)
    assert running.duration == "1h10m00s" and running.phase == "Running"
    assert summarize_job(_recorded_job("failing"), _recorded_pods("failing"), NOW).phase == "Failed"


def test_status_links_the_run_of_a_running_pod_from_its_log_line() -> None:
    """While a pod runs there is no termination message: the launcher's `mlflow-run` log line names
    the run (issue 20, item 7)."""
    log = (
        "[helm-mlops] installing requirements from /x/requirements.txt\n"
        "Collecting humanize\n"
        '[helm-mlops] mlflow-run {"mlflowRunId": "r1", "mlflowExperimentId": "3", "trial": 2}\n'
        "epoch 1\n"
    )
    running = _pod("p-2", "2", "Running")
    assert mlflow_links([running]) == []
    assert mlflow_links([running], {"p-2": log}) == ["http://mlflow:5000/#/experiments/3/runs/r1 (trial 2)"]
    assert mlflow_links([running], {"p-2": "[helm-mlops] mlflow-run {not json\n"}) == []
    summary = summarize_job(_recorded_job("waiting"), [running], NOW, {"p-2": log})
    assert summary.runs == ["http://mlflow:5000/#/experiments/3/runs/r1 (trial 2)"]


def test_status_links_the_run_of_an_earlier_container_after_an_onfailure_restart() -> None:
    pod = _pod("p-0", "0", "Running")
    message = json.dumps({"exitCode": 1, "mlflowRunId": "old", "mlflowExperimentId": "3"})
    pod["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"exitCode": 1, "message": message}}
    assert mlflow_links([pod]) == ["http://mlflow:5000/#/experiments/3/runs/old"]
    line = '[helm-mlops] mlflow-run {"mlflowRunId": "new", "mlflowExperimentId": "3"}\n'
    assert mlflow_links([pod], {"p-0": line}) == [
        "http://mlflow:5000/#/experiments/3/runs/new",
        "http://mlflow:5000/#/experiments/3/runs/old",
    ]


def test_status_reads_the_start_of_running_pods_logs_only() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    class Core:
        def read_namespaced_pod_log(self, name: str, namespace: str, **kw: Any) -> str:
            calls.append((name, kw))
            if name == "p-forbidden":
                raise ToolError("forbidden")
            return '[helm-mlops] mlflow-run {"mlflowRunId": "r", "mlflowExperimentId": "1"}\n'

    class FakeKube:
        def core(self) -> Core:
            return Core()

        def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

    pods = [
        _pod("p-run", "0", "Running"),
        _pod("p-done", "1", "Succeeded", "{}"),
        _pod("p-forbidden", "2", "Running"),
    ]
    logs = running_logs(FakeKube(), "ml", pods)  # type: ignore[arg-type]
    assert set(logs) == {"p-run"}
    assert [c[0] for c in calls] == ["p-run", "p-forbidden"]
    assert calls[0][1] == {"container": "train", "limit_bytes": RUN_LINE_BYTES}


def test_pytorchjob_summary_counts_pods() -> None:
    obj = {
        "kind": "PyTorchJob",
        "metadata": {"name": "r-training-job", "creationTimestamp": "2026-11-23T12:00:00Z"},
        "status": {
            "conditions": [{"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}],
            "startTime": "2026-11-23T12:00:00Z",
        },
    }
    pods = [_pod("m", "0", "Running"), _pod("w0", "0", "Succeeded", "{}"), _pod("w1", "1", "Failed", "{}")]
    summary = summarize_custom(obj, pods, NOW)
    assert (summary.phase, summary.active, summary.succeeded, summary.failed) == ("Running", 1, 1, 1)


# Logs: selection, formatting and the follow loop ---------------------------------------------------


def test_rank_and_pod_selection() -> None:
    pods = [_pod("j-1-a", "1", "Running"), _pod("j-0-a", "0", "Failed"), _pod("j-0-b", "0", "Running")]
    pods[2]["metadata"]["creationTimestamp"] = "2026-11-23T12:09:00Z"  # the retry of rank 0
    assert [p["metadata"]["name"] for p in select_pods(pods, "training-job", all_pods=True)] == [
        "j-0-a",
        "j-1-a",
        "j-0-b",
    ]
    assert [p["metadata"]["name"] for p in select_pods(pods, "training-job", all_pods=False)] == ["j-0-b"]
    assert select_pods(pods, "other-job", all_pods=True) == []
    kubeflow = _pod(
        "pj-worker-2",
        "0",
        "Running",
        labels={"training.kubeflow.org/replica-type": "Worker", "training.kubeflow.org/replica-index": "2"},
    )
    del kubeflow["metadata"]["annotations"]
    assert pod_rank(kubeflow) == "worker-2"


def test_lines_split_across_chunks_are_joined() -> None:
    pod = _pod("j-0-a", "0", "Running")
    lines = list(format_lines(pod, [b"epoch 1 lo", b"ss 0.5\nepoch 2", b" loss 0.4\n\xff tail"]))
    assert lines == [
        "[j-0-a rank 0] epoch 1 loss 0.5",
        "[j-0-a rank 0] epoch 2 loss 0.4",
        "[j-0-a rank 0] \ufffd tail",
    ]


def test_follow_picks_up_pods_that_start_later_and_stops_when_the_job_is_done() -> None:
    rank0, rank1 = _pod("j-0-a", "0", "Running"), _pod("j-1-a", "1", "Pending")
    rank1["status"]["containerStatuses"] = [{"name": "train", "state": {"waiting": {}}}]
    later = _pod("j-1-a", "1", "Running")
    listings = iter([[rank0, rank1], [rank0, rank1], [rank0, later]])
    state = {"calls": 0}

    def list_pods() -> list[dict[str, Any]]:
        return next(listings, [rank0, later])

    def stream(name: str, follow: bool) -> Iterable[bytes]:
        assert follow  # running pods are followed
        return [f"hello from {name}\n".encode()]

    def job_state() -> str:
        state["calls"] += 1
        return "done" if state["calls"] > 2 else "running"

    follower = LogFollower(
        list_pods, stream, job_state, "training-job", all_pods=True, follow=True, poll=0.05
    )
    assert list(follower.lines()) == ["[j-0-a rank 0] hello from j-0-a", "[j-1-a rank 1] hello from j-1-a"]


def test_following_a_missing_job_is_a_user_error() -> None:
    from generator.errors import UserError

    follower = LogFollower(
        lambda: [], lambda n, f: [], lambda: "missing", "nope", all_pods=False, follow=True, poll=0.01
    )
    with pytest.raises(UserError) as err:
        list(follower.lines())
    assert "COMPONENT" in str(err.value) and "nope" in str(err.value)


def test_a_hanging_stream_ends_after_the_job_finished() -> None:
    import threading

    release = threading.Event()

    def stream(name: str, follow: bool) -> Iterable[bytes]:
        yield b"started\n"
        release.wait(30)  # a stream the server never closes

    follower = LogFollower(
        lambda: [_pod("j-0-a", "0", "Running")],
        stream,
        lambda: "done",
        "training-job",
        all_pods=False,
        follow=True,
        poll=0.05,
        linger=0.3,
    )
    lines = list(follower.lines())
    assert lines[0] == "[j-0-a rank 0] started"
    # ... and says so: nothing is cut silently
    assert lines[1:] == [
        "[j-0-a rank 0] (log stream still open and silent 0.3s after the job finished: stopped following it; "
        "`kubectl logs j-0-a` shows whatever came later)"
    ]
    release.set()


# Inference services in `helm-mlops status` ------------------------------------------------------------


def test_inference_service_summaries() -> None:
    from generator.kube.status import format_services, summarize_deployment, summarize_isvc

    dep = {
        "metadata": {"name": "r-inference-service", "labels": {"helm-mlops.io/runtime": "fastapi"}},
        "spec": {"replicas": 3},
        "status": {"replicas": 3, "readyReplicas": 2},
    }
    crashing = {
        "status": {
            "phase": "Running",
            "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
        }
    }
    assert summarize_deployment(dep, [crashing]).phase == "Failed"
    assert summarize_deployment(dep, []).phase == "Pending"
    ok = summarize_deployment({**dep, "status": {"readyReplicas": 3}}, [])
    assert (ok.ready, ok.desired, ok.phase, ok.runtime) == (3, 3, "Running", "fastapi")
    isvc = {
        "metadata": {"name": "r-inference-service"},
        "spec": {"predictor": {"minReplicas": 2}},
        "status": {"url": "http://iris.ml.example.com", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    text = "\n".join(format_services([ok, summarize_isvc(isvc)]))
    assert "3/3  Running" in text and "kserve" in text and "http://iris.ml.example.com" in text


def test_render_to_refuses_links_and_files(tmp_path: Path, script: Path) -> None:
    """A dangling link used to create directories at its target and then crash; a file was a traceback."""
    target = tmp_path / "elsewhere" / "deep"
    link = tmp_path / "link"
    link.symlink_to(target)  # dangling
    a_file = tmp_path / "file"
    a_file.write_text("keep me\n")
    cases = [(link, "is a symbolic link"), (a_file, "is a file"), (a_file / "sub", "cannot create")]
    for out, words in cases:
        result = _cli("train", "r1", "--script", script, "--render-to", out)
        assert result.returncode == 2, result.stderr
        assert "--render-to" in result.stderr and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "elsewhere").exists() and a_file.read_text() == "keep me\n"


# `train` again: a new run --------------------------------------------------------------------------


def _helm_with_history(
    stdout: bytes, returncode: int = 0, stderr: bytes = b""
) -> tuple[Helm, list[list[str]]]:
    calls: list[list[str]] = []

    def runner(argv: list[str], stdin: bytes | None) -> Completed:
        calls.append(argv)
        return Completed(returncode, stdout, stderr)

    return Helm(HelmBinary("helm", "v4.1.4"), runner=runner), calls


def test_train_again_sets_a_fresh_rerun_unless_the_user_did() -> None:
    revisions = json.dumps([{"revision": 1, "status": "superseded"}, {"revision": 2, "status": "deployed"}])
    helm, calls = _helm_with_history(revisions.encode())
    assert rerun_nonce(helm, "fit", "ml", {"script": {}}) == "3"  # the revision this install becomes
    assert calls[0][1:3] == ["history", "fit"] and "ml" in calls[0]
    assert rerun_nonce(helm, "fit", "ml", {"rerun": "mine"}) is None  # --set rerun=... wins
    assert len(calls) == 1
    first, _ = _helm_with_history(b"", 1, b"Error: release: not found\n")
    assert rerun_nonce(first, "fit", "ml", {}) is None  # a first install: nothing to tell apart
    broken, _ = _helm_with_history(b"", 1, b"Error: Kubernetes cluster unreachable\n")
    with pytest.raises(ToolError):
        rerun_nonce(broken, "fit", "ml", {})
