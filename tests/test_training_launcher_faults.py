"""The training launcher under failure (issue 20): termination signals with the launcher as PID 1 of
its own PID namespace (as in a container, where a signal without a handler is dropped), and MLflow
faults from a real `mlflow server` fronted by a fault-injecting proxy, stopped, or refusing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from tests.support.charts import CHARTS, template
from tests.support.faultproxy import FaultProxy, fault_proxy
from tests.support.podrun import LocalPod
from tests.support.servers import free_port, mlflow_server

pytestmark = pytest.mark.real
CHART = CHARTS / "training-job"
MLFLOW_HOST = "mlflow.ml.svc:5000"
UID_FIELD = "metadata.labels['batch.kubernetes.io/controller-uid']"


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture
def proxy(tracking: str) -> Iterator[FaultProxy]:
    with fault_proxy(tracking) as p:
        yield p


def _unshare_ok() -> bool:
    try:
        out = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", "echo $$"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "1"


# This machine and CI run as root, where `unshare --pid` works: under CI=true a missing namespace fails
# the test rather than skipping it silently.
needs_pid_ns = pytest.mark.skipif(
    not _unshare_ok() and os.environ.get("CI") != "true", reason="needs `unshare --pid --fork` (root)"
)


def _render(tmp_path: Path, values: dict[str, Any]) -> tuple[list[dict[str, Any]], Any, Any]:
    docs = template(CHART, values=values, tmp_dir=tmp_path)
    job = next(d for d in docs if d["kind"] == "Job")
    spec = job["spec"]["template"]["spec"]
    return docs, spec, spec["containers"][0]


def _pod(docs: list[dict[str, Any]], root: Path, mlflow_url: str | None = None, **env: str) -> LocalPod:
    root.mkdir(parents=True, exist_ok=True)
    return LocalPod(
        docs,
        root,
        host_map={MLFLOW_HOST: mlflow_url.removeprefix("http://")} if mlflow_url else {},
        field_refs={"metadata.name": f"pod-{root.name}", UID_FIELD: env.pop("uid", f"uid-{root.name}")},
        extra_env={"HELM_MLOPS_TERMINATION_LOG": str(root / "termination-log"), **env},
    )


class Pid1:
    """The pod's command as PID 1 of a new PID namespace; signals go to that PID 1 from outside,
    as the kubelet sends them (a signal PID 1 has no handler for is dropped)."""

    def __init__(self, pod: LocalPod, spec: Any, container: Any, log: Path) -> None:
        argv, env = pod.command(spec, container)
        self.log = log
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", *argv],
            env=env,
            cwd=pod.cwd(container),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self._init_pid()

    def _init_pid(self) -> int:
        deadline = time.monotonic() + 10
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        while time.monotonic() < deadline:
            text = children.read_text().split() if children.exists() else []
            if text:
                return int(text[0])
            time.sleep(0.02)
        raise AssertionError("unshare started no child")

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert self.proc.poll() is None, (
                f"exited {self.proc.returncode} before {needle!r}:\n{self.text()}"
            )
            assert time.monotonic() < deadline, f"no {needle!r} in:\n{self.text()}"
            time.sleep(0.05)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"still running {timeout}s later:\n{self.text()}") from None


def _runs(tracking: str, experiment: str) -> list[Any]:
    client = mlflow.MlflowClient(tracking)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    return list(client.search_runs([exp.experiment_id]))


def _tracked(script: str, experiment: str, **extra: Any) -> dict[str, Any]:
    return {
        "script": {"content": script},
        "mlflow": {"trackingUri": f"http://{MLFLOW_HOST}", "experimentName": experiment},
        **extra,
    }


MARKED_SCRIPT = "import os\nopen(os.environ['MARKER'], 'w').write('the training ran')\n"


# 1. SIGTERM before the training starts ---------------------------------------------------------------


@pytest.fixture
def silent_index() -> Iterator[str]:
    """A package index that accepts connections and never answers: pip waits (a slow install)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/simple"
    finally:
        sock.close()


