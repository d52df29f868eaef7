"""`ui` and `predict` for real, through the API server's port-forward.

A generated stack (MLflow, an inference service serving a real ONNX model inline, and one scaled to
zero) is installed into a fresh namespace of the kwok cluster. kwok's PortForward objects (enabled
by hack/cluster.sh) make each pod's `portforward` subresource reach a real process on this machine:
the MLflow pod a real `mlflow server`, the inference pod a real `helm-mlops runtime serve` of the same
model file. So `helm-mlops ui` and `helm-mlops predict` go CLI -> kube-apiserver -> kwok's kubelet
endpoint -> the real servers, and their answers are compared with the servers' own (MLflow read back
directly, the model run in onnxruntime here)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.support.charts import helm_path
from tests.support.cluster import Cluster
from tests.support.servers import free_port, mlflow_server, serve

pytestmark = [pytest.mark.e2e, pytest.mark.real]
EXE = str(Path(sys.executable).parent / "helm-mlops")
RELEASE = "pf"
STACK = "quickstart"  # the preset's stack name prefixes every object: quickstart-mlflow, quickstart-iris
X, Y = load_iris(return_X_y=True)
ROWS = X[::15]  # 10 rows from all three classes


@dataclass(frozen=True)
class Installed:
    cluster: Cluster
    namespace: str
    mlflow_url: str  # the real server, reached directly
    model: Path
    expected: np.ndarray  # onnxruntime's answer for ROWS

    def cli(self, *args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        """helm-mlops in the test namespace: -n, or HELM_NAMESPACE as helm passes it to plugins."""
        return subprocess.run(
            [EXE, *args, *([] if "HELM_NAMESPACE" in env else ["-n", self.namespace])],
            env={**self.cluster.env, **env},
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _onnx_model(path: Path) -> np.ndarray:
    import onnxruntime
    from skl2onnx import to_onnx

    model = LogisticRegression(max_iter=500).fit(X, Y)
    path.write_bytes(to_onnx(model, X[:1].astype(np.float32), options={"zipmap": False}).SerializeToString())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: ROWS.astype(np.float32)})[0])


def _pod(cluster: Cluster, namespace: str, name_label: str) -> str:
    pods = cluster.get("pods", "-n", namespace, "-l", f"app.kubernetes.io/name={name_label}")["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return str(pods[0]["metadata"]["name"])


def _port_forward(cluster: Cluster, namespace: str, pod: str, port: int) -> None:
    """kwok: every port of `pod` forwards to 127.0.0.1:`port`."""
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "PortForward",
                "metadata": {"name": pod, "namespace": namespace},
                "spec": {"forwards": [{"target": {"address": "127.0.0.1", "port": port}}]},
            }
        ),
    )


def _wait_forwarded(cluster: Cluster, namespace: str, service: str, path: str) -> None:
    """Until kwok has picked the PortForward up: the adapter itself, in process, gets an answer."""
    from generator.kube.client import Kube
    from generator.kube.portforward import backend, forward

    kube = Kube(cluster.kubeconfig)
    target = backend(kube, namespace, service)
    deadline = time.monotonic() + 30
    with forward(kube, target) as tunnel:
        while True:
            try:
                if requests.get(tunnel.url + path, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{service}{path} never answered through the port-forward: {tunnel.errors}"
                )
            time.sleep(0.5)


@pytest.fixture(scope="module")
def installed(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    if "portforwards.kwok.x-k8s.io" not in cluster.kubectl("get", "crd", "-o", "name").stdout:
        pytest.fail(
            "the test cluster's kwok does not serve PortForward objects: it was started by an older "
            "hack/cluster.sh; recreate it: HELM_MLOPS_CLUSTER=helm-mlops-test bash hack/cluster.sh down"
        )
    root = tmp_path_factory.mktemp("access")
    model = root / "iris.onnx"
    expected = _onnx_model(model)
    inline = {"base64": base64.b64encode(model.read_bytes()).decode(), "fileName": "iris.onnx"}
    services = [
        {"name": "iris", "runtime": "fastapi", "model": {"inline": inline}},
        {"name": "idle", "runtime": "fastapi", "replicas": 0, "model": {"inline": inline}},
    ]
    stack = root / "stack"
    generated = subprocess.run(
        [
            EXE,
            "generate",
            "--preset",
            STACK,
            "--set-json",
            f"inference.services={json.dumps(services)}",
            "-o",
            str(stack),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    namespace = cluster.restricted_namespace("pf")
    try:
        installed = subprocess.run(
            [
                helm_path("helm4"),
                "install",
                RELEASE,
                str(stack),
                "-n",
                namespace,
                "--wait",
                "--timeout",
                "180s",
            ],
            env=cluster.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert installed.returncode == 0, installed.stderr
        runtime_port = free_port()
        runtime = [
            EXE,
            "runtime",
            "serve",
            "--model",
            str(model),
            "--port",
            str(runtime_port),
            "--name",
            "iris",
        ]
        with (
            mlflow_server(root) as mlflow_url,
            serve(runtime, root / "runtime.log", f"http://127.0.0.1:{runtime_port}/v2/health/ready", 120),
        ):
            _port_forward(
                cluster, namespace, _pod(cluster, namespace, "mlflow"), int(mlflow_url.rsplit(":", 1)[1])
            )
            _port_forward(cluster, namespace, _pod(cluster, namespace, "iris"), runtime_port)
            _wait_forwarded(cluster, namespace, f"{STACK}-mlflow", "/health")
            _wait_forwarded(cluster, namespace, f"{STACK}-iris", "/v2/health/ready")
            yield Installed(cluster, namespace, mlflow_url, model, expected)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


# ui ---------------------------------------------------------------------------------------------------


def test_ui_reaches_the_real_mlflow_and_stops_on_ctrl_c(installed: Installed, tmp_path: Path) -> None:
    port = free_port()
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    proc = subprocess.Popen(
        [EXE, "ui", RELEASE, "-n", installed.namespace, "--port", str(port), "--open"],
        env={**installed.cluster.env, "BROWSER": f"{browser} %s"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        started = time.monotonic()
        lines: list[str] = []
        while not any(line.startswith("MLflow UI:") for line in lines):
            line = proc.stdout.readline()
            assert line, f"ui exited {proc.wait()}: {lines} {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line)
        url = f"http://127.0.0.1:{port}/"
        assert lines[-1].strip() == f"MLflow UI: {url} (Ctrl-C to stop)", lines
        assert f"-> Service {STACK}-mlflow port 5000" in lines[0] and "MLflow is healthy" in lines[0], lines
        print(f"ui ready in {time.monotonic() - started:.1f}s")
        # Written through the tunnel, read back from the real server directly.
        name = f"through-the-api-server-{os.getpid()}"
        created = requests.post(url + "api/2.0/mlflow/experiments/create", json={"name": name}, timeout=30)
        assert created.status_code == 200, created.text
        direct = requests.get(
            f"{installed.mlflow_url}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": name},
            timeout=30,
        ).json()
        assert direct["experiment"]["experiment_id"] == created.json()["experiment_id"]
        # Several connections at once, as a browser opens them.
        with requests.Session() as a, requests.Session() as b:
            for session in (a, b, a, b):
                found = session.get(
                    url + "api/2.0/mlflow/experiments/search", params={"max_results": 100}, timeout=30
                )
                assert name in [e["name"] for e in found.json()["experiments"]]
        assert requests.get(url, timeout=30).status_code == 200  # the UI's page
        for _ in range(50):
            if opened.exists():
                break
            time.sleep(0.1)
        assert opened.read_text().strip() == url
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "port-forward stopped" in out and "Traceback" not in err, err
    with socket.socket() as s:  # nothing listens on the port any more (closed connections may linger)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)


def test_ui_port_in_use_names_the_option(installed: Installed) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = installed.cli("ui", RELEASE, "--port", str(port))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[0] == f"error: --port: 127.0.0.1:{port} is already in use", proc.stderr
    _no_traceback(proc)


# predict ----------------------------------------------------------------------------------------------


def _answer(stdout: str) -> tuple[str, object]:
    head, body = stdout.split("\n", 1)
    return head, json.loads(body)


def test_predict_gets_the_models_real_answer(installed: Installed) -> None:
    proc = installed.cli("predict", RELEASE, "iris", "--data", json.dumps(ROWS.tolist()))
    assert proc.returncode == 0, proc.stderr
    head, body = _answer(proc.stdout)
    # POST /predict on quickstart-iris (pod quickstart-iris-...) -> 200 in 3.1 ms
    assert head.startswith(f"POST /predict on {STACK}-iris (pod {STACK}-iris-"), head
    assert head.split(" -> ")[1].startswith("200 in ") and head.endswith(" ms"), head
    assert float(head.split(" in ")[-1].removesuffix(" ms")) > 0
    assert isinstance(body, dict)
    np.testing.assert_array_equal(np.asarray(body["prediction"]), installed.expected)


def test_predict_v2_from_a_file_and_from_stdin(installed: Installed, tmp_path: Path) -> None:
    data = tmp_path / "rows.json"
    data.write_text(json.dumps(ROWS.tolist()))
    # The chart alias, the Deployment's name: the same service; the namespace as helm hands it over.
    for service, value, stdin in (("iris", f"@{data}", None), (f"{STACK}-iris", "@-", data.read_text())):
        env = {"HELM_NAMESPACE": installed.namespace} if stdin else {}
        proc = installed.cli("predict", RELEASE, service, "--data", value, "--v2", input=stdin, **env)
        assert proc.returncode == 0, proc.stderr
        head, body = _answer(proc.stdout)
        assert head.startswith(f"POST /v2/models/iris/infer on {STACK}-iris (pod "), head
        assert " -> 200 in " in head, head
        assert isinstance(body, dict)
        out = body["outputs"][0]
        np.testing.assert_array_equal(np.asarray(out["data"]).reshape(out["shape"]), installed.expected)


def test_bad_input_is_one_line_each(installed: Installed, tmp_path: Path) -> None:
    # A KServe InferenceService of the release: no Deployment of ours to forward to.
    installed.cluster.kubectl(
        "apply",
        "-n",
        installed.namespace,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {
                    "name": f"{STACK}-kserved",
                    "labels": {
                        "app.kubernetes.io/instance": RELEASE,
                        "app.kubernetes.io/name": "kserved",
                        "helm-mlops.io/inference-service": f"{STACK}-kserved",
                        "helm-mlops.io/runtime": "kserve",
                    },
                },
                "spec": {
                    "predictor": {"model": {"modelFormat": {"name": "onnx"}, "storageUri": "pvc://m/x"}}
                },
            }
        ),
    )
    rows = json.dumps(ROWS[:1].tolist())
    no_url = installed.cli("predict", RELEASE, "kserved", "--data", rows)
    assert "it has no URL yet (not ready)" in no_url.stderr, no_url.stderr
    installed.cluster.kubectl(
        "patch",
        "inferenceservice",
        f"{STACK}-kserved",
        "-n",
        installed.namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"url": "http://kserved.example.com"}}',
    )
    unreachable = tmp_path / "kubeconfig"
    unreachable.write_text(
        installed.cluster.kubeconfig.read_text().replace(
            _server(installed.cluster), f"https://127.0.0.1:{free_port()}"
        )
    )
    cases = [
        (
            ["predict", "nope", "iris", "--data", rows],
            2,
            "error: RELEASE: nothing of release nope in namespace",
        ),
        (["ui", "nope"], 2, "error: RELEASE: nothing of release nope in namespace"),
        (
            ["predict", RELEASE, "nope", "--data", rows],
            2,
            f"error: SERVICE: release {RELEASE} has no inference service nope (it has: idle, iris, kserved)",
        ),
        (["predict", RELEASE, "iris", "--data", "[[1, 2"], 2, "error: --data: not JSON: "),
        (
            ["predict", RELEASE, "iris", "--data", "@/nonexistent.json"],
            2,
            "error: --data: cannot read /nonexistent.json",
        ),
        (["predict", RELEASE, "iris", "--data", '"text"'], 2, "error: --data: must be a JSON list"),
        (
            ["predict", RELEASE, "idle", "--data", rows],
            2,
            f"error: SERVICE: Service {STACK}-idle in namespace {installed.namespace} has no ready pods "
            "(no pods)",
        ),
        (
            ["predict", RELEASE, "kserved", "--data", rows],
            2,
            f"error: SERVICE: {STACK}-kserved is a KServe InferenceService",
        ),
        (
            ["predict", RELEASE, "iris", "--data", rows, "--kubeconfig", str(unreachable)],
            3,
            f"error: list deployments of {RELEASE} in namespace {installed.namespace}: the Kubernetes API "
            "server at https://127.0.0.1:",
        ),
    ]
    for args, code, first in cases:
        started = time.monotonic()
        proc = installed.cli(*args)
        print(f"{' '.join(args[:3])}: {time.monotonic() - started:.1f}s")
        assert proc.returncode == code, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith(first), (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr  # the error and its fix
        _no_traceback(proc)
    kserved = installed.cli("predict", RELEASE, "kserved", "--data", rows)
    assert "helm-mlops runtime predict --url http://kserved.example.com --name" in kserved.stderr, (
        kserved.stderr
    )
    idle = installed.cli("predict", RELEASE, "idle", "--data", rows)
    assert f"helm-mlops status {RELEASE} -n {installed.namespace}" in idle.stderr
    plugin = installed.cli("predict", RELEASE, "idle", "--data", rows, HELM_PLUGIN_DIR=tempfile.gettempdir())
    assert f"helm mlops status {RELEASE} -n {installed.namespace}" in plugin.stderr


def _server(cluster: Cluster) -> str:
    return str(
        cluster.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    )