def _wait_file(path: Path, pod: Pid1, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline and pod.proc.poll() is None, pod.text()
        time.sleep(0.05)


@needs_pid_ns
def test_sigterm_during_pip_install_stops_pid1_and_never_starts_the_script(
    tmp_path: Path, silent_index: str
) -> None:
    values = {
        "script": {"content": MARKED_SCRIPT},
        "requirements": ["humanize"],
        "pip": {"indexUrl": silent_index},
    }
    docs, spec, container = _render(tmp_path, values)
    marker = tmp_path / "marker"
    pod = Pid1(_pod(docs, tmp_path / "pod", MARKER=str(marker)), spec, container, tmp_path / "pod.log")
    pod.wait_for("installing requirements")
    time.sleep(1)
    started = time.monotonic()
    pod.signal()
    assert pod.wait(timeout=20) == 143, pod.text()
    assert time.monotonic() - started < 10
    assert not marker.exists(), "the script started after the termination request"
    assert "not started" in pod.text()
    assert json.loads((tmp_path / "pod" / "termination-log").read_text())["exitCode"] == 143


@needs_pid_ns
def test_sigterm_while_waiting_for_mlflow_stops_and_says_where_it_waited(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    docs, spec, container = _render(tmp_path, _tracked(MARKED_SCRIPT, "never"))
    marker = tmp_path / "marker"
    pod = Pid1(_pod(docs, tmp_path / "pod", down, MARKER=str(marker)), spec, container, tmp_path / "pod.log")
    pod.wait_for(f"waiting for MLflow at {down}")
    time.sleep(1)
    pod.signal()
    assert pod.wait(timeout=15) == 143, pod.text()
    assert not marker.exists(), "the script started after the termination request"


SLEEPER = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, {handler})\n"
    "open(os.environ['MARKER'], 'w').close()\n"
    "time.sleep(120)\n"
)


@needs_pid_ns
def test_two_quick_sigterms_keep_the_launcher_log_lines_whole(tracking: str, tmp_path: Path) -> None:
    # The script's handler ignores a repeated SIGTERM (the launcher forwards each one): a second one
    # during its interpreter's shutdown would otherwise kill it with 143.
    script = SLEEPER.format(handler="lambda *a: (signal.signal(signal.SIGTERM, signal.SIG_IGN), sys.exit(7))")
    docs, spec, container = _render(tmp_path, _tracked(script, "two-sigterms"))
    marker = tmp_path / "marker"
    pod = Pid1(
        _pod(docs, tmp_path / "pod", tracking, MARKER=str(marker)), spec, container, tmp_path / "pod.log"
    )
    _wait_file(marker, pod)
    pod.signal()
    pod.signal()
    assert pod.wait(timeout=30) == 7, pod.text()
    lines = [line for line in pod.text().splitlines() if "[helm-mlops]" in line]
    assert lines, pod.text()
    for line in lines:
        assert line.startswith("[helm-mlops] ") and line.count("[helm-mlops]") == 1, pod.text()
    assert sum("received SIGTERM" in line for line in lines) == 1, pod.text()
    [run] = _runs(tracking, "two-sigterms")
    assert run.info.status == "KILLED", pod.text()  # the pod was asked to stop


@needs_pid_ns
def test_a_script_that_ignores_sigterm_is_killed_in_time_to_close_its_run(
    tracking: str, tmp_path: Path
) -> None:
    script = SLEEPER.format(handler="signal.SIG_IGN")
    values = _tracked(script, "ignores-sigterm", job={"terminationGracePeriodSeconds": 9})
    docs, spec, container = _render(tmp_path, values)
    marker = tmp_path / "marker"
    pod = Pid1(
        _pod(docs, tmp_path / "pod", tracking, MARKER=str(marker)), spec, container, tmp_path / "pod.log"
    )
    _wait_file(marker, pod)
    started = time.monotonic()
    pod.signal()
    code = pod.wait(timeout=20)
    assert time.monotonic() - started < 9, "the kubelet would have SIGKILLed the pod first"
    assert code == 137, pod.text()
    [run] = _runs(tracking, "ignores-sigterm")
    assert run.info.status == "KILLED"


# 2. MLflow runs always end ---------------------------------------------------------------------------


def _run(pod: LocalPod, spec: Any, container: Any) -> subprocess.CompletedProcess[str]:
    return pod.run(spec, container, timeout=240)


def test_a_503_when_closing_is_retried_and_the_run_fails(
    tracking: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    script = "import sys\nsys.exit(3)\n"
    docs, spec, container = _render(tmp_path, _tracked(script, "close-503"))
    proxy.add("runs/get", 503, '{"error_code": "TEMPORARILY_UNAVAILABLE"}', times=2)
    result = _run(_pod(docs, tmp_path / "pod", proxy.url), spec, container)
    assert result.returncode == 3, result.stderr
    [run] = _runs(tracking, "close-503")
    assert run.info.status == "FAILED"
    assert proxy.count("runs/get", 503) == 2 and "retrying" in result.stderr


def test_mlflow_down_while_the_script_runs_still_ends_the_run(
    tracking: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    script = "import os, time\nopen(os.environ['MARKER'], 'w').close()\ntime.sleep(2)\n"
    docs, spec, container = _render(tmp_path, _tracked(script, "outage"))
    marker = tmp_path / "marker"
    pod = _pod(docs, tmp_path / "pod", proxy.url, MARKER=str(marker))
    argv, env = pod.command(spec, container)
    proc = subprocess.Popen(argv, env=env, cwd=pod.cwd(container), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proxy.down = True  # the server goes away while the script runs, and after it ended
    time.sleep(5)
    proxy.down = False
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    [run] = _runs(tracking, "outage")
    assert run.info.status == "FINISHED", err
    assert proxy.count("runs/get", 0) >= 1, "the outage did not reach the closing"


def test_a_500_on_the_trial_params_leaves_no_orphan_run(
    tracking: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    sweep = {"enabled": True, "parameters": [{"name": "lr", "type": "float", "values": [0.1, 0.2]}]}
    docs, spec, container = _render(tmp_path, _tracked("print('ok')\n", "log-batch-500", sweep=sweep))
    proxy.add("runs/log-batch", 500, '{"error_code": "INTERNAL_ERROR"}', times=1)
    result = _run(_pod(docs, tmp_path / "pod", proxy.url, JOB_COMPLETION_INDEX="0"), spec, container)
    assert result.returncode == 0, result.stderr
    [run] = _runs(tracking, "log-batch-500")
    assert run.data.tags["helm-mlops.trial"] == "0" and run.data.params["lr"] == "0.1"
    assert run.info.status == "FINISHED"


def test_the_next_attempt_of_a_trial_ends_the_run_an_earlier_attempt_left_running(
    tracking: str, tmp_path: Path
) -> None:
    # Attempt 1 dies with its pod (SIGKILL to the whole pod: the launcher cannot close the run).
    script = (
        "import os, signal\n"
        "if os.environ.get('DIE'):\n"
        "    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "print('done')\n"
    )
    docs, spec, container = _render(tmp_path, _tracked(script, "attempts"))
    first = _run(_pod(docs, tmp_path / "a1", tracking, uid="job-7", DIE="1"), spec, container)
    assert first.returncode == -signal.SIGKILL
    [left] = _runs(tracking, "attempts")
    assert left.info.status == "RUNNING"
    second = _run(_pod(docs, tmp_path / "a2", tracking, uid="job-7"), spec, container)
    assert second.returncode == 0, second.stderr
    runs = {r.info.run_id: r for r in _runs(tracking, "attempts")}
    assert runs[left.info.run_id].info.status == "FAILED"
    [new] = [r for r in runs.values() if r.info.run_id != left.info.run_id]
    assert new.info.status == "FINISHED"
    assert new.data.tags["helm-mlops.attempt"] == "2" and left.data.tags["helm-mlops.attempt"] == "1"
    # Another Job (another uid) is another trial: its runs are left alone.
    assert new.data.tags["helm-mlops.job-uid"] == "job-7"


# 8. Exit codes above 128 ---------------------------------------------------------------------------

CRASHES = {
    "abort": ("import os\nos.abort()\n", 134, "FAILED"),
    "segfault": ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", 139, "FAILED"),
    "exit-200": ("import sys\nsys.exit(200)\n", 200, "FAILED"),
    "sigkill": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", 137, "KILLED"),
    "sigterm": ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n", 143, "KILLED"),
}


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_exit_codes_above_128_are_killed_only_for_sigkill_and_sigterm(
    case: str, tracking: str, tmp_path: Path
) -> None:
    script, code, status = CRASHES[case]
    docs, spec, container = _render(tmp_path, _tracked(script, f"exit-{case}"))
    result = _run(_pod(docs, tmp_path / "pod", tracking), spec, container)
    assert result.returncode == code, result.stderr
    [run] = _runs(tracking, f"exit-{case}")
    assert run.info.status == status


# 9. MLflow at start ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404])
def test_mlflow_refusing_fails_at_once_with_the_servers_message(
    status: int, proxy: FaultProxy, tmp_path: Path
) -> None:
    body = json.dumps({"error_code": "PERMISSION_DENIED", "message": f"user bob may not read ({status})"})
    if status == 404:  # not MLflow's RESOURCE_DOES_NOT_EXIST (a missing experiment): a wrong path
        body = f"404 page not found: user bob may not read ({status})"
    proxy.add("experiments/get-by-name", status, body, times=100)
    docs, spec, container = _render(tmp_path, _tracked(MARKED_SCRIPT, "refused"))
    marker = tmp_path / "marker"
    started = time.monotonic()
    result = _run(_pod(docs, tmp_path / "pod", proxy.url, MARKER=str(marker)), spec, container)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 30
    assert f"user bob may not read ({status})" in result.stderr
    assert not marker.exists()


def test_a_deleted_experiment_fails_with_the_servers_message(tracking: str, tmp_path: Path) -> None:
    client = mlflow.MlflowClient(tracking)
    client.delete_experiment(client.create_experiment("deleted-exp"))
    docs, spec, container = _render(tmp_path, _tracked(MARKED_SCRIPT, "deleted-exp"))
    marker = tmp_path / "marker"
    result = _run(_pod(docs, tmp_path / "pod", tracking, MARKER=str(marker)), spec, container)
    assert result.returncode == 1, result.stderr
    assert "deleted" in result.stderr.split("refused", 1)[-1], result.stderr  # the server's own words
    assert not marker.exists()


def test_mlflow_5xx_at_start_is_waited_out(tracking: str, proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.add("/health", 503, "starting", times=2)
    proxy.add("runs/create", 500, '{"error_code": "INTERNAL_ERROR"}', times=2)
    docs, spec, container = _render(tmp_path, _tracked("print('ok')\n", "start-5xx"))
    result = _run(_pod(docs, tmp_path / "pod", proxy.url), spec, container)
    assert result.returncode == 0, result.stderr
    assert f"waiting for MLflow at {proxy.url}" in result.stderr
    [run] = _runs(tracking, "start-5xx")
    assert run.info.status == "FINISHED"


def test_mlflow_unreachable_fails_before_the_script_after_the_wait(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    docs, spec, container = _render(tmp_path, _tracked(MARKED_SCRIPT, "down"))
    marker = tmp_path / "marker"
    pod = _pod(docs, tmp_path / "pod", down, MARKER=str(marker), HELM_MLOPS_MLFLOW_WAIT="4")
    result = _run(pod, spec, container)
    assert result.returncode == 1, result.stderr
    assert f"waiting for MLflow at {down}" in result.stderr and "not reachable after 4s" in result.stderr
    assert not marker.exists()


def test_a_tracking_uri_with_credentials_is_basic_auth_and_never_printed(
    tracking: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.basic_auth = ("bob", "s3cr3t-pw")
    script = (
        "import mlflow, os\n"
        "print('uri', os.environ['MLFLOW_TRACKING_URI'])\n"
        "with mlflow.start_run():\n"
        "    mlflow.log_metric('m', 1.0)\n"
    )
    docs, spec, container = _render(tmp_path, _tracked(script, "basic-auth"))
    host = proxy.url.removeprefix("http://")
    pod = _pod(docs, tmp_path / "pod", None, MLFLOW_TRACKING_URI=f"http://bob:s3cr3t-pw@{host}")
    result = _run(pod, spec, container)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "s3cr3t-pw" not in result.stdout + result.stderr
    [run] = _runs(tracking, "basic-auth")
    assert run.info.status == "FINISHED" and run.data.metrics["m"] == 1.0


# 7. The run id while running, and a short termination message ------------------------------------


def test_the_run_is_named_on_a_well_known_log_line_and_the_message_stays_short(
    tracking: str, tmp_path: Path
) -> None:
    big = "x" * 5000  # a large categorical value: the termination message must stay valid JSON
    sweep = {"enabled": True, "parameters": [{"name": "cfg", "type": "categorical", "values": [big]}]}
    values = _tracked("print('ok')\n", "short-message", sweep=sweep)
    docs, spec, container = _render(tmp_path, values)
    pod = _pod(docs, tmp_path / "pod", tracking, JOB_COMPLETION_INDEX="0")
    result = _run(pod, spec, container)
    assert result.returncode == 0, result.stderr
    [run] = _runs(tracking, "short-message")
    text = (tmp_path / "pod" / "termination-log").read_text()
    assert len(text) < 4000
    expected = {"mlflowRunId": run.info.run_id, "mlflowExperimentId": run.info.experiment_id, "trial": 0}
    assert json.loads(text) == {"exitCode": 0, **expected}
    from generator.kube.status import run_line_data

    assert run_line_data(result.stderr) == [expected]  # what `helm-mlops status` reads while it runs


def test_helm_test_pod_reports_mlflow_down_without_a_traceback(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    docs = template(CHART, values=_tracked("print('ok')\n", "check"), tmp_dir=tmp_path)
    spec = next(d for d in docs if d["kind"] == "Pod")["spec"]
    pod = _pod(docs, tmp_path / "pod", down, HELM_MLOPS_MLFLOW_WAIT="2")
    result = pod.run(spec, spec["containers"][0], timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL: MLflow at" in result.stdout and "not reachable" in result.stdout
    assert "Traceback" not in result.stderr


def _launcher_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("hm_launcher", CHART / "files" / "launcher.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("records", "signalled", "expected"),
    [
        ({0: "0 signalled", 1: "3"}, False, 3),  # a rank failed by itself: its code
        ({0: "1 signalled", 1: "0 signalled"}, False, None),  # stopped by torchrun only: torchrun's
        ({0: "7 signalled", 1: "7 signalled"}, True, 7),  # SIGTERM: the workers' own code
        ({0: "0 signalled", 1: "0 signalled"}, True, 0),  # handled SIGTERM and exited 0: 0
        ({}, True, None),
    ],
)
def test_worker_exit_codes_decide_the_pods_code(
    records: dict[int, str],
    signalled: bool,
    expected: int | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HELM_MLOPS_STATE_DIR", str(tmp_path))
    launcher = _launcher_module()
    for rank, text in records.items():
        (launcher.exit_files() / f"rank-{rank}").write_text(text)
    assert launcher.failing_worker_code(signalled) == expected


def test_credentials_in_a_uri_are_split_and_redacted() -> None:
    launcher = _launcher_module()
    assert launcher.split_credentials("http://bob:p%40ss@mlflow:5000/x") == (
        "http://mlflow:5000/x",
        "bob",
        "p@ss",
    )
    assert launcher.split_credentials("http://mlflow:5000") == ("http://mlflow:5000", None, None)
    assert launcher.redact("https://bob:pw@mlflow.example.com/") == "https://***@mlflow.example.com/"
    assert launcher.run_status(0, False) == "FINISHED"
    assert [launcher.run_status(c, False) for c in (1, 134, 139, 200, 137, 143)] == [
        "FAILED",
        "FAILED",
        "FAILED",
        "FAILED",
        "KILLED",
        "KILLED",
    ]
    assert launcher.run_status(7, True) == "KILLED"
